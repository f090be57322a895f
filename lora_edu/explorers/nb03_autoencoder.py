"""Notebook 03: linear vs non-linear autoencoders vs PCA on digits, with a slider over the code size r.

Live: a mosaic of a few held-out digits (top row) and their PCA, linear-AE and non-linear-AE
reconstructions at code size r, next to held-out error vs r with r marked. Every reconstruction is
computed once (:func:`lora_edu.autoencoder.reconstructions_by_code_size`); a move swaps the mosaic's
pixels.
"""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D

from lora_edu._checks import as_matrix, check_int
from lora_edu.autoencoder import reconstructions_by_code_size
from lora_edu.explorers.framework import Control, Explorer, Frame, Text, vline
from lora_edu.plotting import OKABE_ITO

ROWS = ("held-out digit", "PCA (truncated SVD)", "linear AE", "non-linear AE")
STYLES = {"PCA (truncated SVD)": ("-", "o"), "linear AE": ("--", "s"), "non-linear AE": (":", "^")}
DIGITS = mpl.colormaps["gray_r"].with_extremes(bad="white")  # NaN: the gaps, and a model not trained at r


class AutoencoderExplorer(Explorer):
    """Slider over the code sizes r of the trained autoencoders."""

    figsize = (9.5, 3.9)
    panel_size = (2.2, 2.4)
    summary_width = 3.6

    def __init__(self, X_train: np.ndarray, X_eval: np.ndarray, mean: np.ndarray, linear: dict, nonlinear: dict,
                 n_show: int = 6, image_shape: tuple[int, int] = (8, 8)) -> None:
        X_train, self.X_eval = as_matrix(X_train, "X_train"), as_matrix(X_eval, "X_eval")
        if not linear:
            raise ValueError("linear must map at least one code size r to a trained LinearAutoencoder")
        if not set(nonlinear) <= set(linear):
            raise ValueError(f"nonlinear's code sizes {sorted(nonlinear)} must be among linear's {sorted(linear)}")
        self.n_show = check_int(n_show, "n_show", 1, min(12, len(self.X_eval)))
        self.shape = tuple(image_shape)
        if int(np.prod(self.shape)) != self.X_eval.shape[1]:
            raise ValueError(f"image_shape {self.shape} must hold the {self.X_eval.shape[1]} values of one example")
        self.mean = np.asarray(mean, dtype=float)
        self.recon = reconstructions_by_code_size(X_train, self.X_eval, linear, nonlinear)
        self.errors = {name: {r: float(np.mean((R - self.X_eval) ** 2)) for r, R in by_r.items()}
                       for name, by_r in self.recon.items()}
        self.rs = sorted(linear)
        super().__init__([Control("r", "code size r", self.rs, self.rs[len(self.rs) // 2], attr="slider")],
                         title=f"Autoencoder explorer (code size r in {self.rs})")

    def mosaic(self, r: int, n: int | None = None) -> np.ndarray:
        """The first ``n`` held-out digits (row 0) and each method's reconstruction at code size ``r``
        (rows 1-3; NaN where that model was not trained at r), 1-pixel gaps: (4 (h + 1) - 1, n (w + 1) - 1)."""
        n = self.n_show if n is None else n
        h, w = self.shape
        out = np.full((len(ROWS) * (h + 1) - 1, n * (w + 1) - 1), np.nan)
        for i, name in enumerate(ROWS):
            rows = self.X_eval if i == 0 else self.recon[name].get(r)
            if rows is None:
                continue
            for c in range(n):
                out[i * (h + 1): i * (h + 1) + h, c * (w + 1): c * (w + 1) + w] = \
                    np.clip(rows[c] + self.mean, 0, 1).reshape(self.shape)
        return out

    def _mosaic_axes(self, ax: Axes, r: int, n: int, labels: bool = True) -> AxesImage:
        im = ax.imshow(self.mosaic(r, n), cmap=DIGITS, vmin=0, vmax=1, interpolation="nearest")
        h = self.shape[0]
        ax.set_yticks([i * (h + 1) + (h - 1) / 2 for i in range(len(ROWS))],
                      [name.replace(" (truncated SVD)", "") for name in ROWS] if labels else [])
        ax.set_xticks([])
        ax.tick_params(length=0, labelsize=8)
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        return im

    def _error_axes(self, ax: Axes) -> None:
        for i, (name, errs) in enumerate(self.errors.items()):
            rs = sorted(errs)
            ax.plot(rs, [errs[r] for r in rs], label=name, color=OKABE_ITO[i + 1], linestyle=STYLES[name][0],
                    marker=STYLES[name][1])
        ax.set_xscale("log", base=2)
        ax.set_xlabel("code size r (log2 scale)")
        ax.set_ylabel("held-out MSE per pixel (intensity^2)")

    def draw(self, fig: Figure, r: int) -> dict[str, AxesImage]:
        self.ax_img, self.ax_err = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
        im = self._mosaic_axes(self.ax_img, r, self.n_show)
        self._error_axes(self.ax_err)
        current = Line2D([], [], color=OKABE_ITO[0], linestyle="--", marker="", label="current r")
        self.ax_err.legend(handles=[*self.ax_err.get_lines(), current], fontsize=7)
        fig.tight_layout()
        return {"digits": im}

    def update(self, r: int) -> Frame:
        parts = [f"{name}: {self.errors[name][r]:.4f}" for name in self.errors if r in self.errors[name]]
        readout = f"<b>r = {r}</b> &nbsp;|&nbsp; held-out MSE " + " &nbsp;|&nbsp; ".join(parts)
        h = self.shape[0]
        marks = [vline(self.ax_err, r, color=OKABE_ITO[0], dash="--"),
                 Text(self.ax_img, 0.5, 1.0, f"code size r = {r}", size=11, dy=6)]
        for i, name in enumerate(ROWS[1:], start=1):
            if r not in self.recon[name]:
                marks.append(Text(self.ax_img, (self.n_show * (self.shape[1] + 1) - 2) / 2, i * (h + 1) + (h - 1) / 2,
                                  f"not trained at r = {r}", size=8, color="#555555", va="center",
                                  coords=("data", "data")))
        return Frame(readout, images={"digits": self.mosaic(r)}, marks=marks)

    # --- static picture: reconstructions at the smallest, a middle and the largest r ------------

    def static_positions(self) -> list[dict[str, int]]:
        picks = dict.fromkeys([self.rs[0], self.rs[len(self.rs) // 2], self.rs[-1]])
        return [{"r": r} for r in picks]

    def panel(self, ax: Axes, r: int) -> None:
        self._mosaic_axes(ax, r, min(self.n_show, 4), labels=ax.get_subplotspec().is_first_col())
        ax.set_title(f"code size r = {r}", fontsize=9)

    def summary(self, ax: Axes, positions: list[dict[str, int]]) -> None:
        self._error_axes(ax)
        for p in positions:
            ax.axvline(p["r"], color=OKABE_ITO[0], linestyle=":", marker="")
        ax.legend(fontsize=7)
        ax.set_ylabel("held-out MSE per pixel")
        ax.set_title("held-out error vs r (dotted: the r shown)", fontsize=9)


def autoencoder_explorer(X_train, X_eval, mean, linear: dict, nonlinear: dict, n_show: int = 6,
                         image_shape: tuple[int, int] = (8, 8)) -> AutoencoderExplorer:
    """Slider over the code size r: reconstructions of a few held-out digits and errors.

    Args:
        X_train: centred training data (n, d), used for the PCA directions.
        X_eval: centred held-out data (m, d), shown and scored.
        mean: the training mean (d,), added back for display.
        linear: {r: trained LinearAutoencoder}; the slider offers exactly these code sizes r.
        nonlinear: {r: trained NonlinearAutoencoder} (a subset of the same r).
        n_show: how many held-out digits to show (1..12).
        image_shape: (h, w) of one example, h * w = d.

    Returns:
        An :class:`AutoencoderExplorer` (``slider``, ``readout``, ``errors[method][r]``).
    """
    return AutoencoderExplorer(X_train, X_eval, mean, linear, nonlinear, n_show, image_shape)
