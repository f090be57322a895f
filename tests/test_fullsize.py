"""The full-size stand-in for gpt2 and the dry run of notebook 06 on it.

The dry run itself (marker ``full_size``) takes many minutes on a 2-core machine, more than CI can
spend, so the default run deselects it; ``make test-full`` runs it:
``pytest -s tests/test_fullsize.py -m full_size``. Its wall time is written to
``test-artifacts/full_size_dry_run.json``. The other tests here check the tool itself, quickly, on
a small configuration.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from lora_edu import gpt2 as G
from lora_edu.tools import full_size_gpt2 as FS

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_06 = ROOT / "notebooks" / "06_gpt2_peft_finetune.ipynb"


def small_config():
    from transformers import GPT2Config

    return GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=64)


def test_written_model_loads_as_random_local_folder(tmp_path, capsys):
    out = FS.write_full_size_gpt2(tmp_path / "m", config=small_config(), seed=3)
    assert "wrote" in capsys.readouterr().out
    model, tok, source = G.load_gpt2(str(out))
    assert source.kind == "local" and not source.pretrained and "random weights" in source.detail
    assert model.config.n_layer == 2 and tok("Hello world")["input_ids"] == G.HELLO_WORLD_IDS
    again = FS.write_full_size_gpt2(tmp_path / "m", config=small_config(), seed=3)  # same seed: reused
    assert again == out and "reused" in capsys.readouterr().out
    # the weights are the seeded random initialisation, bit for bit
    import torch
    from transformers import GPT2LMHeadModel

    torch.manual_seed(3)
    fresh = GPT2LMHeadModel(small_config())
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values(), strict=True))


def test_a_folder_holding_something_else_is_not_overwritten(tmp_path):
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "thesis.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty.*overwrite"):
        FS.write_full_size_gpt2(mine, config=small_config())
    assert (mine / "thesis.txt").read_text() == "precious" and len(list(mine.iterdir())) == 1
    FS.write_full_size_gpt2(tmp_path / "m", config=small_config(), seed=0)
    with pytest.raises(FileExistsError):  # same tool, another seed: not silently replaced either
        FS.write_full_size_gpt2(tmp_path / "m", config=small_config(), seed=1)
    FS.write_full_size_gpt2(tmp_path / "m", config=small_config(), seed=1, overwrite=True)
    assert json.loads((tmp_path / "m" / G.RANDOM_INIT_MARKER).read_text())["seed"] == 1
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        FS.write_full_size_gpt2(tmp_path / "file", config=small_config())
    with pytest.raises(ValueError, match="seed"):
        FS.write_full_size_gpt2(tmp_path / "n", config=small_config(), seed=-1)


def test_default_is_gpt2_size():
    from transformers import GPT2Config

    assert FS._config_fields(GPT2Config()) == {"n_layer": 12, "n_embd": 768, "n_head": 12, "n_positions": 1024,
                                              "vocab_size": 50257, "n_inner": None}
    assert G.gpt2_parameter_count(GPT2Config()) == 124_439_808


def _notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, str(path))
    return path


def test_execute_notebook_passes_the_model_to_a_fresh_kernel(tmp_path, capsys):
    model_dir = FS.write_full_size_gpt2(tmp_path / "m", config=small_config(), verbose=False)
    nb = _notebook(tmp_path / "probe.ipynb",
                   "import os\nfrom lora_edu.gpt2 import load_gpt2\nmodel, tok, source = load_gpt2()",
                   "assert source.kind == 'local' and not source.pretrained, source\n"
                   f"assert source.name == {str(model_dir)!r}\n"
                   "assert os.environ['HF_HUB_OFFLINE'] == '1' and os.getcwd() == " + repr(str(tmp_path)),
                   "raise ValueError('the third cell fails on purpose')")
    with pytest.raises(RuntimeError, match=r"(?s)probe.ipynb failed.*stopped in cell #2 \(raise ValueError.*purpose"):
        FS.execute_notebook(nb, model_dir, save_to=tmp_path / "executed.ipynb")
    executed = nbformat.read(str(tmp_path / "executed.ipynb"), as_version=4)
    assert [c.get("execution_count") for c in executed.cells] == [1, 2, 3]  # the first two cells passed
    with pytest.raises(RuntimeError, match=r"two.ipynb failed.*\n  cell #0: NameError.*\n  cell #2: ValueError"):
        FS.execute_notebook(_notebook(tmp_path / "two.ipynb", "undefined_name", "x = 1", "raise ValueError('b')"),
                            model_dir, keep_going=True, progress=False)
    # a cell that takes too long stops the run, named, with the times of the cells that did run
    with pytest.raises(RuntimeError, match=r"(?s)stopped in cell #1 \(import time.*CellTimeoutError.*"
                                           r"1 code cells run.*cell   0"):
        FS.execute_notebook(_notebook(tmp_path / "slow.ipynb", "x = 1", "import time; time.sleep(60)", "y = 2"),
                            model_dir, cell_timeout=3, progress=False)
    capsys.readouterr()
    run = FS.execute_notebook(_notebook(tmp_path / "ok.ipynb", "x = 1", "# a comment\ny = x + 1"), model_dir)
    lines = capsys.readouterr().out.splitlines()  # one progress line per cell, as it finishes
    assert len(lines) == 2 and "cell   1/2 (#0, " in lines[0] and lines[0].endswith("done: x = 1")
    assert "cell   2/2 (#1, " in lines[1] and lines[1].endswith("done: y = x + 1")
    assert [c["index"] for c in run.cells] == [0, 1] and run.seconds > 0 and "ok.ipynb" in run.summary()
    assert run.cpu_seconds is not None and run.cpu_seconds > 0 and "CPU time" in run.summary()
    assert all(c["cpu_seconds"] is not None and c["cpu_seconds"] >= 0 for c in run.cells)
    assert json.loads(json.dumps(run.to_json()))["cells"][0]["first_line"] == "x = 1"


def test_cli_errors_name_the_problem(tmp_path, capsys):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "a.txt").write_text("x")
    with pytest.raises(SystemExit):
        FS.main([str(tmp_path / "busy")])
    assert "not empty" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="no model in"):
        FS.execute_notebook(NOTEBOOK_06, tmp_path / "busy")


@pytest.mark.slow
@pytest.mark.full_size
def test_notebook_06_runs_end_to_end_at_full_size(tmp_path_factory):
    """gpt2's real size, random weights: every cell of notebook 06 must run (shapes, counts, memory,
    merge, save/reload, two adapters, torchrun); outputs are not compared."""
    import shutil

    model_dir = FS.write_full_size_gpt2(tmp_path_factory.mktemp("gpt2_full") / "gpt2-full")
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    try:
        run = FS.execute_notebook(NOTEBOOK_06, model_dir, save_to=artifacts / "06_full_size_executed.ipynb")
    finally:
        shutil.rmtree(model_dir)  # 500 MB: pytest keeps its last three temporary folders
    (artifacts / "full_size_dry_run.json").write_text(json.dumps(run.to_json(), indent=2) + "\n")
    print("\n" + run.summary())
    n_code = sum(c.cell_type == "code" and bool(c.source.strip()) for c in nbformat.read(str(NOTEBOOK_06), 4).cells)
    assert len(run.cells) == n_code  # every code cell ran
