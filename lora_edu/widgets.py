"""Slider explorers for the notebooks (and ``make app``).

Each explorer draws one matplotlib figure *once*, renders it to PNG into an ``ipywidgets.Image``,
and on every slider move only updates the artists that changed (``set_data``, ``set_xdata``...)
and re-renders. No figure is rebuilt and no SVD is recomputed on a slider move.

Displayed in a notebook, an explorer also carries a static PNG (a small grid of ranks) in its
output, which is what GitHub, nbviewer or any viewer without a live kernel shows instead.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lora_edu._checks import as_matrix, check_int
from lora_edu.plotting import COURSE_RC, OKABE_ITO
from lora_edu.plotting import LINESTYLES as LS
from lora_edu.plotting import MARKERS as MK
from lora_edu.svd import SVDCache

FALLBACK_NOTE = (
    "If you can read this line, the interactive widget did not render: the picture below it is "
    "the static fallback. In JupyterLab, install jupyterlab_widgets in the environment that runs "
    "Lab (README > Troubleshooting)."
)


def figure_png(fig: Figure) -> bytes:
    """Render ``fig`` (an Agg-backed Figure) to PNG bytes at its own dpi."""
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.canvas.print_png(buf)
    return buf.getvalue()


def new_figure(figsize: tuple[float, float], **kwargs) -> Figure:
    """A pyplot-free Figure in the course style (no inline auto-display, no global state)."""
    import matplotlib as mpl

    with mpl.rc_context(COURSE_RC):
        fig = Figure(figsize=figsize, dpi=90, **kwargs)
    FigureCanvasAgg(fig)
    return fig


class LiveFigure:
    """A Figure shown as an ``ipywidgets.Image``; call :meth:`refresh` after updating artists."""

    def __init__(self, fig: Figure) -> None:
        from ipywidgets import Image, Layout

        self.fig = fig
        self.widget = Image(format="png", layout=Layout(width=f"{fig.get_figwidth() * fig.dpi:.0f}px"))
        self.renders = 0
        self.refresh()

    def refresh(self) -> None:
        self.widget.value = figure_png(self.fig)
        self.renders += 1


def _explorer_base():
    from ipywidgets import VBox

    class Explorer(VBox):
        """A VBox whose notebook output also carries a static PNG for kernel-less viewers."""

        def __init__(self, children, fallback: Figure, title: str) -> None:
            super().__init__(children)
            self.add_class("lora-edu-explorer")  # a stable hook for CSS and the browser tests
            self._fallback_png = base64.b64encode(figure_png(fallback)).decode("ascii")
            self._title = title

        def _repr_mimebundle_(self, **kwargs):
            data = super()._repr_mimebundle_(**kwargs) or {}
            data["text/plain"] = f"{self._title}. {FALLBACK_NOTE}"
            data["image/png"] = self._fallback_png
            return data

    return Explorer


# ---------------------------------------------------------------------------------------------
# Notebook 02: rank explorer for an image
# ---------------------------------------------------------------------------------------------


def default_ranks(max_rank: int) -> list[int]:
    """A handful of ranks spread over 1..max_rank for the static grid, always ending at full rank."""
    ks = [k for k in (1, 5, 20, 50) if k < max_rank]
    return ks + [max_rank]


def rank_grid_figure(image: np.ndarray, ks: list[int] | None = None, cache: SVDCache | None = None) -> Figure:
    """Static fallback: the image at a few ranks, each titled with its rank and relative error."""
    cache = cache or SVDCache(image)
    ks = default_ranks(cache.max_rank) if ks is None else [check_int(k, "ks[i]", 0, cache.max_rank) for k in ks]
    fig = new_figure((2.2 * len(ks), 2.8))
    axes = fig.subplots(1, len(ks))
    lo, hi = float(cache.A.min()), float(cache.A.max())
    for ax, k in zip(np.atleast_1d(axes), ks, strict=True):
        ax.imshow(cache.approx(k), cmap="gray", vmin=lo, vmax=hi)
        label = "full rank" if k == cache.max_rank else f"rank {k}"
        ax.set_title(f"{label}\nerror {100 * cache.relative_error(k):.1f} %", fontsize=9)
        ax.set_axis_off()
    fig.suptitle("Truncated SVD of the image (relative Frobenius error)", fontsize=10)
    fig.tight_layout()
    return fig


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def rank_explorer(image: np.ndarray, k: int = 20):
    """Interactive rank-k compression of ``image`` (shape (H, W)) with a slider for k.

    Shows the rank-k image, the relative error-vs-k curve with the current k marked, the energy
    kept and the storage of the rank-k factors vs the full image. The SVD is computed once here;
    a slider move multiplies the first k factors and updates the drawn artists in place.

    Returns:
        The widget (an ``ipywidgets.VBox``) with attributes ``slider``, ``readout``, ``live``
        (its :class:`LiveFigure`), ``cache`` (:class:`~lora_edu.svd.SVDCache`) and ``k``. If
        ipywidgets is missing, prints why and returns the static grid figure instead.
    """
    A = as_matrix(image, "image")
    cache = SVDCache(A)
    k = check_int(k, "k", 0, cache.max_rank)
    try:
        from ipywidgets import HTML, IntSlider, Layout
    except ImportError:
        print("ipywidgets is not installed, so here is the static fallback: a grid of ranks.")
        return rank_grid_figure(A, cache=cache)

    m, n = A.shape
    lo, hi = float(A.min()), float(A.max())
    fig = new_figure((9.0, 3.6))
    ax_img, ax_err = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.25]})
    im = ax_img.imshow(cache.approx(k), cmap="gray", vmin=lo, vmax=hi)
    ax_img.set_axis_off()
    title = ax_img.set_title("")
    ks = np.arange(cache.max_rank + 1)
    rel = 100 * cache.errors / cache.norm if cache.norm > 0 else np.zeros_like(cache.errors)
    ax_err.plot(ks, rel, color=OKABE_ITO[2], linestyle="-", marker="", label="rank-k error (Eckart-Young)")
    vline = ax_err.axvline(k, color=OKABE_ITO[4], linestyle="--", marker="", label="current k")
    (dot,) = ax_err.plot([k], [rel[k]], color=OKABE_ITO[4], marker="o", markersize=7, linestyle="")
    ax_err.set_xscale("symlog", linthresh=10)
    ax_err.set_xlim(0, cache.max_rank)
    ax_err.set_ylim(0, 100)
    ax_err.set_xlabel("rank k (number of singular values kept)")
    ax_err.set_ylabel("relative error ||A - A_k||_F / ||A||_F (%)")
    ax_err.legend(loc="upper right", fontsize=8)
    fig.tight_layout()

    live = LiveFigure(fig)
    slider = IntSlider(
        value=k, min=0, max=cache.max_rank, step=1, description="rank k",
        continuous_update=True, layout=Layout(width="600px"),
    )
    readout = HTML()

    def update(change=None) -> None:
        kk = slider.value
        im.set_data(cache.approx(kk))
        vline.set_xdata([kk, kk])
        dot.set_data([kk], [rel[kk]])
        title.set_text(f"rank {kk} of {cache.max_rank}")
        store = cache.storage(kk)
        readout.value = (
            f"<b>k = {kk}</b> &nbsp;|&nbsp; relative error {100 * cache.relative_error(kk):.2f} % "
            f"&nbsp;|&nbsp; energy kept {100 * cache.energy(kk):.2f} % "
            f"&nbsp;|&nbsp; storage {_fmt_int(store)} numbers = {100 * store / (m * n):.1f} % "
            f"of the {_fmt_int(m * n)} pixels"
        )
        live.refresh()

    slider.observe(update, names="value")
    Explorer = _explorer_base()
    widget = Explorer(
        [slider, readout, live.widget],
        fallback=rank_grid_figure(A, cache=cache),
        title=f"Rank explorer for a {m} x {n} image",
    )
    widget.slider, widget.readout, widget.live, widget.cache = slider, readout, live, cache
    update()
    return widget


# ---------------------------------------------------------------------------------------------
# Notebook 01: a matrix built from k rank-1 outer products
# ---------------------------------------------------------------------------------------------

NOISE_LEVELS = (0.0, 1e-12, 1e-6, 1e-3, 1e-1)


def outer_product_figure(d: int = 12, n: int = 10, terms: int = 3, noise: float = 0.0, seed: int = 0) -> Figure:
    """Static version of :func:`outer_product_explorer` for one setting."""
    from lora_edu.rank import default_tolerance, singular_values

    us, vs, eps = _outer_factors(d, n, seed)
    M = us[:, :terms] @ vs[:terms] + noise * eps
    s = singular_values(M)
    fig = new_figure((8.0, 3.2))
    ax_m, ax_s = fig.subplots(1, 2)
    ax_m.imshow(M, cmap="cividis")
    ax_m.set_title(f"sum of {terms} outer products")
    ax_s.bar(np.arange(1, len(s) + 1), np.maximum(s, 1e-18), color=OKABE_ITO[2])
    ax_s.axhline(default_tolerance(M), color=OKABE_ITO[4], linestyle="--", label="numpy tolerance")
    ax_s.set_yscale("log")
    ax_s.set_ylim(1e-18, 1e2)
    ax_s.set_xlabel("index i")
    ax_s.set_ylabel("singular value sigma_i")
    ax_s.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _outer_factors(d: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((d, min(d, n))), rng.standard_normal((min(d, n), n)), rng.standard_normal((d, n))


def outer_product_explorer(d: int = 12, n: int = 10, seed: int = 0):
    """Build a (d, n) matrix from ``terms`` random rank-1 outer products ``u_i v_i^T``, plus noise.

    Sliders: the number of terms (0..min(d, n)) and a noise level. Shows the matrix as a heat
    map, its singular values on a log axis with numpy's rank tolerance, and the numerical rank.
    Returns the widget (attributes ``terms``, ``noise``, ``readout``, ``live``).
    """
    from lora_edu.rank import default_tolerance, numerical_rank, singular_values

    d = check_int(d, "d", 1, 64)
    n = check_int(n, "n", 1, 64)
    try:
        from ipywidgets import HTML, HBox, IntSlider, SelectionSlider
    except ImportError:
        print("ipywidgets is not installed, so here is the static fallback for 3 terms.")
        return outer_product_figure(d, n, 3, 0.0, seed)

    us, vs, eps = _outer_factors(d, n, seed)
    p = min(d, n)
    fig = new_figure((8.0, 3.2))
    ax_m, ax_s = fig.subplots(1, 2)
    heat = ax_m.imshow(np.zeros((d, n)), cmap="cividis", vmin=-4, vmax=4)
    fig.colorbar(heat, ax=ax_m, fraction=0.046, pad=0.04, label="entry value")
    ax_m.set_xlabel("column j")
    ax_m.set_ylabel("row i")
    mtitle = ax_m.set_title("")
    bars = ax_s.bar(np.arange(1, p + 1), np.full(p, 1e-18), color=OKABE_ITO[2], label="sigma_i")
    tol_line = ax_s.axhline(1e-15, color=OKABE_ITO[4], linestyle="--", marker="", label="numpy rank tolerance")
    ax_s.set_yscale("log")
    ax_s.set_ylim(1e-18, 1e2)
    ax_s.set_xlabel("index i")
    ax_s.set_ylabel("singular value sigma_i (log scale)")
    ax_s.legend(loc="lower left", fontsize=8)
    stitle = ax_s.set_title("")
    fig.tight_layout()
    live = LiveFigure(fig)

    terms = IntSlider(value=3, min=0, max=p, description="terms")
    noise = SelectionSlider(options=list(NOISE_LEVELS), value=0.0, description="noise")
    readout = HTML()

    def update(change=None) -> None:
        t, nz = terms.value, noise.value
        M = us[:, :t] @ vs[:t] + nz * eps
        heat.set_data(M)
        s = singular_values(M)
        for bar, h in zip(bars, np.maximum(s, 1e-18), strict=True):
            bar.set_height(h)
        tol = default_tolerance(M)
        tol_line.set_ydata([max(tol, 1e-18)] * 2)
        r = numerical_rank(M)
        mtitle.set_text(f"{t} outer products + noise {nz:g}")
        stitle.set_text(f"numerical rank = {r}")
        readout.value = (
            f"<b>terms = {t}</b>, noise = {nz:g} &nbsp;|&nbsp; numerical rank = <b>{r}</b> "
            f"(tolerance {tol:.1e}) &nbsp;|&nbsp; parameters as factors: {t * (d + n)} vs {d * n} dense"
        )
        live.refresh()

    terms.observe(update, names="value")
    noise.observe(update, names="value")
    Explorer = _explorer_base()
    widget = Explorer(
        [HBox([terms, noise]), readout, live.widget],
        fallback=outer_product_figure(d, n, 3, 0.0, seed),
        title=f"Outer-product explorer ({d} x {n})",
    )
    widget.terms, widget.noise, widget.readout, widget.live = terms, noise, readout, live
    update()
    return widget


# ---------------------------------------------------------------------------------------------
# Notebook 03: linear vs non-linear autoencoders vs PCA on digits
# ---------------------------------------------------------------------------------------------


def _ae_reconstructions(X_train, X_eval, linear, nonlinear):
    """Precompute every reconstruction the explorer can show: {method: {k: (n, d) array}}."""
    import torch

    from lora_edu.autoencoder import principal_directions

    out = {"PCA (truncated SVD)": {}, "linear AE": {}, "non-linear AE": {}}
    Xt = torch.from_numpy(np.asarray(X_eval, dtype=np.float32))
    for k in sorted(linear):
        V = principal_directions(X_train, k)
        out["PCA (truncated SVD)"][k] = X_eval @ V @ V.T
        with torch.no_grad():
            out["linear AE"][k] = linear[k](Xt).double().numpy()
            if k in nonlinear:
                out["non-linear AE"][k] = nonlinear[k](Xt).double().numpy()
    return out


def autoencoder_explorer(X_train, X_eval, mean, linear: dict, nonlinear: dict, n_show: int = 6,
                         image_shape: tuple[int, int] = (8, 8)):
    """Slider over the bottleneck size k: reconstructions of a few held-out digits and errors.

    Args:
        X_train: centred training data (n, d), used for the PCA directions.
        X_eval: centred held-out data (m, d), shown and scored.
        mean: the training mean (d,), added back for display.
        linear: {k: trained LinearAutoencoder}; the slider offers exactly these k.
        nonlinear: {k: trained NonlinearAutoencoder} (a subset of the same k).
        n_show: how many held-out digits to show.

    Everything is precomputed here, so a slider move only swaps image data and redraws.
    """
    X_train = as_matrix(X_train, "X_train")
    X_eval = as_matrix(X_eval, "X_eval")
    if not linear:
        raise ValueError("linear must map at least one k to a trained LinearAutoencoder")
    n_show = check_int(n_show, "n_show", 1, min(12, len(X_eval)))
    recon = _ae_reconstructions(X_train, X_eval, linear, nonlinear)
    errors = {name: {k: float(np.mean((R - X_eval) ** 2)) for k, R in d.items()} for name, d in recon.items()}
    ks = sorted(linear)
    mean = np.asarray(mean, dtype=float)

    def to_img(row):
        return np.clip(row + mean, 0, 1).reshape(image_shape)

    def draw(k):
        fig = new_figure((9.5, 4.0))
        gs = fig.add_gridspec(4, n_show + 4)
        rows = ["held-out digit"] + list(recon)
        ims = {}
        for r, name in enumerate(rows):
            for c in range(n_show):
                ax = fig.add_subplot(gs[r, c])
                if r == 0:
                    img = to_img(X_eval[c])
                elif k in recon[name]:
                    img = to_img(recon[name][k][c])
                else:  # this model was not trained at this k
                    img = np.full(image_shape, np.nan)
                ims[(r, c)] = ax.imshow(img, cmap="gray_r", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if c == 0:
                    ax.set_ylabel(name.replace(" (truncated SVD)", ""), fontsize=7, rotation=0, ha="right", va="center")
        ax_err = fig.add_subplot(gs[:, n_show + 1 :])
        styles = {"PCA (truncated SVD)": ("-", "o"), "linear AE": ("--", "s"), "non-linear AE": (":", "^")}
        for i, (name, errs) in enumerate(errors.items()):
            kk = sorted(errs)
            ax_err.plot(kk, [errs[j] for j in kk], label=name, color=OKABE_ITO[i + 1],
                        linestyle=styles[name][0], marker=styles[name][1])
        vline = ax_err.axvline(k, color=OKABE_ITO[0], linestyle="--", marker="", label="current k")
        ax_err.set_xscale("log", base=2)
        ax_err.set_xlabel("bottleneck size k (log2 scale)")
        ax_err.set_ylabel("held-out MSE per pixel (intensity^2)")
        ax_err.legend(fontsize=7)
        fig.subplots_adjust(left=0.12, right=0.98, bottom=0.14, wspace=0.1, hspace=0.1)
        return fig, ims, vline

    k0 = ks[len(ks) // 2]
    try:
        from ipywidgets import HTML, Layout, SelectionSlider
    except ImportError:
        print("ipywidgets is not installed, so here is the static fallback for k =", k0)
        return draw(k0)[0]

    fig, ims, vline = draw(k0)
    live = LiveFigure(fig)
    slider = SelectionSlider(options=ks, value=k0, description="bottleneck k", layout=Layout(width="500px"))
    readout = HTML()

    def update(change=None):
        k = slider.value
        for (r, c), im in ims.items():
            if r > 0:
                name = list(recon)[r - 1]
                im.set_data(to_img(recon[name][k][c]) if k in recon[name] else np.full(image_shape, np.nan))
        vline.set_xdata([k, k])
        parts = [f"{name}: {errors[name][k]:.4f}" for name in errors if k in errors[name]]
        readout.value = f"<b>k = {k}</b> &nbsp;|&nbsp; held-out MSE " + " &nbsp;|&nbsp; ".join(parts)
        live.refresh()

    slider.observe(update, names="value")
    Explorer = _explorer_base()
    widget = Explorer([slider, readout, live.widget], fallback=draw(k0)[0],
                      title=f"Autoencoder explorer (k in {ks})")
    widget.slider, widget.readout, widget.live, widget.errors = slider, readout, live, errors
    update()
    return widget


# ---------------------------------------------------------------------------------------------
# Notebook 04: what LoRA learned at each rank
# ---------------------------------------------------------------------------------------------


def lora_rank_explorer(results: dict, full_spectrum: np.ndarray | None = None, full_accuracy: float | None = None):
    """Slider over the LoRA rank r: the singular values of the learned update and the accuracy.

    Args:
        results: ``{r: {"singular_values": 1-D array (the learned delta W's), "accuracy": float,
            "trainable": int}}`` for each rank trained.
        full_spectrum: singular values of the full fine-tune's delta W (drawn for reference).
        full_accuracy: the full fine-tune's accuracy (a dashed reference line).
    """
    if not results:
        raise ValueError("results must map at least one rank r to its measurements")
    for r, res in results.items():
        missing = {"singular_values", "accuracy", "trainable"} - set(res)
        if missing:
            raise ValueError(f"results[{r}] lacks {sorted(missing)}")
    ranks = sorted(results)
    n_sv = max(len(results[r]["singular_values"]) for r in ranks)
    if full_spectrum is not None:
        n_sv = max(n_sv, len(full_spectrum))
    n_sv = min(n_sv, 2 * max(ranks))

    def draw(r):
        fig = new_figure((9.0, 3.6))
        ax_s, ax_a = fig.subplots(1, 2)
        if full_spectrum is not None:
            fs = np.asarray(full_spectrum)[:n_sv]
            ax_s.plot(np.arange(1, len(fs) + 1), fs, color=OKABE_ITO[0], linestyle=":", marker="",
                      label="full fine-tune")
        sv = np.asarray(results[r]["singular_values"])[:n_sv]
        (line,) = ax_s.plot(np.arange(1, len(sv) + 1), np.maximum(sv, 1e-12), color=OKABE_ITO[2], marker="o",
                            markersize=3, label="LoRA delta W")
        vline_s = ax_s.axvline(r, color=OKABE_ITO[4], linestyle="--", marker="", label="rank r")
        ax_s.set_yscale("log")
        ax_s.set_ylim(1e-7, None)
        ax_s.set_xlim(0.5, n_sv + 0.5)
        ax_s.set_xlabel("singular value index i")
        ax_s.set_ylabel("sigma_i of delta W (log scale)")
        ax_s.legend(fontsize=7, loc="lower left")
        acc = [100 * results[k]["accuracy"] for k in ranks]
        ax_a.plot(ranks, acc, color=OKABE_ITO[2], marker="s", label="LoRA")
        if full_accuracy is not None:
            ax_a.axhline(100 * full_accuracy, color=OKABE_ITO[0], linestyle=":", marker="", label="full fine-tune")
        (dot,) = ax_a.plot([r], [100 * results[r]["accuracy"]], color=OKABE_ITO[4], marker="o", markersize=9,
                           linestyle="", label="current r")
        ax_a.set_xscale("log", base=2)
        ax_a.set_xlabel("rank r (log2 scale)")
        ax_a.set_ylabel("held-out accuracy (%)")
        ax_a.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        return fig, line, vline_s, dot

    r0 = ranks[len(ranks) // 2]
    try:
        from ipywidgets import HTML, Layout, SelectionSlider
    except ImportError:
        print("ipywidgets is not installed, so here is the static fallback for r =", r0)
        return draw(r0)[0]
    fig, line, vline_s, dot = draw(r0)
    live = LiveFigure(fig)
    slider = SelectionSlider(options=ranks, value=r0, description="rank r", layout=Layout(width="500px"))
    readout = HTML()

    def update(change=None):
        r = slider.value
        sv = np.asarray(results[r]["singular_values"])[:n_sv]
        line.set_data(np.arange(1, len(sv) + 1), np.maximum(sv, 1e-12))
        vline_s.set_xdata([r, r])
        dot.set_data([r], [100 * results[r]["accuracy"]])
        nonzero = int(np.sum(sv > 1e-6 * max(sv.max(), 1e-30)))
        readout.value = (f"<b>r = {r}</b> &nbsp;|&nbsp; accuracy {100 * results[r]['accuracy']:.1f} % &nbsp;|&nbsp; "
                         f"{results[r]['trainable']:,} trainable parameters &nbsp;|&nbsp; "
                         f"delta W has {nonzero} non-negligible singular values (at most r = {r})")
        live.refresh()

    slider.observe(update, names="value")
    Explorer = _explorer_base()
    widget = Explorer([slider, readout, live.widget], fallback=draw(r0)[0],
                      title=f"LoRA rank explorer (r in {ranks})")
    widget.slider, widget.readout, widget.live = slider, readout, live
    update()
    return widget


# ---------------------------------------------------------------------------------------------
# Notebook 05: bits and block size vs quantization error
# ---------------------------------------------------------------------------------------------

GROUPINGS = ("per-tensor", 1024, 256, 64, 16)


def quantization_error(weight, bits: int, grouping) -> float:
    """Relative Frobenius error (%) of absmax quantize->dequantize at ``bits`` with one scale per
    tensor (``"per-tensor"``) or per block of ``grouping`` consecutive values."""
    import torch

    from lora_edu.quant import absmax_dequantize, absmax_quantize, blockwise_absmax_roundtrip

    w = torch.as_tensor(weight, dtype=torch.float32)
    if grouping == "per-tensor":
        q, s = absmax_quantize(w, bits)
        wq = absmax_dequantize(q, s)
    else:
        wq = blockwise_absmax_roundtrip(w, bits, int(grouping))
    return float(100 * torch.linalg.norm(w - wq) / torch.linalg.norm(w))


def quantization_explorer(weight, name: str = "weight"):
    """Sliders for bits (2..8) and grouping (per tensor or block size): the weight histogram with
    the first block's quantization levels overlaid, and error vs bits for every grouping.

    All 35 (bits, grouping) errors are computed here once; a slider move redraws the levels.
    """
    import torch

    w = torch.as_tensor(weight, dtype=torch.float32).detach()
    if w.numel() < 16:
        raise ValueError(f"weight must have at least 16 values, got {w.numel()}")
    bits_range = list(range(2, 9))
    errors = {g: [quantization_error(w, b, g) for b in bits_range] for g in GROUPINGS}
    flat = w.reshape(-1)

    def levels(bits, grouping):
        block = flat if grouping == "per-tensor" else flat[: int(grouping)]
        qmax = 2 ** (bits - 1) - 1
        amax = float(block.abs().max()) or 1.0
        return np.arange(-qmax, qmax + 1) * amax / qmax

    def draw(bits, grouping):
        fig = new_figure((9.5, 3.6))
        ax_h, ax_e = fig.subplots(1, 2)
        ax_h.hist(flat.numpy(), bins=120, color=OKABE_ITO[6], log=True)
        lv = levels(bits, grouping)
        vl = ax_h.vlines(lv, 0.8, flat.numel(), color=OKABE_ITO[4], linewidth=0.6, label="levels (first block)")
        ax_h.set_xlabel(f"{name} value")
        ax_h.set_ylabel("count (log scale)")
        ax_h.legend(fontsize=7, loc="upper right")
        for i, g in enumerate(GROUPINGS):
            label = g if g == "per-tensor" else f"blocks of {g}"
            ax_e.plot(bits_range, errors[g], label=label, color=OKABE_ITO[i + 1], linestyle=LS[i], marker=MK[i])
        (dot,) = ax_e.plot([bits], [errors[grouping][bits - 2]], color=OKABE_ITO[0], marker="o", markersize=10,
                           linestyle="", label="current")
        ax_e.set_yscale("log")
        ax_e.set_xlabel("bits per weight")
        ax_e.set_ylabel("relative error ||W - Q(W)|| / ||W|| (%)")
        ax_e.legend(fontsize=7)
        fig.tight_layout()
        return fig, vl, dot


    try:
        from ipywidgets import HTML, HBox, IntSlider, SelectionSlider
    except ImportError:
        print("ipywidgets is not installed, so here is the static fallback for 4 bits, blocks of 64.")
        return draw(4, 64)[0]
    fig, vl, dot = draw(4, 64)
    live = LiveFigure(fig)
    bits = IntSlider(value=4, min=2, max=8, description="bits")
    grouping = SelectionSlider(options=list(GROUPINGS), value=64, description="grouping")
    readout = HTML()

    def update(change=None):
        b, g = bits.value, grouping.value
        lv = levels(b, g)
        vl.set_segments([[(v, 0.8), (v, flat.numel())] for v in lv])
        dot.set_data([b], [errors[g][b - 2]])
        readout.value = (f"<b>{b} bits, {g if g == 'per-tensor' else f'blocks of {g}'}</b> &nbsp;|&nbsp; "
                         f"{len(lv)} levels &nbsp;|&nbsp; relative error {errors[g][b - 2]:.2f} %")
        live.refresh()

    bits.observe(update, names="value")
    grouping.observe(update, names="value")
    Explorer = _explorer_base()
    widget = Explorer([HBox([bits, grouping]), readout, live.widget], fallback=draw(4, 64)[0],
                      title="Quantization explorer (bits x grouping)")
    widget.bits, widget.grouping, widget.readout, widget.live, widget.errors = bits, grouping, readout, live, errors
    update()
    return widget
