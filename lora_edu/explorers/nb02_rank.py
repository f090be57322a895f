"""Notebook 02: rank-r compression of an image with a slider for r.

Live: the rank-r image next to the error-vs-r curve (Eckart-Young) with r marked; the readout
gives the error, the energy kept and the storage of the factors. The SVD is computed once
(:class:`~lora_edu.svd.SVDCache`); a move multiplies the first r factors and sends those pixels.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D

from lora_edu._checks import as_matrix, check_int
from lora_edu.explorers.framework import Control, Explorer, Frame, Picture, Text, box_average, dot, vline
from lora_edu.plotting import OKABE_ITO
from lora_edu.svd import SVDCache

CURVE, MARK = OKABE_ITO[2], OKABE_ITO[4]


class RankExplorer(Explorer):
    """Slider over r = 0..min(H, W): the best rank-r approximation of an image (H, W)."""

    figsize = (9.0, 3.6)
    panel_size = (2.1, 2.9)
    summary_width = 3.4

    def __init__(self, image: np.ndarray, r: int = 20) -> None:
        self.A = as_matrix(image, "image")
        self.cache = SVDCache(self.A)
        r = check_int(r, "r", 0, self.cache.max_rank)
        norm = self.cache.norm
        self.rel = 100 * self.cache.errors / norm if norm > 0 else np.zeros_like(self.cache.errors)
        self.vmin, self.vmax = float(self.A.min()), float(self.A.max())
        self.shown = None  # the SVD factors averaged down to the displayed pixels (laid_out)
        m, n = self.A.shape
        super().__init__([Control("r", "rank r", range(self.cache.max_rank + 1), r, attr="slider", width="600px")],
                         title=f"Rank explorer for a {m} x {n} image")

    def _curve(self, ax: Axes) -> None:
        ks = np.arange(self.cache.max_rank + 1)
        ax.plot(ks, self.rel, color=CURVE, linestyle="-", marker="", label="rank-r error (Eckart-Young)")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(0, self.cache.max_rank)
        ax.set_ylim(0, 100)
        ax.set_xlabel("rank r (number of singular values kept)")
        ax.set_ylabel("relative error ||A - A_r||_F / ||A||_F (%)")

    def draw(self, fig: Figure, r: int) -> dict[str, AxesImage]:
        self.ax_img, self.ax_err = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.25]})
        im = self.ax_img.imshow(self.cache.approx(r), cmap="gray", vmin=self.vmin, vmax=self.vmax)
        self.ax_img.set_axis_off()
        self._curve(self.ax_err)
        current = Line2D([], [], color=MARK, linestyle="--", marker="o", label="current r")
        self.ax_err.legend(handles=[*self.ax_err.get_lines(), current], loc="upper right", fontsize=8)
        fig.tight_layout()
        return {"image": im}

    def laid_out(self, picture: Picture) -> None:
        # A_r shrunk to the h x w pixels on screen is (R U_r s_r)(Vt_r C^T): shrink the factors once,
        # then a move costs an (h, r)(r, w) product instead of (m, r)(r, n) plus a resize.
        _, _, w, h = picture.boxes["image"]
        m, n = self.A.shape
        if h < m and w < n:
            c = self.cache
            self.shown = (box_average(m, h) @ (c.U * c.s), c.Vt @ box_average(n, w).T)

    def update(self, r: int) -> Frame:
        c, (m, n) = self.cache, self.A.shape
        store = c.storage(r)
        readout = (
            f"<b>r = {r}</b> &nbsp;|&nbsp; relative error {100 * c.relative_error(r):.2f} % "
            f"&nbsp;|&nbsp; energy kept {100 * c.energy(r):.2f} % "
            f"&nbsp;|&nbsp; storage {store:,} numbers = {100 * store / (m * n):.1f} % "
            f"of the {m * n:,} pixels"
        )
        marks = [vline(self.ax_err, r, color=MARK, dash="--"), dot(self.ax_err, r, self.rel[r], color=MARK),
                 Text(self.ax_img, 0.5, 1.0, f"rank {r} of {c.max_rank}", size=11, dy=6)]
        image = c.approx(r) if self.shown is None else self.shown[0][:, :r] @ self.shown[1][:r]
        return Frame(readout, images={"image": image}, marks=marks)

    # --- static picture: ranks other than the figure above it in notebook 02 (1, 5, 20, 50, full) ---

    def static_positions(self) -> list[dict[str, int]]:
        rs = [r for r in (2, 10, 40) if r < self.cache.max_rank] + [self.cache.max_rank]
        return [{"r": r} for r in rs]

    def panel(self, ax: Axes, r: int) -> None:
        m, n = self.A.shape
        ax.imshow(self.cache.approx(r), cmap="gray", vmin=self.vmin, vmax=self.vmax)
        ax.set_axis_off()
        ax.set_title(f"r = {r}: error {self.rel[r]:.1f} %\nstorage {100 * self.cache.storage(r) / (m * n):.0f} % "
                     "of the pixels", fontsize=9)

    def summary(self, ax: Axes, positions: list[dict[str, int]]) -> None:
        self._curve(ax)
        for p in positions:
            ax.plot([p["r"]], [self.rel[p["r"]]], color=MARK, marker="o", linestyle="")
            ax.annotate(f"r = {p['r']}", (p["r"], self.rel[p["r"]]), textcoords="offset points", xytext=(4, 6),
                        fontsize=8)
        ax.set_ylabel("relative error (%)")
        ax.set_title("error vs r (symlog axis)", fontsize=9)


def rank_explorer(image: np.ndarray, r: int = 20, *, k: int | None = None) -> RankExplorer:
    """Interactive rank-r compression of ``image`` (shape (H, W)) with a slider for r.

    Args:
        image: (H, W) grayscale values.
        r: the initial rank, 0..min(H, W).
        k: the same as ``r`` (its name before the course wrote every rank as r).

    Returns:
        A :class:`RankExplorer`: ``slider`` (r), ``readout``, ``cache`` (the
        :class:`~lora_edu.svd.SVDCache`); shown by displaying it (the last line of a cell).
    """
    return RankExplorer(image, r if k is None else k)
