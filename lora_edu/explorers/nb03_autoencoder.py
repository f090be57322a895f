"""Notebook 03: linear vs non-linear autoencoders vs PCA on digits, with a slider over the bottleneck k.

Live: a mosaic of a few held-out digits (top row) and their PCA, linear-AE and non-linear-AE
reconstructions at k, next to held-out error vs k with k marked. Every reconstruction is computed
once (:func:`lora_edu.autoencoder.reconstructions_by_k`); a move swaps the mosaic's pixels.
"""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D

from lora_edu._checks import as_matrix, check_int
from lora_edu.autoencoder import reconstructions_by_k
from lora_edu.explorers.framework import Control, Explorer, Frame, Text, vline
from lora_edu.plotting import OKABE_ITO

ROWS = ("held-out digit", "PCA (truncated SVD)", "linear AE", "non-linear AE")
STYLES = {"PCA (truncated SVD)": ("-", "o"), "linear AE": ("--", "s"), "non-linear AE": (":", "^")}
DIGITS = mpl.colormaps["gray_r"].with_extremes(bad="white")  # NaN: the gaps, and a model not trained at k


class AutoencoderExplorer(Explorer):
    """Slider over the bottleneck sizes k of the trained autoencoders."""

    figsize = (9.5, 3.9)
    panel_size = (2.2, 2.4)
    summary_width = 3.6

    def __init__(self, X_train: np.ndarray, X_eval: np.ndarray, mean: np.ndarray, linear: dict, nonlinear: dict,
                 n_show: int = 6, image_shape: tuple[int, int] = (8, 8)) -> None:
        X_train, self.X_eval = as_matrix(X_train, "X_train"), as_matrix(X_eval, "X_eval")
        if not linear:
            raise ValueError("linear must map at least one k to a trained LinearAutoencoder")
        if not set(nonlinear) <= set(linear):
            raise ValueError(f"nonlinear's k {sorted(nonlinear)} must be among linear's {sorted(linear)}")
        self.n_show = check_int(n_show, "n_show", 1, min(12, len(self.X_eval)))
        self.shape = tuple(image_shape)
        if int(np.prod(self.shape)) != self.X_eval.shape[1]:
            raise ValueError(f"image_shape {self.shape} must hold the {self.X_eval.shape[1]} values of one example")
        self.mean = np.asarray(mean, dtype=float)
        self.recon = reconstructions_by_k(X_train, self.X_eval, linear, nonlinear)
        self.errors = {name: {k: float(np.mean((R - self.X_eval) ** 2)) for k, R in by_k.items()}
                       for name, by_k in self.recon.items()}
        self.ks = sorted(linear)
        super().__init__([Control("k", "bottleneck k", self.ks, self.ks[len(self.ks) // 2], attr="slider")],
                         title=f"Autoencoder explorer (k in {self.ks})")

    def mosaic(self, k: int, n: int | None = None) -> np.ndarray:
        """The first ``n`` held-out digits (row 0) and each method's reconstruction at ``k`` (rows
        1-3; NaN where that model was not trained at k), 1-pixel gaps: (4 (h + 1) - 1, n (w + 1) - 1)."""
        n = self.n_show if n is None else n
        h, w = self.shape
        out = np.full((len(ROWS) * (h + 1) - 1, n * (w + 1) - 1), np.nan)
        for r, name in enumerate(ROWS):
            rows = self.X_eval if r == 0 else self.recon[name].get(k)
            if rows is None:
                continue
            for c in range(n):
                out[r * (h + 1): r * (h + 1) + h, c * (w + 1): c * (w + 1) + w] = \
                    np.clip(rows[c] + self.mean, 0, 1).reshape(self.shape)
        return out

    def _mosaic_axes(self, ax: Axes, k: int, n: int, labels: bool = True) -> AxesImage:
        im = ax.imshow(self.mosaic(k, n), cmap=DIGITS, vmin=0, vmax=1, interpolation="nearest")
        h = self.shape[0]
        ax.set_yticks([r * (h + 1) + (h - 1) / 2 for r in range(len(ROWS))],
                      [name.replace(" (truncated SVD)", "") for name in ROWS] if labels else [])
        ax.set_xticks([])
        ax.tick_params(length=0, labelsize=8)
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        return im

    def _error_axes(self, ax: Axes) -> None:
        for i, (name, errs) in enumerate(self.errors.items()):
            ks = sorted(errs)
            ax.plot(ks, [errs[k] for k in ks], label=name, color=OKABE_ITO[i + 1], linestyle=STYLES[name][0],
                    marker=STYLES[name][1])
        ax.set_xscale("log", base=2)
        ax.set_xlabel("bottleneck size k (log2 scale)")
        ax.set_ylabel("held-out MSE per pixel (intensity^2)")

    def draw(self, fig: Figure, k: int) -> dict[str, AxesImage]:
        self.ax_img, self.ax_err = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
        im = self._mosaic_axes(self.ax_img, k, self.n_show)
        self._error_axes(self.ax_err)
        current = Line2D([], [], color=OKABE_ITO[0], linestyle="--", marker="", label="current k")
        self.ax_err.legend(handles=[*self.ax_err.get_lines(), current], fontsize=7)
        fig.tight_layout()
        return {"digits": im}

    def update(self, k: int) -> Frame:
        parts = [f"{name}: {self.errors[name][k]:.4f}" for name in self.errors if k in self.errors[name]]
        readout = f"<b>k = {k}</b> &nbsp;|&nbsp; held-out MSE " + " &nbsp;|&nbsp; ".join(parts)
        h = self.shape[0]
        marks = [vline(self.ax_err, k, color=OKABE_ITO[0], dash="--"),
                 Text(self.ax_img, 0.5, 1.0, f"bottleneck k = {k}", size=11, dy=6)]
        for r, name in enumerate(ROWS[1:], start=1):
            if k not in self.recon[name]:
                marks.append(Text(self.ax_img, (self.n_show * (self.shape[1] + 1) - 2) / 2, r * (h + 1) + (h - 1) / 2,
                                  f"not trained at k = {k}", size=8, color="#555555", va="center",
                                  coords=("data", "data")))
        return Frame(readout, images={"digits": self.mosaic(k)}, marks=marks)

    # --- static picture: reconstructions at the smallest, a middle and the largest k ------------

    def static_positions(self) -> list[dict[str, int]]:
        picks = dict.fromkeys([self.ks[0], self.ks[len(self.ks) // 2], self.ks[-1]])
        return [{"k": k} for k in picks]

    def panel(self, ax: Axes, k: int) -> None:
        self._mosaic_axes(ax, k, min(self.n_show, 4), labels=ax.get_subplotspec().is_first_col())
        ax.set_title(f"bottleneck k = {k}", fontsize=9)

    def summary(self, ax: Axes, positions: list[dict[str, int]]) -> None:
        self._error_axes(ax)
        for p in positions:
            ax.axvline(p["k"], color=OKABE_ITO[0], linestyle=":", marker="")
        ax.legend(fontsize=7)
        ax.set_ylabel("held-out MSE per pixel")
        ax.set_title("held-out error vs k (dotted: the k shown)", fontsize=9)


def autoencoder_explorer(X_train, X_eval, mean, linear: dict, nonlinear: dict, n_show: int = 6,
                         image_shape: tuple[int, int] = (8, 8)) -> AutoencoderExplorer:
    """Slider over the bottleneck size k: reconstructions of a few held-out digits and errors.

    Args:
        X_train: centred training data (n, d), used for the PCA directions.
        X_eval: centred held-out data (m, d), shown and scored.
        mean: the training mean (d,), added back for display.
        linear: {k: trained LinearAutoencoder}; the slider offers exactly these k.
        nonlinear: {k: trained NonlinearAutoencoder} (a subset of the same k).
        n_show: how many held-out digits to show (1..12).
        image_shape: (h, w) of one example, h * w = d.

    Returns:
        An :class:`AutoencoderExplorer` (``slider``, ``readout``, ``errors[method][k]``).
    """
    return AutoencoderExplorer(X_train, X_eval, mean, linear, nonlinear, n_show, image_shape)
