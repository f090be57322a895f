"""Notebook 04: what LoRA learned at each rank r, with a slider over the ranks trained.

Live: the singular values of the learned update delta W = (alpha / r) B A (at most r are non-zero),
next to the full fine-tune's for reference, and held-out accuracy vs r with r marked.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D

from lora_edu.explorers.framework import Control, Explorer, Frame, Line, dot, vline
from lora_edu.plotting import OKABE_ITO

LORA, FULL, MARK = OKABE_ITO[2], OKABE_ITO[0], OKABE_ITO[4]
FLOOR = 1e-7  # bottom of the log axis: singular values below it are numerically zero here


class LoraRankExplorer(Explorer):
    """Slider over the LoRA ranks r in ``results``."""

    figsize = (9.0, 3.6)
    panel_size = (2.4, 2.7)
    summary_width = 3.4

    def __init__(self, results: dict, full_spectrum: np.ndarray | None = None,
                 full_accuracy: float | None = None) -> None:
        if not results:
            raise ValueError("results must map at least one rank r to its measurements")
        for r, res in results.items():
            missing = {"singular_values", "accuracy", "trainable"} - set(res)
            if missing:
                raise ValueError(f"results[{r}] lacks {sorted(missing)}")
        self.results, self.ranks = results, sorted(results)
        self.full_spectrum = None if full_spectrum is None else np.asarray(full_spectrum, dtype=float)
        self.full_accuracy = full_accuracy
        n_sv = max(len(results[r]["singular_values"]) for r in self.ranks)
        if self.full_spectrum is not None:
            n_sv = max(n_sv, len(self.full_spectrum))
        self.n_sv = min(n_sv, 2 * max(self.ranks))
        spectra = [self.spectrum(r) for r in self.ranks]
        if self.full_spectrum is not None:
            spectra.append(self.full_spectrum[: self.n_sv])
        self.top = 2 * max(float(np.max(s, initial=FLOOR)) for s in spectra)
        super().__init__([Control("r", "rank r", self.ranks, self.ranks[len(self.ranks) // 2], attr="slider")],
                         title=f"LoRA rank explorer (r in {self.ranks})")

    def spectrum(self, r: int) -> np.ndarray:
        """The first ``n_sv`` singular values of the rank-r update."""
        return np.asarray(self.results[r]["singular_values"], dtype=float)[: self.n_sv]

    def nonzero(self, r: int) -> int:
        """How many singular values of the rank-r update exceed 1e-6 of its largest."""
        sv = self.spectrum(r)
        return int(np.sum(sv > 1e-6 * max(float(sv.max(initial=0.0)), 1e-30)))

    def _spectrum_axes(self, ax: Axes) -> None:
        if self.full_spectrum is not None:
            fs = self.full_spectrum[: self.n_sv]
            ax.plot(np.arange(1, len(fs) + 1), fs, color=FULL, linestyle=":", marker="", label="full fine-tune")
        ax.set_yscale("log")
        ax.set_ylim(FLOOR, self.top)
        ax.set_xlim(0.5, self.n_sv + 0.5)
        ax.set_xlabel("singular value index i")
        ax.set_ylabel("sigma_i of delta W (log scale)")

    def _accuracy_axes(self, ax: Axes) -> None:
        ax.plot(self.ranks, [100 * self.results[r]["accuracy"] for r in self.ranks], color=LORA, marker="s",
                label="LoRA")
        if self.full_accuracy is not None:
            ax.axhline(100 * self.full_accuracy, color=FULL, linestyle=":", marker="", label="full fine-tune")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("rank r (log2 scale)")
        ax.set_ylabel("held-out accuracy (%)")

    def draw(self, fig: Figure, r: int) -> dict[str, AxesImage]:
        self.ax_s, self.ax_a = fig.subplots(1, 2)
        self._spectrum_axes(self.ax_s)
        self.ax_s.legend(handles=[*self.ax_s.get_lines(),
                                  Line2D([], [], color=LORA, marker="o", markersize=3, label="LoRA delta W"),
                                  Line2D([], [], color=MARK, linestyle="--", marker="", label="rank r")],
                         fontsize=7, loc="lower left")
        self._accuracy_axes(self.ax_a)
        current = Line2D([], [], color=MARK, marker="o", markersize=8, linestyle="", label="current r")
        self.ax_a.legend(handles=[*self.ax_a.get_lines(), current], fontsize=7, loc="lower right")
        fig.tight_layout()
        return {}

    def update(self, r: int) -> Frame:
        sv, acc = self.spectrum(r), 100 * self.results[r]["accuracy"]
        readout = (f"<b>r = {r}</b> &nbsp;|&nbsp; accuracy {acc:.1f} % &nbsp;|&nbsp; "
                   f"{self.results[r]['trainable']:,} trainable parameters &nbsp;|&nbsp; "
                   f"delta W has {self.nonzero(r)} non-negligible singular values (at most r = {r})")
        marks = [Line(self.ax_s, np.arange(1, len(sv) + 1), np.maximum(sv, 1e-12), color=LORA, marker="o", size=3),
                 vline(self.ax_s, r, color=MARK, dash="--"), dot(self.ax_a, r, acc, color=MARK, size=9)]
        return Frame(readout, marks=marks)

    # --- static picture: the spectrum at a few ranks, accuracy vs r beside them ------------------

    def static_positions(self) -> list[dict[str, int]]:
        n = len(self.ranks)
        picks = dict.fromkeys(self.ranks if n <= 4 else [self.ranks[i] for i in (0, n // 3, 2 * n // 3, n - 1)])
        return [{"r": r} for r in picks]

    def panel(self, ax: Axes, r: int) -> None:
        self._spectrum_axes(ax)
        sv = self.spectrum(r)
        ax.plot(np.arange(1, len(sv) + 1), np.maximum(sv, 1e-12), color=LORA, marker="o", markersize=3,
                label="LoRA delta W")
        ax.axvline(r, color=MARK, linestyle="--", marker="")
        ax.set_title(f"r = {r}: {self.nonzero(r)} non-negligible sigma\naccuracy "
                     f"{100 * self.results[r]['accuracy']:.1f} %", fontsize=9)
        if ax.get_subplotspec().is_first_col():
            ax.legend(fontsize=7, loc="lower left")
        else:
            ax.set_ylabel("")

    def summary(self, ax: Axes, positions: list[dict[str, int]]) -> None:
        self._accuracy_axes(ax)
        for p in positions:
            ax.plot([p["r"]], [100 * self.results[p["r"]]["accuracy"]], color=MARK, marker="o", markersize=7,
                    linestyle="")
        ax.legend(fontsize=7, loc="lower right")
        ax.set_ylabel("accuracy (%)")
        ax.set_title("accuracy vs r (dots: the r shown)", fontsize=9)


def lora_rank_explorer(results: dict, full_spectrum: np.ndarray | None = None,
                       full_accuracy: float | None = None) -> LoraRankExplorer:
    """Slider over the LoRA rank r: the singular values of the learned update and the accuracy.

    Args:
        results: ``{r: {"singular_values": 1-D array (the learned delta W's), "accuracy": float in
            [0, 1], "trainable": int}}`` for each rank trained.
        full_spectrum: singular values of the full fine-tune's delta W (drawn for reference).
        full_accuracy: the full fine-tune's accuracy (a dotted reference line).

    Returns:
        A :class:`LoraRankExplorer` (``slider``, ``readout``).
    """
    return LoraRankExplorer(results, full_spectrum, full_accuracy)
