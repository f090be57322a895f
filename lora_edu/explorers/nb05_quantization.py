"""Notebook 05: bits and grouping (one scale per tensor or per block) vs absmax quantization error.

Live: the weight histogram with the quantization levels of a typical block (the block whose
absmax is the median; the whole tensor when per-tensor), and error vs bits for every grouping with
the current setting marked. All 35 (bits, grouping) errors are computed once, with
:func:`lora_edu.quant.quantization_error`; a move redraws the levels and the marker.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D

from lora_edu.explorers.framework import Control, Explorer, Frame, Line, dot
from lora_edu.plotting import LINESTYLES, MARKERS, OKABE_ITO
from lora_edu.quant import absmax_dequantize, absmax_quantize, blockwise_absmax_roundtrip, quantization_error

GROUPINGS: tuple[str | int, ...] = ("per-tensor", 1024, 256, 64, 16)
BITS = tuple(range(2, 9))
LEVEL, HIST = OKABE_ITO[4], OKABE_ITO[6]


def grouping_label(g: str | int) -> str:
    """``"per-tensor"`` or ``"blocks of 64"``."""
    return str(g) if g == "per-tensor" else f"blocks of {g}"


class QuantizationExplorer(Explorer):
    """Sliders ``bits`` (2..8) and ``grouping`` (:data:`GROUPINGS`) over one weight tensor."""

    figsize = (9.5, 3.6)
    panel_size = (2.4, 2.7)
    summary_width = 3.4

    def __init__(self, weight: torch.Tensor, name: str = "weight") -> None:
        w = torch.as_tensor(weight, dtype=torch.float32).detach()
        if w.numel() < 16:
            raise ValueError(f"weight must have at least 16 values, got {w.numel()}")
        if not torch.isfinite(w).all() or not w.any():
            raise ValueError("weight must be finite with at least one non-zero value")
        self.w, self.name = w, name
        self.flat = w.reshape(-1).numpy()
        #: errors[grouping][bits]: relative error in %
        self.errors = {g: {b: quantization_error(w, b, g) for b in BITS} for g in GROUPINGS}
        #: zeros[grouping][bits]: how many of the non-zero weights quantize to exactly 0
        self.zeros = {g: {b: self._zero_count(b, g) for b in BITS} for g in GROUPINGS}
        self.n_nonzero = int((w != 0).sum())
        absmax = np.abs(self.flat)
        bulk = float(np.quantile(absmax, 0.999))
        self.lim = 1.05 * float(absmax.max()) if absmax.max() <= 1.3 * bulk else 1.3 * bulk
        self.outside = int(np.sum(absmax > self.lim))
        super().__init__([Control("bits", "bits", BITS, 4),
                          Control("grouping", "grouping", GROUPINGS, 64)],
                         title="Quantization explorer (bits x grouping)")

    def _zero_count(self, bits: int, g: str | int) -> int:
        wq = (absmax_dequantize(*absmax_quantize(self.w, bits)) if g == "per-tensor"
              else blockwise_absmax_roundtrip(self.w, bits, g))
        return int(((wq == 0) & (self.w != 0)).sum())

    def zero_share(self, bits: int, grouping: str | int) -> str:
        """The share of non-zero weights that round to 0, never rounded to 0 % or 100 % unless exact."""
        count, total = self.zeros[grouping][bits], self.n_nonzero
        share = 100 * count / total
        if 0 < count and share < 0.05:
            return "< 0.1 %"
        if count < total and share > 99.95:
            return "> 99.9 %"
        return f"{share:.1f} %"

    def levels(self, bits: int, grouping: str | int) -> np.ndarray:
        """The 2^(bits-1)*2 - 1 values a typical block can take: its absmax * (-qmax..qmax) / qmax."""
        if grouping == "per-tensor":
            amax = float(np.abs(self.flat).max())
        else:
            g = int(grouping)
            n_blocks = -(-len(self.flat) // g)
            padded = np.zeros(n_blocks * g)
            padded[: len(self.flat)] = self.flat
            block_max = np.abs(padded.reshape(n_blocks, g)).max(axis=1)
            amax = float(np.sort(block_max)[n_blocks // 2])  # the median block
        qmax = 2 ** (bits - 1) - 1
        return np.arange(-qmax, qmax + 1) * amax / qmax

    def _histogram(self, ax: Axes) -> None:
        inside = self.flat[np.abs(self.flat) <= self.lim]
        ax.hist(inside, bins=120, range=(-self.lim, self.lim), color=HIST, log=True)
        ax.set_xlim(-self.lim, self.lim)
        ax.set_ylim(0.8, 2 * len(self.flat))
        ax.set_xlabel(f"{self.name} value")
        ax.set_ylabel("count (log scale)")
        if self.outside:
            ax.text(0.98, 0.97, f"{self.outside} value{'s' if self.outside > 1 else ''} beyond the axis\n"
                    f"(max |w| = {np.abs(self.flat).max():.3g})", transform=ax.transAxes, ha="right", va="top",
                    fontsize=7)

    def _error_axes(self, ax: Axes) -> None:
        for i, g in enumerate(GROUPINGS):
            ax.plot(BITS, [self.errors[g][b] for b in BITS], label=grouping_label(g), color=OKABE_ITO[i + 1],
                    linestyle=LINESTYLES[i], marker=MARKERS[i])
        ax.set_yscale("log")
        ax.set_xlabel("bits per weight")
        ax.set_ylabel("relative error ||W - Q(W)|| / ||W|| (%)")

    def _level_lines(self, bits: int, grouping: str | int) -> tuple[np.ndarray, np.ndarray]:
        lv = self.levels(bits, grouping)
        x = np.column_stack([lv, lv, np.full_like(lv, np.nan)]).ravel()
        y = np.tile([0.8, 2 * len(self.flat), np.nan], len(lv))
        return x, y

    def draw(self, fig: Figure, bits: int, grouping: str | int) -> dict[str, AxesImage]:
        self.ax_h, self.ax_e = fig.subplots(1, 2)
        self._histogram(self.ax_h)
        self.ax_h.legend(handles=[Line2D([], [], color=LEVEL, linewidth=0.8, label="levels of a typical block")],
                         fontsize=7, loc="upper left")
        self._error_axes(self.ax_e)
        current = Line2D([], [], color=OKABE_ITO[0], marker="o", markersize=9, linestyle="", label="current")
        self.ax_e.legend(handles=[*self.ax_e.get_lines(), current], fontsize=7)
        fig.tight_layout()
        return {}

    def update(self, bits: int, grouping: str | int) -> Frame:
        lv = self.levels(bits, grouping)
        err = self.errors[grouping][bits]
        readout = (f"<b>{bits} bits, {grouping_label(grouping)}</b> &nbsp;|&nbsp; {len(lv)} levels, "
                   f"step {lv[1] - lv[0]:.2g} in a typical block &nbsp;|&nbsp; relative error {err:.2f} % "
                   f"&nbsp;|&nbsp; {self.zero_share(bits, grouping)} of the weights round to 0")
        x, y = self._level_lines(bits, grouping)
        marks = [Line(self.ax_h, x, y, color=LEVEL, width=0.6), dot(self.ax_e, bits, err, color=OKABE_ITO[0], size=10)]
        return Frame(readout, marks=marks)

    # --- static picture: 4 and 8 bits, per tensor and in blocks of 64 ---------------------------

    def static_positions(self) -> list[dict]:
        return [{"bits": b, "grouping": g} for b in (4, 8) for g in ("per-tensor", 64)]

    def panel(self, ax: Axes, bits: int, grouping: str | int) -> None:
        self._histogram(ax)
        x, y = self._level_lines(bits, grouping)
        ax.plot(x, y, color=LEVEL, linewidth=0.6, marker="")
        ax.set_title(f"{bits} bits, {grouping_label(grouping)}: error {self.errors[grouping][bits]:.2g} %\n"
                     f"{self.zero_share(bits, grouping)} of weights round to 0", fontsize=9)
        if not ax.get_subplotspec().is_first_col():
            ax.set_ylabel("")
            ax.set_xlabel("value")

    def summary(self, ax: Axes, positions: list[dict]) -> None:
        self._error_axes(ax)
        for p in positions:
            ax.plot([p["bits"]], [self.errors[p["grouping"]][p["bits"]]], color=OKABE_ITO[0], marker="o",
                    markersize=7, linestyle="")
        ax.legend(fontsize=7)
        ax.set_ylabel("relative error (%)")
        ax.set_title("error vs bits (dots: the settings shown)", fontsize=9)


def quantization_explorer(weight: torch.Tensor, name: str = "weight") -> QuantizationExplorer:
    """Sliders for bits (2..8) and grouping (per tensor or block size) over ``weight`` (any shape,
    >= 16 values): the histogram with a typical block's quantization levels, and error vs bits.

    Returns:
        A :class:`QuantizationExplorer` (``bits``, ``grouping``, ``readout``, ``errors[grouping][bits]``).
    """
    return QuantizationExplorer(weight, name)
