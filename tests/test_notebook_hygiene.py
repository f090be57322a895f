"""Every committed notebook is stored as a reader should see it (issue 12): executed top to bottom in
a fresh kernel (counts 1..N), no error or stderr outputs, no frozen progress bars, no known library
noise, no remote images. The checks live in lora_edu.tools.nbcheck (``python -m lora_edu.tools.nbcheck``)."""

from __future__ import annotations

import nbformat
import pytest
from _helpers import assert_no_problems, each_notebook

from lora_edu.tools import nbcheck
from lora_edu.tools.execute import main as execute_main


@each_notebook
def test_committed_notebook_is_clean(path):
    problems = nbcheck.hygiene_problems(path)
    assert_no_problems(problems, "hygiene", path, "run make execute")


def _write(tmp_path, cells, counts=None):
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    code = [c for c in cells if c.cell_type == "code"]
    for k, c in enumerate(code):
        c.execution_count = counts[k] if counts else k + 1
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    return path


def _code(outputs=(), source="x = 1"):
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = list(outputs)
    return cell


def _stream(text, name="stdout"):
    return nbformat.v4.new_output("stream", name=name, text=text)


def _whats(path):
    return [(p.cell, p.what.split(":")[0]) for p in nbcheck.hygiene_problems(path)]


def test_a_clean_notebook_has_no_problems(tmp_path):
    done = "training: 100%|##########| 40/40 [00:01]\nloss 0.1\n"
    path = _write(tmp_path, [nbformat.v4.new_markdown_cell("# T\n\n![a figure](../figures/x.png)"),
                             _code([_stream(done)]), _code()])
    assert nbcheck.hygiene_problems(path) == []


def _error():
    return nbformat.v4.new_output("error", ename="ValueError", evalue="bad", traceback=[])


#: One broken notebook per problem: what its third cell stores (or the execution counts, or the first
#: cell's markdown), the cell the problem must be reported for, and the report's first words.
BROKEN = {
    "counts": (dict(counts=[1, 3]), 2, "execution counts are not 1..2"),
    "error": (dict(outputs=[_error()]), 2, "an error output"),
    "stderr": (dict(outputs=[_stream("some warning\n", "stderr")]), 2,
               "a stderr output (silence harmless library messages at their source, lora_edu._utils.quiet_libraries)"),
    "frozen": (dict(outputs=[_stream("Loading weights:   0%|          | 0/52 [00:00<?, ?it/s]\n")]), 2,
               "a frozen progress bar (stored unfinished)"),
    "two streams": (dict(outputs=[_stream("a\n"), _stream("b\n")]), 2, "2 separate stdout outputs"),
    "noise": (dict(outputs=[_stream("Failed to load CPU gemm_4bit_forward from kernels-community\n")]), 2,
              "library noise in an output"),
    "remote": (dict(markdown="# T\n\n![x](https://example.org/x.png)"), 0, "a remote image"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_each_problem_is_reported_with_its_cell(tmp_path, case):
    broken, where, expected = BROKEN[case]
    cells = [nbformat.v4.new_markdown_cell(broken.get("markdown", "# T")), _code(), _code(broken.get("outputs", ()))]
    path = _write(tmp_path, cells, broken.get("counts"))
    found = nbcheck.hygiene_problems(path)
    assert found, case
    assert any(p.cell == where and p.what.startswith(expected) for p in found), found
    assert all(str(p).startswith(f"nb.ipynb cell {p.cell}: ") for p in found)


@pytest.mark.slow
def test_execute_stores_one_coalesced_stream_per_cell(tmp_path, monkeypatch):
    code = ("import sys\nfor k in range(3):\n    print(f'\\rstep {k}', end='', flush=True)\n"
            "print()\nprint('done')\n")
    path = _write(tmp_path, [nbformat.v4.new_markdown_cell("# T"), _code(source=code)], counts=[None])
    assert execute_main([str(path), "--no-annotate", "--timeout", "120"]) == 0
    nb = nbformat.read(str(path), as_version=4)
    outputs = nb.cells[1].outputs
    assert [o.output_type for o in outputs] == ["stream"]
    assert outputs[0].text == "step 2\ndone\n"
    assert nb.cells[1].execution_count == 1
    assert nbcheck.hygiene_problems(path) == []
