"""``make bench``: the course's performance figures, each a ratio of two things measured side by side.

Every row times A and B *interleaved* in the same process (A, B, A, B, ...), reports medians over
the repeats, and states the machine and thread count. Timings depend on the machine, so nothing here
is asserted in the test suite (a smoke test runs ``--quick`` once with tiny sizes); the goals in the
table are the course's targets, and each row says whether this run met its goal.

    python -m lora_edu.tools.bench            # full sizes, writes figures/bench.json and figures/bench.png
    python -m lora_edu.tools.bench --quick    # tiny sizes, seconds (what the smoke test runs)

Run it from the repository root: the notebooks row reads ``notebooks/`` and the output goes to
``figures/`` of the working directory (``--root`` and ``--out`` change both). The browser row
needs Chromium (``lora_edu.tools.browser``) and is reported as skipped where there is none.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lora_edu._utils import count_parameters, optimizer_state_bytes, progress
from lora_edu.plotting import OKABE_ITO, new_figure
from lora_edu.tools.registry import notebook_paths


@dataclass
class Row:
    """One measurement: A and B timed side by side, their ratio, and the goal for it."""

    name: str
    a: str
    b: str
    a_value: float | None
    b_value: float | None
    unit: str
    goal: str
    met: bool | None  # None: reported only, no goal (or skipped)
    skipped: str = ""  # why this row was not measured here

    @property
    def ratio(self) -> float | None:
        if self.a_value is None or self.b_value is None:
            return None
        return self.a_value / self.b_value if self.b_value else float("inf")


def interleaved(fn_a: Callable[[], object], fn_b: Callable[[], object], repeats: int = 20,
                warmup: int = 3) -> tuple[float, float]:
    """Median seconds of ``fn_a`` and ``fn_b``, timed alternately so drift hits both equally."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn_a()
        t1 = time.perf_counter()
        fn_b()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    return statistics.median(ta), statistics.median(tb)


def _peft_linear(base: nn.Module, r: int, alpha: float):
    from peft import LoraConfig, get_peft_model

    class One(nn.Module):
        def __init__(self, proj):
            super().__init__()
            self.proj = proj

        def forward(self, x):
            return self.proj(x)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_peft_model(One(copy.deepcopy(base)), LoraConfig(r=r, lora_alpha=alpha, target_modules=["proj"]))


def row_lora_vs_peft(quick: bool) -> list[Row]:
    """1. LoRALinear vs PEFT's LoRA Linear, forward + backward, same shapes and init."""
    from lora_edu.lora import LoRALinear

    rows = []
    batch, tokens = (2, 16) if quick else (8, 128)
    for d_in, d_out in ((768, 768), (768, 2304)):
        if quick:
            d_in, d_out = d_in // 8, d_out // 8
        torch.manual_seed(0)
        base = nn.Linear(d_in, d_out)
        ours = LoRALinear(copy.deepcopy(base), r=8, alpha=16)
        theirs = _peft_linear(base, 8, 16)
        x = torch.randn(batch, tokens, d_in)

        def step(m, x=x):
            def run():
                m.zero_grad(set_to_none=True)
                m(x).sum().backward()
            return run

        ta, tb = interleaved(step(ours), step(theirs), repeats=5 if quick else 30)
        rows.append(Row(f"LoRA fwd+bwd {d_in}->{d_out}, r=8, {batch}x{tokens} tokens", "lora_edu LoRALinear",
                        "peft lora.Linear", ta * 1e3, tb * 1e3, "ms", "ours/peft <= 1.00", ta / tb <= 1.0))
    return rows


