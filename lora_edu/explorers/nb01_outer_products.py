"""Notebook 01: a (d, n) matrix built from rank-1 outer products ``u_i v_i^T``, plus noise.

Sliders: the number of terms (0..min(d, n)) and a noise level. Live: the matrix as a heat map and
its singular values on a log axis with numpy's rank tolerance; the readout gives the numerical rank.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lora_edu._checks import check_int
from lora_edu.explorers.framework import Bars, Control, Explorer, Frame, Text, hline
from lora_edu.plotting import OKABE_ITO
from lora_edu.rank import default_tolerance, numerical_rank, singular_values

NOISE_LEVELS = (0.0, 1e-12, 1e-6, 1e-3, 1e-1)
FLOOR = 1e-18  # a singular value of exactly 0 is drawn at the bottom of the log axis
BAR, TOL = OKABE_ITO[2], OKABE_ITO[4]


class OuterProductExplorer(Explorer):
    """Sliders ``terms`` and ``noise`` over ``M = sum_{i < terms} u_i v_i^T + noise * E``."""

    figsize = (8.0, 3.2)
    panel_size = (2.4, 2.7)

    def __init__(self, d: int = 12, n: int = 10, seed: int = 0) -> None:
        self.d, self.n = check_int(d, "d", 1, 64), check_int(n, "n", 1, 64)
        rng = np.random.default_rng(seed)
        self.p = p = min(self.d, self.n)
        self.us, self.vs = rng.standard_normal((self.d, p)), rng.standard_normal((p, self.n))
        self.eps = rng.standard_normal((self.d, self.n))
        super().__init__([Control("terms", "terms", range(p + 1), min(3, p)),
                          Control("noise", "noise", NOISE_LEVELS, 0.0, fmt=lambda v: f"{v:g}")],
                         title=f"Outer-product explorer ({self.d} x {self.n})")

    def matrix(self, terms: int, noise: float) -> np.ndarray:
        """The (d, n) matrix for these slider values."""
        return self.us[:, :terms] @ self.vs[:terms] + noise * self.eps

    def _spectrum_axes(self, ax: Axes) -> None:
        ax.set_yscale("log")
        ax.set_ylim(FLOOR, 1e2)
        ax.set_xlim(0.4, self.p + 0.6)
        ax.set_xlabel("index i")
        ax.set_ylabel("singular value sigma_i (log scale)")

    def draw(self, fig: Figure, terms: int, noise: float) -> dict[str, AxesImage]:
        self.ax_m, self.ax_s = fig.subplots(1, 2)
        heat = self.ax_m.imshow(self.matrix(terms, noise), cmap="cividis", vmin=-4, vmax=4)
        fig.colorbar(heat, ax=self.ax_m, fraction=0.046, pad=0.04, label="entry value")
        self.ax_m.set_xlabel("column j")
        self.ax_m.set_ylabel("row i")
        self._spectrum_axes(self.ax_s)
        self.ax_s.legend(handles=[Patch(color=BAR, label="sigma_i"),
                                  Line2D([], [], color=TOL, linestyle="--", label="numpy rank tolerance")],
                         loc="upper right", fontsize=8)
        fig.tight_layout()
        return {"matrix": heat}

    def update(self, terms: int, noise: float) -> Frame:
        M = self.matrix(terms, noise)
        s, tol, r = singular_values(M), default_tolerance(M), numerical_rank(M)
        readout = (f"<b>terms = {terms}</b>, noise = {noise:g} &nbsp;|&nbsp; numerical rank = <b>{r}</b> "
                   f"(tolerance {tol:.1e}) &nbsp;|&nbsp; parameters as factors: {terms * (self.d + self.n)} "
                   f"vs {self.d * self.n} dense")
        marks = [Bars(self.ax_s, np.arange(1, len(s) + 1), np.maximum(s, FLOOR), bottom=FLOOR, color=BAR),
                 hline(self.ax_s, max(tol, FLOOR), color=TOL, dash="--"),
                 Text(self.ax_m, 0.5, 1.0, f"{terms} outer products + noise {noise:g}", size=11, dy=6),
                 Text(self.ax_s, 0.5, 1.0, f"numerical rank = {r}", size=11, dy=6)]
        return Frame(readout, images={"matrix": M}, marks=marks)

    # --- static picture: the spectrum as terms grow, then as noise appears -----------------------

    def static_positions(self) -> list[dict[str, float]]:
        t = min(3, self.p)
        return [{"terms": 1, "noise": 0.0}, {"terms": t, "noise": 0.0}, {"terms": t, "noise": 1e-12},
                {"terms": t, "noise": 1e-3}]

    def panel(self, ax: Axes, terms: int, noise: float) -> None:
        M = self.matrix(terms, noise)
        s = singular_values(M)
        ax.bar(np.arange(1, len(s) + 1), np.maximum(s, FLOOR), bottom=FLOOR, color=BAR)
        ax.axhline(max(default_tolerance(M), FLOOR), color=TOL, linestyle="--", marker="", label="tolerance")
        self._spectrum_axes(ax)
        plural = "" if terms == 1 else "s"
        ax.set_title(f"{terms} term{plural}, noise {noise:g}\nnumerical rank {numerical_rank(M)}", fontsize=9)
        if ax.get_subplotspec().is_first_col():
            ax.legend(fontsize=7, loc="lower left")
        else:
            ax.set_ylabel("")


def outer_product_explorer(d: int = 12, n: int = 10, seed: int = 0) -> OuterProductExplorer:
    """Build a (d, n) matrix from ``terms`` random rank-1 outer products ``u_i v_i^T``, plus noise.

    Sliders: the number of terms (0..min(d, n)) and a noise level. Shows the matrix as a heat
    map, its singular values on a log axis with numpy's rank tolerance, and the numerical rank.

    Returns:
        An :class:`OuterProductExplorer` (attributes ``terms``, ``noise``, ``readout``).
    """
    return OuterProductExplorer(d, n, seed)
