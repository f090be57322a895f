"""Every exercise of every notebook, checked the same way (README rule 3).

For each name in ``lora_edu.exercises.nbXX.__all__`` the notebook has an answer cell that starts at
``answer = None`` and ends with ``nbXX.<name>.check(answer)``; the markdown cell right after it
holds ``<details><summary>Worked solution</summary>`` with exactly one self-contained python block
that ends with the same ``.check(answer)``; run in a fresh namespace, that block prints ``RIGHT``.
Per-notebook test files test the checkers themselves (trivial and pitfall answers are rejected
with feedback that names the mistake).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

DETAILS = re.compile(r"<details>\s*<summary>\s*Worked solution\s*</summary>(.*?)</details>", re.S | re.I)
PY_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def exercise_module(notebook: Path):
    """``lora_edu.exercises.nbXX`` for ``notebooks/XX_*.ipynb``, or None when it has no exercises."""
    try:
        return importlib.import_module(f"lora_edu.exercises.nb{notebook.name[:2]}")
    except ModuleNotFoundError:
        return None


def cells_of(notebook: Path) -> list[dict]:
    return json.loads(notebook.read_text(encoding="utf-8"))["cells"]


def exercises() -> list[tuple[Path, str]]:
    found = []
    for nb in NOTEBOOKS:
        module = exercise_module(nb)
        found += [(nb, name) for name in getattr(module, "__all__", [])]
    return found


def solution_after_answer_cell(notebook: Path, name: str) -> str:
    """The worked-solution code that follows the answer cell of exercise ``name``."""
    prefix = f"nb{notebook.name[:2]}"
    cells = cells_of(notebook)
    call = f"{prefix}.{name}.check(answer)"
    where = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and call in "".join(c["source"])]
    assert len(where) == 1, f"{notebook.name}: expected one answer cell calling {call}, found {len(where)}"
    i = where[0]
    assert "answer = None" in "".join(cells[i]["source"]), (
        f"{notebook.name} cell {i}: the answer cell must start at None")
    assert i + 1 < len(cells) and cells[i + 1]["cell_type"] == "markdown", (
        f"{notebook.name} cell {i}: no markdown worked solution right after the answer cell")
    blocks = DETAILS.findall("".join(cells[i + 1]["source"]))
    assert len(blocks) == 1, f"{notebook.name} cell {i + 1}: expected one <details> worked solution"
    code = PY_BLOCK.findall(blocks[0])
    assert len(code) == 1, f"{notebook.name} cell {i + 1}: a worked solution needs exactly one python block"
    last = [line for line in code[0].strip().splitlines() if line.strip()][-1]
    assert last.strip().endswith(call), f"{notebook.name} cell {i + 1}: the solution must end with {call}"
    return code[0]


def run_in_fresh_namespace(code: str, cwd: Path) -> str:
    """Run ``code`` as a learner would paste it into a new cell (in ``cwd``); return what it printed."""
    out = io.StringIO()
    old = Path.cwd()
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out):
            exec(compile(code, "<worked solution>", "exec"), {"__name__": "__worked_solution__"})
    finally:
        os.chdir(old)
    return out.getvalue()


def test_every_notebook_with_exercises_is_found():
    with_exercises = {nb.name[:2] for nb, _ in exercises()}
    assert {"01", "02", "03", "04", "05"} <= with_exercises


def test_every_worked_solution_block_belongs_to_an_exercise():
    for nb in NOTEBOOKS:
        module = exercise_module(nb)
        blocks = sum(len(DETAILS.findall("".join(c["source"]))) for c in cells_of(nb) if c["cell_type"] == "markdown")
        assert blocks == len(getattr(module, "__all__", [])), (
            f"{nb.name}: {blocks} worked solutions for {len(getattr(module, '__all__', []))} exercises")


@pytest.mark.parametrize("notebook, name", exercises(), ids=lambda x: x.name[:2] if isinstance(x, Path) else x)
def test_worked_solution_prints_right(notebook, name):
    code = solution_after_answer_cell(notebook, name)
    printed = run_in_fresh_namespace(code, notebook.parent)
    verdicts = re.findall(r"^(RIGHT|NOT YET):", printed, re.M)
    assert verdicts and verdicts[-1] == "RIGHT", f"{notebook.name} {name}: the worked solution printed\n{printed}"


@pytest.mark.parametrize("notebook, name", exercises(), ids=lambda x: x.name[:2] if isinstance(x, Path) else x)
def test_answer_cell_runs_as_given_and_asks_for_an_answer(notebook, name):
    prefix = f"nb{notebook.name[:2]}"
    cell = next("".join(c["source"]) for c in cells_of(notebook)
                if c["cell_type"] == "code" and f"{prefix}.{name}.check(answer)" in "".join(c["source"]))
    printed = run_in_fresh_namespace(f"from lora_edu.exercises import {prefix}\n" + cell, notebook.parent)
    assert "NOT YET: no answer yet" in printed, f"{notebook.name} {name}: the answer cell as given printed\n{printed}"