def row_merged_vs_plain(quick: bool) -> list[Row]:
    """2. Merged and unmerged LoRALinear inference vs a plain nn.Linear of the same shape."""
    from lora_edu.lora import LoRALinear

    d_in, d_out = (96, 288) if quick else (768, 2304)
    batch, tokens = (2, 16) if quick else (8, 128)
    torch.manual_seed(0)
    plain = nn.Linear(d_in, d_out)
    merged = LoRALinear(copy.deepcopy(plain), r=8, alpha=16)
    unmerged = LoRALinear(copy.deepcopy(plain), r=8, alpha=16)
    with torch.no_grad():
        for m in (merged, unmerged):
            m.lora_B.normal_(std=0.01)
    merged.merge()
    x = torch.randn(batch, tokens, d_in)
    reps = 5 if quick else 50
    with torch.no_grad():
        tm, tp = interleaved(lambda: merged(x), lambda: plain(x), repeats=reps)
        tu, tp2 = interleaved(lambda: unmerged(x), lambda: plain(x), repeats=reps)
    return [
        Row(f"inference {d_in}->{d_out}, merged LoRA vs plain Linear", "merged LoRALinear", "nn.Linear",
            tm * 1e3, tp * 1e3, "ms", "merged/plain <= 1.02", tm / tp <= 1.02),
        Row(f"inference {d_in}->{d_out}, unmerged LoRA vs plain Linear (two extra thin matmuls)",
            "unmerged LoRALinear", "nn.Linear", tu * 1e3, tp2 * 1e3, "ms", "reported", None),
    ]


