"""``python -m lora_edu.tools.full_size_gpt2 DIR``: gpt2's exact architecture, random weights, saved to DIR.

A stand-in for the real gpt2 on a machine that cannot download it: ``GPT2LMHeadModel(GPT2Config())``
(124,439,808 parameters, about 500 MB in float32) with GPT-2's real tokenizer, built offline. Point
the course at it with ``LORA_EDU_MODEL=DIR`` and every GPT-2 notebook runs at real size - shapes,
parameter counts, memory, step times, merge, save/reload - but its outputs mean nothing: the weights
are random, and ``load_gpt2`` says so (``source.pretrained`` is False).

``--execute NOTEBOOK`` then runs notebooks end to end on it, each in a fresh kernel, with no output
comparison, and prints the wall time of the run and of its slowest cells. That is the full-size dry
run of ``make test-full``::

    python -m lora_edu.tools.full_size_gpt2 /tmp/gpt2-full --execute notebooks/06_gpt2_peft_finetune.ipynb
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lora_edu._checks import check_int
from lora_edu.gpt2 import MODEL_ENV, RANDOM_INIT_MARKER, gpt2_tokenizer

ABOUT = ("random weights: gpt2's exact architecture (GPT2Config()) and real tokenizer, no pretrained "
         "knowledge, written by lora_edu.tools.full_size_gpt2 for the full-size dry run")


def write_full_size_gpt2(out_dir: str | Path, *, seed: int = 0, config=None, overwrite: bool = False,
                         verbose: bool = True) -> Path:
    """Save a randomly initialised ``GPT2LMHeadModel(config)`` (default ``GPT2Config()``: gpt2's size)
    and GPT-2's tokenizer to ``out_dir``, marked as random weights.

    A folder this function already wrote with the same seed and config is reused as it is. Any
    other non-empty folder is left alone (``FileExistsError``) unless ``overwrite=True``, which
    replaces the files of the same names.

    Returns:
        ``out_dir`` as a resolved ``Path``; load it with ``load_gpt2(str(out_dir))`` or ``LORA_EDU_MODEL``.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from lora_edu._utils import count_parameters, quiet_libraries

    seed = check_int(seed, "seed", 0)
    config = GPT2Config() if config is None else config
    out_dir = Path(out_dir).expanduser().resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} is a file; give a folder for the model")
    marker = out_dir / RANDOM_INIT_MARKER
    wanted = {"seed": seed, "config": _config_fields(config)}
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        if marker.exists():
            record = json.loads(marker.read_text())
            if {k: record.get(k) for k in wanted} == wanted and (out_dir / "config.json").exists():
                if verbose:
                    print(f"{out_dir} already holds this model (seed {seed}, {record['parameters']:,} "
                          "parameters): reused")
                return out_dir
        raise FileExistsError(f"{out_dir} is not empty and holds something else; choose an empty folder, or pass "
                              "overwrite=True (--overwrite) to replace the files of the same names")
    quiet_libraries()
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    n_params = count_parameters(model)[1]
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    gpt2_tokenizer().save_pretrained(str(out_dir))
    marker.write_text(json.dumps({"about": ABOUT, **wanted, "parameters": n_params}, indent=2) + "\n")
    if verbose:
        print(f"wrote {out_dir}: GPT2LMHeadModel with {n_params:,} parameters (random, seed {seed}) "
              "and GPT-2's tokenizer")
    return out_dir


def _config_fields(config) -> dict:
    keys = ("n_layer", "n_embd", "n_head", "n_positions", "vocab_size", "n_inner")
    return {k: getattr(config, k, None) for k in keys}


@dataclass
class NotebookRun:
    """The result of :func:`execute_notebook`: wall and CPU time of the run and of each code cell run.

    Times are measured here, around each cell (the kernel's message timestamps can be stale or
    jump); CPU time is the kernel's, its finished child processes (torchrun workers) included, which
    on a machine shared with other work says more about the cost than the wall time does.
    """

    notebook: str
    model_dir: str
    seconds: float
    cells: list[dict] = field(default_factory=list)  # {"index", "seconds", "cpu_seconds", "first_line"}
    cpu_seconds: float | None = None

    def slowest(self, n: int = 5) -> list[dict]:
        return sorted(self.cells, key=lambda c: -c["seconds"])[:n]

    def summary(self) -> str:
        cpu = f", {self.cpu_seconds:.0f} s CPU time" if self.cpu_seconds is not None else ""
        lines = [f"{self.notebook} on {self.model_dir}: {self.seconds:.0f} s ({self.seconds / 60:.1f} min) wall time"
                 f"{cpu}, {len(self.cells)} code cells run; slowest:"]
        for c in self.slowest():
            cpu = f" ({c['cpu_seconds']:.0f} s CPU)" if c.get("cpu_seconds") is not None else ""
            lines.append(f"  cell {c['index']:>3}: {c['seconds']:7.1f} s{cpu}  {c['first_line'][:70]}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"notebook": self.notebook, "model_dir": self.model_dir, "seconds": self.seconds,
                "cpu_seconds": self.cpu_seconds, "cells": self.cells}


