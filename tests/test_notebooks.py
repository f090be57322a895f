"""The notebooks are committed executed, follow the course format, and share code with lora_edu."""

import ast
import importlib.util
import inspect
import json
import re
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

from lora_edu.tools.registry import NOTEBOOKS as REGISTRY
from lora_edu.tools.registry import resolve

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def src(cell):
    return "".join(cell["source"])


def test_notebooks_are_numbered_in_order():
    names = [p.name for p in NOTEBOOKS]
    assert names[:2] == ["01_matrix_rank.ipynb", "02_svd_truncation.ipynb"]
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(1, len(names) + 1)]


def test_the_registry_lists_exactly_the_notebooks_in_order():
    assert [nb.file for nb in REGISTRY] == [p.name for p in NOTEBOOKS], (
        "add the notebook to lora_edu/tools/registry.py (README > Development > Adding a notebook)")
    for nb in REGISTRY:
        for module in nb.modules:
            assert importlib.util.find_spec(module), f"{nb.file}: no module {module}"
        for name in nb.explorers:
            assert callable(resolve(f"lora_edu.explorers:{name}")), name
        for name in nb.from_scratch:
            assert resolve(name).__module__ == name.split(":")[0], f"{name} is not defined in its module"


@pytest.mark.parametrize("nb", REGISTRY, ids=lambda nb: nb.file)
def test_each_notebook_uses_what_the_registry_says(nb):
    code = "\n".join(src(c) for c in code_cells(load(ROOT / "notebooks" / nb.file)))
    for module in nb.modules:
        short = module.rsplit(".", 1)[1]
        assert re.search(rf"lora_edu(\.{short}\b| import .*\b{short}\b)", code), f"{nb.file} never uses {module}"
    for name in nb.explorers:
        assert re.search(rf"\b{name}\(", code), f"{nb.file} never shows {name}"
    if importlib.util.find_spec(nb.exercises):  # (the nbXX modules replace the old checkers one by one)
        assert nb.exercises.rsplit(".", 1)[1] in code, f"{nb.file} does not use {nb.exercises}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_executed_top_to_bottom_without_errors(path):
    cells = code_cells(load(path))
    assert [c["execution_count"] for c in cells] == list(range(1, len(cells) + 1)), (
        f"{path.name}: run `make execute` (execution counts must be 1..N)"
    )
    for i, c in enumerate(cells):
        assert not any(o["output_type"] == "error" for o in c["outputs"]), f"{path.name} cell {i} has an error"
        for o in c["outputs"]:
            if o["output_type"] == "stream" and o["name"] == "stderr":
                text = "".join(o["text"])
                assert "Traceback" not in text and "Warning:" not in text, f"{path.name} cell {i} stderr: {text[:200]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_course_format(path):
    nb = load(path)
    md = "\n".join(src(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    for heading in ("You will learn", "Prerequisites", "## Summary", "## Exercises", "## References"):
        assert heading in md, f"{path.name} lacks '{heading}'"
    assert sum("NBVAL_CHECK_OUTPUT" in src(c) for c in code_cells(nb)) >= 5, f"{path.name}: too few checked cells"
    assert any("lora_edu.exercises" in src(c) for c in code_cells(nb)), f"{path.name}: exercises need self-checks"
    for c in nb["cells"]:
        s = src(c)
        assert not re.search(r"\bTODO\b|FIXME|your code here", s, re.I), f"{path.name}: placeholder left"
        assert not re.search(r"!\[[^\]]*\]\(https?://|<img[^>]+src=[\"']https?://", s), f"{path.name}: remote image"
        for img in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", s):
            assert (path.parent / img).resolve().is_file(), f"{path.name}: image {img} missing"


def _defs_in_notebook(path) -> dict[str, str]:
    defs = {}
    tm = TransformerManager()
    for c in code_cells(load(path)):
        tree = ast.parse(tm.transform_cell(src(c)))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defs[node.name] = ast.dump(node)
    return defs


@pytest.mark.parametrize("nb", [nb for nb in REGISTRY if nb.from_scratch], ids=lambda nb: nb.file)
def test_from_scratch_code_is_the_package_code(nb):
    defs = _defs_in_notebook(ROOT / "notebooks" / nb.file)
    for name in nb.from_scratch:
        fn = resolve(name)
        assert fn.__name__ in defs, f"{nb.file} no longer defines {fn.__name__}"
        package = ast.dump(ast.parse(inspect.getsource(fn)).body[0])
        assert defs[fn.__name__] == package, f"{nb.file}: {fn.__name__} differs from {name}"


# --- The Colab cell: the first code cell installs lora_edu only where it is missing ------------

def install_cell_source(path) -> str:
    return src(code_cells(load(path))[0])


def repository_url() -> str:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def test_every_notebook_starts_with_the_same_install_cell():
    sources = {install_cell_source(p) for p in NOTEBOOKS}
    assert len(sources) == 1, "the install cells differ between notebooks"
    (source,) = sources
    assert 'find_spec("lora_edu")' in source
    assert f"git+{repository_url()}" in source, "the install cell must install from pyproject's Repository URL"
    assert all(not code_cells(load(p))[0]["outputs"] for p in NOTEBOOKS), "installed: the cell prints nothing"


def run_install_cell(monkeypatch, cwd, importable: bool) -> list[list[str]]:
    import importlib.util
    import subprocess

    calls = []
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(subprocess, "check_call", lambda cmd, **kw: calls.append(cmd) or 0)
    if not importable:
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: None if name == "lora_edu" else real(name, *a))
    exec(compile(install_cell_source(NOTEBOOKS[0]), "install-cell", "exec"), {})
    return calls


def test_install_cell_does_nothing_where_lora_edu_is_importable(monkeypatch):
    assert run_install_cell(monkeypatch, ROOT / "notebooks", importable=True) == []


def test_install_cell_installs_the_clone_or_the_repository(monkeypatch, tmp_path, capsys):
    import sys

    (clone_cmd,) = run_install_cell(monkeypatch, ROOT / "notebooks", importable=False)
    assert clone_cmd[:4] == [sys.executable, "-m", "pip", "install"] and clone_cmd[-1] == str(ROOT)
    (colab_cmd,) = run_install_cell(monkeypatch, tmp_path, importable=False)   # e.g. /content on Colab
    assert colab_cmd[-1] == f"git+{repository_url()}"
    assert "installing it from" in capsys.readouterr().out


@pytest.mark.parametrize("nb", REGISTRY, ids=lambda nb: nb.file)
def test_every_explorer_output_is_followed_by_its_static_picture(nb):
    """GitHub, nbconvert, nbviewer and the slides cannot run a widget: right after each explorer's
    live widget output comes its static PNG (which the live widget hides where it renders)."""
    explorers = 0
    for cell in code_cells(load(ROOT / "notebooks" / nb.file)):
        outs = cell["outputs"]
        for i, o in enumerate(outs):
            data = o.get("data", {})
            if WIDGET_MIME not in data or "static fallback" not in "".join(data.get("text/plain", "")):
                continue  # not an explorer (e.g. a library's progress widget)
            explorers += 1
            assert "image/png" not in data, f"{nb.file}: the PNG must be its own output (re-execute the notebook)"
            assert i + 1 < len(outs) and "image/png" in outs[i + 1].get("data", {}), (
                f"{nb.file}: an explorer output without its static picture after it")
            assert "static picture at" in "".join(outs[i + 1]["data"]["text/plain"])
    assert explorers == len(nb.explorers), f"{nb.file} should show {nb.explorers}"