def row_gpt2_lora_vs_full(quick: bool) -> list[Row]:
    """3. LoRA (r=8, c_attn) vs full fine-tuning on the GPT-2 architecture (random weights)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from lora_edu.finetune import measure_peak_memory
    from lora_edu.lora import add_lora, mark_only_lora_as_trainable

    cfg = GPT2Config(n_embd=64, n_layer=2, n_head=2) if quick else GPT2Config()
    seq = 32 if quick else 128
    torch.manual_seed(0)
    full = GPT2LMHeadModel(cfg)
    lora = mark_only_lora_as_trainable(add_lora(copy.deepcopy(full), ["c_attn"], r=8, alpha=16))
    x = torch.randint(0, cfg.vocab_size, (1 if quick else 2, seq))
    results = {}
    for name, model in (("lora", lora), ("full", full)):
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

        def step(model=model, opt=opt):
            opt.zero_grad(set_to_none=True)
            model(input_ids=x, labels=x).loss.backward()
            opt.step()

        step()  # creates the optimizer state
        _, peak = measure_peak_memory(lambda: [step() for _ in range(2)])
        results[name] = dict(trainable=count_parameters(model)[0], state=optimizer_state_bytes(opt), peak=peak,
                             step=step)
    t_lora, t_full = interleaved(results["lora"]["step"], results["full"]["step"], repeats=2 if quick else 5,
                                 warmup=1)
    label = "GPT-2 tiny" if quick else "GPT-2 small (124M, random weights)"
    lo, fu = results["lora"], results["full"]
    return [
        Row(f"{label}: trainable parameters", "LoRA r=8 c_attn", "full FT", lo["trainable"], fu["trainable"],
            "params", "reported", None),
        Row(f"{label}: optimizer-state bytes", "LoRA r=8 c_attn", "full FT", lo["state"] / 1e6, fu["state"] / 1e6,
            "MB", "LoRA/full <= 1 %", lo["state"] / fu["state"] <= 0.01),
        Row(f"{label}: training step time, batch of {seq} tokens", "LoRA r=8 c_attn", "full FT", t_lora * 1e3,
            t_full * 1e3, "ms", "LoRA/full < 1", t_lora < t_full),
        Row(f"{label}: peak memory during 2 steps ({'CUDA' if torch.cuda.is_available() else 'RSS rise'})",
            "LoRA r=8 c_attn", "full FT", lo["peak"] / 1e6, max(fu["peak"], 1) / 1e6, "MB", "reported", None),
    ]


def row_slider_vs_svd(quick: bool) -> list[Row]:
    """4. One rank-slider move in Python (reconstruct at display size, encode the pixels, redraw the
    SVG marks, readout) vs recomputing the SVD."""
    from lora_edu.data import sample_image
    from lora_edu.explorers import rank_explorer

    img = sample_image(size=128) if quick else sample_image()
    ex = rank_explorer(img, r=20)
    rs = iter(np.tile(np.arange(10, 60), 100))

    def move():
        ex.slider.value = int(next(rs))

    ts, tsvd = interleaved(move, lambda: np.linalg.svd(img, full_matrices=False), repeats=5 if quick else 20)
    tr, tsvd2 = interleaved(lambda: ex.cache.approx(20), lambda: np.linalg.svd(img, full_matrices=False),
                            repeats=5 if quick else 20)
    size = f"{img.shape[0]}x{img.shape[1]}"
    return [Row(f"rank slider, {size} image: one move (pixels, marks, readout) vs one SVD", "slider update",
                "np.linalg.svd", ts * 1e3, tsvd * 1e3, "ms", "update/SVD <= 1/20", ts / tsvd <= 1 / 20),
            Row(f"rank slider, {size} image: the full-size rank-20 product alone vs one SVD", "U_r s_r Vt_r",
                "np.linalg.svd", tr * 1e3, tsvd2 * 1e3, "ms", "reported", None)]


def row_quant_vs_copy(quick: bool) -> list[Row]:
    """6. NF4 and int8 quantize + dequantize of a weight vs a plain copy of it."""
    from lora_edu.quant import absmax_dequantize, absmax_quantize, nf4_dequantize, nf4_quantize

    n = 256 if quick else 4096
    torch.manual_seed(0)
    w = torch.randn(n, n)
    reps = 3 if quick else 7

    def nf4():
        p, a = nf4_quantize(w, 64)
        return nf4_dequantize(p, a, w.shape, 64)

    def int8():
        q, s = absmax_quantize(w, 8, dim=0)
        return absmax_dequantize(q, s)

    tn, tc = interleaved(nf4, w.clone, repeats=reps, warmup=1)
    ti, tc2 = interleaved(int8, w.clone, repeats=reps, warmup=1)
    return [
        Row(f"NF4 quantize+dequantize {n}x{n}", "NF4 round trip", "tensor copy", tn * 1e3, tc * 1e3, "ms",
            "within 10x", tn / tc <= 10),
        Row(f"int8 absmax (per channel) quantize+dequantize {n}x{n}", "int8 round trip", "tensor copy",
            ti * 1e3, tc2 * 1e3, "ms", "within 10x", ti / tc2 <= 10),
    ]


def row_browser_latency(quick: bool, presses: int = 30) -> list[Row]:
    """5. In JupyterLab in headless Chromium: a key press on the rank slider (notebook 02's photo)
    until the new picture is painted, vs the floor, a no-op widget round trip (a slider echoing
    its value into a label) in the same kernel, key presses interleaved."""
    from lora_edu.tools import browser as B

    name = "rank slider in JupyterLab (Chromium): key press -> new picture vs no-op widget"
    why = "skipped with --quick" if quick else B.browser_missing()
    if why:
        return [Row(name, "explorer", "no-op", None, None, "ms", "explorer/no-op <= 1.5", None, skipped=why)]
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="lora-edu-bench-") as tmp:
        src = Path(tmp) / "src"
        B.write_latency_notebook(src / "latency.ipynb")
        lab = B.start_lab(Path(tmp) / "lab", src)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(B.CHROMIUM), args=B.CHROMIUM_ARGS, headless=True)
                page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
                times = B.measure_latency(page, lab, "latency.ipynb", presses=presses)
                browser.close()
        finally:
            lab.stop()
    ta, tb = statistics.median(times["explorer"]), statistics.median(times["noop"])
    return [Row(name, "explorer", "no-op", ta, tb, "ms", "explorer/no-op <= 1.5", ta / tb <= 1.5)]


def row_notebooks(root: Path) -> list[Row]:
    """7. Seconds per notebook under nbval on this machine (each in its own pytest process)."""
    rows = []
    total = 0.0
    for nb in notebook_paths(root / "notebooks"):
        t0 = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(nb)],
                             cwd=root, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        total += seconds
        rows.append(Row(f"nbval {nb.name} ({'passed' if run.returncode == 0 else 'FAILED'})", "seconds", "-",
                        seconds, 1.0, "s", "reported", None))
    rows.append(Row("whole course under nbval (sum of the above)", "seconds", "-", total, 1.0, "s",
                    "total <= 6 min offline", total <= 360))
    return rows


def machine() -> dict:
    """The machine the numbers were measured on."""
    return {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def render(rows: list[Row], info: dict) -> str:
    """The table ``make bench`` prints."""
    gpu = ", GPU " + info["gpu"] if info["gpu"] else ", no GPU"
    lines = [f"lora-edu bench on {info['processor']} ({info['cpus']} CPUs, {info['torch_threads']} torch threads)"
             f"{gpu}; torch {info['torch']}; medians of interleaved runs",
             f"{'measurement':78s} {'A':>10} {'B':>10} {'A/B':>8}  goal"]
    for r in rows:
        goal = r.goal if r.met is None else f"{r.goal}: {'met' if r.met else 'NOT met'}"
        if r.skipped:
            lines.append(f"{r.name:78s} {'-':>10} {'-':>10} {'-':>8}  {r.goal}: {r.skipped}")
        elif r.b == "-":
            lines.append(f"{r.name:78s} {r.a_value:>9.1f}{r.unit} {'':>10} {'':>8}  {goal}")
        else:
            lines.append(f"{r.name:78s} {r.a_value:>10.4g} {r.b_value:>10.4g} {r.ratio:>8.4f}  {goal}  [{r.unit}]")
    return "\n".join(lines)


def plot(rows: list[Row], path: Path) -> None:
    """A bar per measured ratio (log scale), styled by whether its goal was met."""
    ratio_rows = [r for r in rows if r.b != "-" and not r.skipped]
    fig = new_figure((9, 0.45 * len(ratio_rows) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(ratio_rows))
    colors = [OKABE_ITO[3] if r.met else OKABE_ITO[4] if r.met is False else OKABE_ITO[6] for r in ratio_rows]
    hatches = ["" if r.met else "//" if r.met is False else ".." for r in ratio_rows]
    bars = ax.barh(y, [r.ratio for r in ratio_rows], color=colors)
    for bar, h in zip(bars, hatches, strict=True):
        bar.set_hatch(h)
    ax.axvline(1.0, color=OKABE_ITO[0], linestyle="--", marker="")
    ax.set_xscale("log")
    ax.set_yticks(y, [r.name[:70] for r in ratio_rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ratio A / B (log scale; solid = goal met, hatched = not met, dotted = reported)")
    fig.tight_layout()
    fig.savefig(path)


STEPS: tuple[Callable[[bool], list[Row]], ...] = (
    row_lora_vs_peft, row_merged_vs_plain, row_gpt2_lora_vs_full, row_slider_vs_svd, row_browser_latency,
    row_quant_vs_copy,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the course benchmarks (make bench).")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, no notebooks, no browser (the smoke test)")
    parser.add_argument("--skip-notebooks", action="store_true", help="leave out the notebooks row (about 5 minutes)")
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository (default: the working directory)")
    parser.add_argument("--out", type=Path, default=Path("figures"),
                        help="folder for bench.json and bench.png (default: figures)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows: list[Row] = []
    for fn in progress(STEPS, desc="benchmarks", disable=args.quick):
        rows += fn(args.quick)
    if not (args.quick or args.skip_notebooks):
        rows += row_notebooks(args.root)
    info = machine()
    print(render(rows, info))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(
        {"machine": info, "quick": args.quick,
         "rows": [asdict(r) | {"ratio": r.ratio} for r in rows]}, indent=2) + "\n")
    plot(rows, args.out / "bench.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