def execute_notebook(notebook: str | Path, model_dir: str | Path, *, cell_timeout: int = 1800,
                     save_to: str | Path | None = None, extra_env: dict[str, str] | None = None,
                     keep_going: bool = False, progress: bool = True) -> NotebookRun:
    """Run ``notebook`` top to bottom in a fresh kernel with ``LORA_EDU_MODEL=model_dir`` (and
    ``HF_HUB_OFFLINE=1``: a dry run never downloads), in the notebook's folder, without comparing outputs.

    The committed notebook is not modified; ``save_to`` writes the executed copy (also when a cell fails).
    ``keep_going=True`` runs every cell even after one raises, to see all failures at once.
    ``progress=True`` prints one line per code cell as it finishes (a dry run takes many minutes).

    Raises:
        RuntimeError: a cell raised, timed out (``cell_timeout`` seconds) or killed the kernel; the
        message names the cell(s), ends with the error and the times of the cells that ran.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    notebook, model_dir = Path(notebook).resolve(), Path(model_dir).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"no notebook at {notebook}")
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"no model in {model_dir}; write one with "
                                "`python -m lora_edu.tools.full_size_gpt2 DIR`")
    nb = nbformat.read(str(notebook), as_version=4)
    env = {**os.environ, MODEL_ENV: str(model_dir), "HF_HUB_OFFLINE": "1", **(extra_env or {})}
    client = NotebookClient(nb, timeout=check_int(cell_timeout, "cell_timeout", 1), kernel_name="python3",
                            allow_errors=keep_going, resources={"metadata": {"path": str(notebook.parent)}})
    n_code = sum(cell.cell_type == "code" and bool(cell.source.strip()) for cell in nb.cells)
    cells: list[dict] = []
    current: dict = {}

    def before(cell, cell_index, **_):  # nbclient hooks, around each code cell
        current.update(index=cell_index, t0=time.perf_counter(), cpu0=_kernel_cpu_seconds(client))

    def after(cell, cell_index, **_):
        cpu0, cpu1 = current.get("cpu0"), _kernel_cpu_seconds(client)
        took = time.perf_counter() - current["t0"]
        cells.append({"index": cell_index, "seconds": round(took, 2), "first_line": _first_line(cell.source),
                      "cpu_seconds": round(cpu1 - cpu0, 2) if cpu0 is not None and cpu1 is not None else None})
        current["cpu_end"] = cpu1
        if progress:
            print(f"  [{time.perf_counter() - start:7.1f} s] cell {len(cells):>3}/{n_code} (#{cell_index}, "
                  f"{took:.1f} s) done: {cells[-1]['first_line'][:60]}", flush=True)

    client.on_cell_execute, client.on_cell_executed = before, after
    start = time.perf_counter()
    error = None
    try:
        client.execute(env=env)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        error = exc
    seconds = time.perf_counter() - start
    if save_to is not None:
        nbformat.write(nb, str(save_to))
    run = NotebookRun(str(notebook), str(model_dir), round(seconds, 1), cells,
                      round(current["cpu_end"], 1) if current.get("cpu_end") is not None else None)
    ran = {c["index"] for c in cells}
    failed = [(i, out) for i, cell in enumerate(nb.cells) if i in ran
              for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    problems = [f"  cell #{i}: {out.get('ename')}: {out.get('evalue', '')[:300]}" for i, out in failed]
    if error is not None:
        where = current.get("index")
        first = _first_line(nb.cells[where].source)[:70] if where is not None else ""
        problems.append(f"  stopped in cell #{where} ({first}): {type(error).__name__}: {str(error)[-3000:]}")
    if problems:
        raise RuntimeError(f"{notebook.name} failed on {model_dir} after {seconds:.0f} s:\n" + "\n".join(problems)
                           + "\n" + run.summary()) from error
    return run


def _kernel_cpu_seconds(client) -> float | None:
    """CPU seconds of the kernel process and of its children that have finished (torchrun workers)."""
    try:
        import psutil

        t = psutil.Process(client.km.provisioner.pid).cpu_times()
        return t.user + t.system + t.children_user + t.children_system
    except Exception:  # noqa: BLE001 - a missing number, never a failed run
        return None


def _first_line(source: str) -> str:
    return next((ln for ln in source.splitlines() if ln.strip() and not ln.startswith("#")), "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path, help="folder for the model (created; reused if this tool wrote it)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace files in a folder that holds something else")
    parser.add_argument("--execute", nargs="+", type=Path, default=[], metavar="NOTEBOOK",
                        help="then run these notebooks end to end on the model (LORA_EDU_MODEL=DIR), fresh kernels")
    parser.add_argument("--save-executed", type=Path, metavar="FOLDER",
                        help="write each executed notebook there (the committed ones are never changed)")
    parser.add_argument("--keep-going", action="store_true", help="run every cell even after one fails")
    parser.add_argument("--cell-timeout", type=int, default=1800, help="seconds one cell may take (default 1800)")
    parser.add_argument("--json", type=Path, help="write the timings to this JSON file")
    args = parser.parse_args(argv)
    try:
        model_dir = write_full_size_gpt2(args.dir, seed=args.seed, overwrite=args.overwrite)
    except (FileExistsError, ValueError, TypeError) as exc:
        parser.error(str(exc))
    runs, failures = [], 0
    for nb in args.execute:
        save_to = None
        if args.save_executed:
            args.save_executed.mkdir(parents=True, exist_ok=True)
            save_to = args.save_executed / nb.name
        print(f"executing {nb} with {MODEL_ENV}={model_dir} ...", flush=True)
        try:
            run = execute_notebook(nb, model_dir, save_to=save_to, keep_going=args.keep_going,
                                   cell_timeout=args.cell_timeout)
        except (RuntimeError, FileNotFoundError) as exc:
            print(f"FAILED: {exc}", file=sys.stderr, flush=True)
            failures += 1
            continue
        print(run.summary(), flush=True)
        runs.append(run.to_json())
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
