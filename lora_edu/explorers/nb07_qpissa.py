"""Notebook 07: QLoRA vs QPiSSA - the 4-bit (NF4) error of a frozen weight when its top-r part moves
into the full-precision adapter, with a slider over r.

Live: the singular values of W with the top r marked; the relative NF4 error against r (QLoRA's
flat line, QPiSSA measured, the prediction ``err_0 sqrt(1 - energy kept)`` and, as a control, a
Gaussian matrix of the same shape and norm); and the error map ``|W - restored|`` of a corner of W.
Every r is computed once, at construction (one SVD, one NF4 round trip per r).
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D

from lora_edu.explorers.framework import Control, Explorer, Frame, Line, dot, vline
from lora_edu.plotting import OKABE_ITO
from lora_edu.variants import nf4_restore

QLORA, QPISSA, PRED, RANDOM, MARK = OKABE_ITO[0], OKABE_ITO[2], OKABE_ITO[1], OKABE_ITO[6], OKABE_ITO[4]
CORNER = (24, 48)  # rows x columns of W shown in the error map


def default_ranks(d: int, k: int) -> list[int]:
    """0, then powers of two up to half of min(d, k)."""
    top = max(1, min(d, k) // 2)
    return [0] + [2**i for i in range(int(np.log2(top)) + 1)]


class QPissaExplorer(Explorer):
    """Slider over the rank r of the principal part kept out of the 4-bit quantization."""

    figsize = (10.0, 3.2)
    panel_size = (2.4, 2.5)
    summary_width = 3.8

    def __init__(self, weight: torch.Tensor, name: str = "weight", ranks: list[int] | None = None,
                 blocksize: int = 64, seed: int = 0) -> None:
        if not torch.is_tensor(weight) or weight.ndim != 2:
            raise TypeError(f"weight must be a 2-D tensor (d x k), got {type(weight).__name__}")
        W = weight.detach().float().cpu()
        if min(W.shape) < 2 or not torch.isfinite(W).all() or not W.any():
            raise ValueError("weight must be a finite, non-zero matrix with at least 2 rows and 2 columns")
        d, k = W.shape
        ranks = default_ranks(d, k) if ranks is None else sorted({0, *ranks})  # r = 0 (QLoRA) always
        if ranks[0] < 0 or ranks[-1] > min(d, k) or not all(isinstance(r, int) for r in ranks):
            raise ValueError(f"ranks must be integers in [0, min(d, k)] = [0, {min(d, k)}], got {ranks}")
        self.W, self.name, self.ranks, self.shape = W, name, ranks, (d, k)
        factors = np.linalg.svd(W.double().numpy(), full_matrices=False)
        self.sv = factors[1]
        self.energy = np.concatenate([[0.0], np.cumsum(self.sv**2) / np.sum(self.sv**2)])  # energy[r]
        norm = float(torch.linalg.norm(W))
        rows, cols = min(CORNER[0], d), min(CORNER[1], k)
        self.errors, self.maps = {}, {}
        for r in ranks:
            restored = nf4_restore(W, r, blocksize, factors)
            self.errors[r] = float(torch.linalg.norm(W - restored)) / norm
            self.maps[r] = (W - restored)[:rows, :cols].abs().numpy()
        self.predicted = {r: self.errors[0] * float(np.sqrt(max(0.0, 1 - self.energy[r]))) for r in ranks}
        g = torch.Generator().manual_seed(seed)
        G = torch.randn(d, k, generator=g) * (norm / np.sqrt(d * k))
        g_factors = np.linalg.svd(G.double().numpy(), full_matrices=False)
        self.random_errors = {r: float(torch.linalg.norm(G - nf4_restore(G, r, blocksize, g_factors)))
                              / float(torch.linalg.norm(G)) for r in ranks}
        self.vmax = float(np.quantile(self.maps[0], 0.99)) or 1.0
        self.rms = float(W.pow(2).mean().sqrt())  # the typical size of an entry of W, for the colour scale
        start = min(ranks, key=lambda r: abs(r - 16))
        super().__init__([Control("r", "rank r kept in full precision", ranks, start, attr="slider")],
                         title=f"QLoRA vs QPiSSA on {name} ({d} x {k})")

    def reduction(self, r: int) -> float:
        """QPiSSA's error as a fraction of QLoRA's."""
        return self.errors[r] / self.errors[0]

    def _spectrum_axes(self, ax: Axes) -> None:
        i = np.arange(1, len(self.sv) + 1)
        ax.plot(i, self.sv, color=QLORA, marker="", linewidth=1.2, label="singular values of W")
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_xlabel("index i (log scale)")
        ax.set_ylabel("sigma_i (log scale)")

    def _error_axes(self, ax: Axes) -> None:
        rs = np.array(self.ranks)
        x = np.maximum(rs, 0.5)  # r = 0 drawn at 0.5 on the log axis
        ax.plot(x, [100 * self.errors[0]] * len(rs), color=QLORA, linestyle="--", marker="",
                label="QLoRA: NF4(W)")
        ax.plot(x, [100 * self.errors[r] for r in rs], color=QPISSA, marker="o", label="QPiSSA: NF4(W - W_r) + W_r")
        ax.plot(x, [100 * self.predicted[r] for r in rs], color=PRED, linestyle=":", marker="",
                label=r"predicted: $e_0 \sqrt{1 - \mathrm{energy}_r}$")
        ax.plot(x, [100 * self.random_errors[r] for r in rs], color=RANDOM, linestyle="-.", marker="^",
                label="control: Gaussian matrix, same size")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("r kept in the adapter (log2; r = 0 at 0.5)")
        ax.set_ylabel("error ||W - W_hat||_F / ||W||_F (%)")
        ax.set_ylim(0, 105 * max(max(self.errors.values()), max(self.random_errors.values())))

    def draw(self, fig: Figure, r: int) -> dict[str, AxesImage]:
        self.ax_s, self.ax_e, self.ax_m = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1.3, 1.1]})
        self._spectrum_axes(self.ax_s)
        self.ax_s.legend(handles=[*self.ax_s.get_lines(),
                                  Line2D([], [], color=QPISSA, marker="o", markersize=3, linestyle="",
                                         label="the top r (into the adapter)")], fontsize=7, loc="lower left")
        self._error_axes(self.ax_e)
        current = Line2D([], [], color=MARK, marker="o", markersize=8, linestyle="", label="current r")
        self.ax_e.legend(handles=[*self.ax_e.get_lines(), current], fontsize=7, loc="lower left")
        im = self.ax_m.imshow(self.maps[r], cmap="gray_r", vmin=0, vmax=self.vmax, origin="upper",
                              interpolation="nearest", aspect="auto")
        self.ax_m.set_title(f"|W - W_hat|, corner {self.maps[r].shape[0]} x {self.maps[r].shape[1]}", fontsize=9)
        self.ax_m.set_xlabel("input j")
        self.ax_m.set_ylabel("output i")
        self.ax_m.grid(False)
        self.colorbar(fig, im, self.ax_m)
        fig.tight_layout()
        return {"map": im}

    def colorbar(self, fig: Figure, im: AxesImage, axes) -> None:
        """The maps' colour scale, drawn once: ``|W_ij - W_hat_ij|`` in W's own units (every map shares
        ``vmin = 0`` and ``vmax``, so one scale serves the live map and all the small multiples)."""
        bar = fig.colorbar(im, ax=axes, fraction=0.08, pad=0.03, extend="max")  # clipped at vmax
        bar.set_label(f"error $|W_{{ij}} - \\widehat{{W}}_{{ij}}|$\n(units of W; RMS of W: {self.rms:.3f})", fontsize=8)
        bar.ax.tick_params(labelsize=7)

    def laid_out(self, picture) -> None:
        """Store the live picture's base PNG on an adaptive palette (the same to the eye, ~3x smaller
        in a saved notebook's widget state)."""
        import io

        from PIL import Image

        with Image.open(io.BytesIO(picture.png)) as image:
            rgba = image.convert("RGBA")
        rgb = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
        buf = io.BytesIO()
        rgb.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(buf, "PNG", optimize=True)
        picture.png = buf.getvalue()

    def update(self, r: int) -> Frame:
        d, k = self.shape
        readout = (f"<b>r = {r}</b> &nbsp;|&nbsp; the top {r} singular values hold {100 * self.energy[r]:.1f} % of "
                   f"||W||<sub>F</sub><sup>2</sup> &nbsp;|&nbsp; NF4 error: QLoRA {100 * self.errors[0]:.2f} %, "
                   f"QPiSSA {100 * self.errors[r]:.2f} % (predicted {100 * self.predicted[r]:.2f} %) &nbsp;|&nbsp; "
                   f"the adapter holds r (d + k) = {r * (d + k):,} numbers in full precision")
        top = np.arange(1, r + 1)
        marks = [Line(self.ax_s, top, self.sv[:r], color=QPISSA, marker="o", size=3, stroke=False),
                 vline(self.ax_e, max(r, 0.5), color=MARK, dash="--"),
                 dot(self.ax_e, max(r, 0.5), 100 * self.errors[r], color=MARK, size=9)]
        if r:
            marks.insert(1, vline(self.ax_s, r, color=MARK, dash="--"))
        return Frame(readout, images={"map": self.maps[r]}, marks=marks)

    # --- static picture: the error map at a few r, the error curves beside them ---------------------

    def static_bundle(self) -> dict[str, str]:
        """As the framework's, with the PNG on an adaptive palette (it looks the same, ~3x smaller)."""
        import base64

        from lora_edu.explorers.framework import _fmt
        from lora_edu.plotting import compact_figure_bytes, figure_png

        fig = self.static_figure()
        mime, data = compact_figure_bytes(fig)
        if mime != "image/png":  # (a plot always is; keep the notebook's PNG contract regardless)
            data = figure_png(fig)
        settings = "; ".join(", ".join(f"{k} = {_fmt(v)}" for k, v in p.items()) for p in self.static_positions())
        return {"image/png": base64.b64encode(data).decode("ascii"),
                "text/plain": f"{self.title}, static picture at: {settings}"}

    def static_figure(self) -> Figure:
        """The framework's small multiples, plus the maps' shared colour scale."""
        fig = super().static_figure()
        self.colorbar(fig, fig.axes[0].images[0], [ax for ax in fig.axes if ax.images])
        return fig

    def static_positions(self) -> list[dict[str, int]]:
        wanted = [0, 4, 16, 64]
        picks = dict.fromkeys(min(self.ranks, key=lambda r, w=w: abs(r - w)) for w in wanted)
        return [{"r": r} for r in picks]

    def panel(self, ax: Axes, r: int) -> None:
        ax.imshow(self.maps[r], cmap="gray_r", vmin=0, vmax=self.vmax, interpolation="nearest", aspect="auto")
        ax.grid(False)
        label = "QLoRA (r = 0)" if r == 0 else f"QPiSSA, r = {r}"
        h, w = self.maps[r].shape
        ax.set_title(f"{label}: error {100 * self.errors[r]:.2f} %\n(top-left {h} x {w} entries)", fontsize=9)
        ax.set_xlabel("input j")
        ax.set_ylabel("output i" if ax.get_subplotspec().is_first_col() else "")

    def summary(self, ax: Axes, positions: list[dict[str, int]]) -> None:
        self._error_axes(ax)
        for p in positions:
            ax.plot([max(p["r"], 0.5)], [100 * self.errors[p["r"]]], color=MARK, marker="o", markersize=7,
                    linestyle="")
        ax.legend(fontsize=7, loc="lower left")
        ax.set_ylabel("relative error (%)")
        ax.set_title("error vs r (dots: the maps shown)", fontsize=9)


def qpissa_explorer(weight: torch.Tensor, name: str = "weight", ranks: list[int] | None = None,
                    blocksize: int = 64) -> QPissaExplorer:
    """Slider over r: NF4 error of ``weight`` (d x k) with its top-r part kept in full precision (QPiSSA).

    Args:
        weight: the frozen matrix, (d, k).
        name: how the title calls it.
        ranks: the slider's values (default: powers of two up to min(d, k) / 2); 0 (QLoRA) is always added.
        blocksize: NF4 block size (64, as QLoRA).

    Returns:
        A :class:`QPissaExplorer` (``slider``, ``readout``; ``errors[r]``, ``predicted[r]``,
        ``random_errors[r]`` as fractions).
    """
    return QPissaExplorer(weight, name, ranks, blocksize)
