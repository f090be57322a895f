"""``make figures`` / ``python -m lora_edu.tools.figures``: regenerate every file in ``figures/``.

Each figure is a function here, registered in :data:`FIGURES`; the README and the notebooks'
markdown show these files, so a figure is never drawn by hand or fetched from the web. Files go to
``--out`` (default ``figures/`` in the working directory: run it from the repository root).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from lora_edu.plotting import OKABE_ITO, new_figure, save_figure
from lora_edu.svd import SVDCache

FIGURES: dict[str, Callable[[], Figure]] = {}


def figure(name: str) -> Callable[[Callable[[], Figure]], Callable[[], Figure]]:
    """Decorator: register a function that draws ``figures/<name>``."""

    def register(fn: Callable[[], Figure]) -> Callable[[], Figure]:
        FIGURES[name] = fn
        return fn

    return register


def rank_grid_figure(image: np.ndarray, ks: tuple[int, ...] = (1, 5, 20, 50)) -> Figure:
    """``image`` (H, W) at each rank in ``ks`` below min(H, W) and at full rank, each titled with its
    rank and relative Frobenius error."""
    cache = SVDCache(image)
    ks = [k for k in ks if k < cache.max_rank] + [cache.max_rank]
    fig = new_figure((2.2 * len(ks), 2.8))
    axes = np.atleast_1d(fig.subplots(1, len(ks)))
    lo, hi = float(cache.A.min()), float(cache.A.max())
    for ax, k in zip(axes, ks, strict=True):
        ax.imshow(cache.approx(k), cmap="gray", vmin=lo, vmax=hi)
        label = "full rank" if k == cache.max_rank else f"rank {k}"
        ax.set_title(f"{label}\nerror {100 * cache.relative_error(k):.1f} %", fontsize=9)
        ax.set_axis_off()
    fig.suptitle("Truncated SVD of the image (relative Frobenius error)", fontsize=10)
    fig.tight_layout()
    return fig


@figure("rank_grid")
def fig_rank_grid() -> Figure:
    from lora_edu.data import sample_image

    return rank_grid_figure(sample_image())


@figure("svd_rotate_scale_rotate")
def fig_svd_geometry() -> Figure:
    """The unit circle under V^T (rotate), Sigma (scale), U (rotate) for a 2 x 2 matrix."""
    A = np.array([[2.0, 1.0], [0.5, 1.5]])
    U, s, Vt = np.linalg.svd(A)
    t = np.linspace(0, 2 * np.pi, 200)
    circle = np.stack([np.cos(t), np.sin(t)])
    stages = [
        ("x on the unit circle", np.eye(2)),
        ("V^T x (rotate)", Vt),
        ("Sigma V^T x (scale)", np.diag(s) @ Vt),
        ("U Sigma V^T x = A x (rotate)", A),
    ]
    fig = new_figure((11, 3.0))
    axes = fig.subplots(1, 4)
    e1 = np.array([1.0, 0.0])
    for ax, (title, M) in zip(axes, stages, strict=True):
        pts = M @ circle
        ax.plot(pts[0], pts[1], color=OKABE_ITO[2], marker="")
        p = M @ e1
        ax.annotate("", xy=p, xytext=(0, 0), arrowprops=dict(arrowstyle="->", color=OKABE_ITO[4], lw=2))
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlim(-2.6, 2.6)
        ax.set_ylim(-2.6, 2.6)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
    fig.suptitle(f"SVD of A = [[2, 1], [0.5, 1.5]]: sigma = {s[0]:.3f}, {s[1]:.3f}  (arrow: image of e1)", fontsize=10)
    fig.tight_layout()
    return fig


@figure("lora_factorisation")
def fig_lora_factorisation() -> Figure:
    """W (d x k) next to B (d x r) @ A (r x k), drawn to scale, with the parameter counts."""
    d, k, r = 10, 8, 3
    fig = new_figure((8.5, 3.2))
    ax = fig.subplots()
    ax.set_axis_off()

    def block(x, w, h, label, hatch, color):
        ax.add_patch(Rectangle((x, 0), w, h, facecolor=color, edgecolor="black", hatch=hatch, alpha=0.8))
        ax.text(x + w / 2, -0.9, label, ha="center", va="top", fontsize=9)

    block(0, k, d, f"W: {d} x {k} = {d * k} numbers", "", OKABE_ITO[6])
    ax.text(k + 1.5, d / 2, "=", fontsize=18, ha="center", va="center")
    ax.text(k + 1.5, d / 2 - 1.5, "(rank r)", fontsize=8, ha="center")
    block(k + 3, r, d, f"B: {d} x {r}\n= {d * r}", "//", OKABE_ITO[1])
    ax.text(k + 3 + r + 1, d / 2, "@", fontsize=16, ha="center", va="center")
    block(k + 3 + r + 2, k, r, f"A: {r} x {k}\n= {r * k}", "\\\\", OKABE_ITO[3])
    ax.text(
        k + 3 + r + 2 + k / 2, d - 1,
        f"r (d + k) = {r * (d + k)} < d k = {d * k}", ha="center", fontsize=10,
    )
    ax.set_xlim(-0.5, k + 3 + r + 2 + k + 0.5)
    ax.set_ylim(-3.2, d + 0.5)
    ax.set_aspect("equal")
    ax.set_title("A rank-r matrix is a (d x r)(r x k) product: the LoRA shape (paper notation)", fontsize=10)
    return fig


@figure("spectra_structured_vs_random")
def fig_spectra() -> Figure:
    from lora_edu.data import sample_image

    img = sample_image(size=512)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(img.shape)
    shuffled = rng.permutation(img.ravel()).reshape(img.shape)
    fig = new_figure((6.5, 4.0))
    ax = fig.subplots()
    for label, M in (("photo (512 x 512)", img), ("same pixels, shuffled", shuffled), ("Gaussian noise", noise)):
        s = np.linalg.svd(M, compute_uv=False)
        ax.plot(np.arange(1, len(s) + 1), s / s[0], label=label, markevery=40)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("index i (log scale)")
    ax.set_ylabel("sigma_i / sigma_1 (log scale)")
    ax.set_title("Structured data has fast-decaying singular values")
    ax.legend()
    fig.tight_layout()
    return fig


# README badges, drawn here as plain SVG so that the README shows no remote image.
BADGES: dict[str, tuple[str, str, str]] = {  # name: (left text, right text, right colour)
    "badge_binder": ("launch", "Binder", OKABE_ITO[4]),
    "badge_colab": ("open in", "Colab", OKABE_ITO[0]),
    "badge_offline": ("works", "offline", OKABE_ITO[2]),
}


def badge_svg(left: str, right: str, colour: str) -> str:
    """A two-part badge (grey label, coloured value) as a standalone SVG string, no external refs."""
    def width(text: str) -> int:
        return 7 * len(text) + 12  # DejaVu Sans 11px is about 7 px per character

    wl, wr = width(left), width(right)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{wl + wr}" height="20" role="img" '
        f'aria-label="{left}: {right}">\n'
        f'<rect width="{wl}" height="20" rx="3" fill="#555555"/>\n'
        f'<rect x="{wl}" width="{wr}" height="20" rx="3" fill="{colour}"/>\n'
        f'<g fill="#ffffff" font-family="DejaVu Sans,Verdana,sans-serif" font-size="11" text-anchor="middle">\n'
        f'<text x="{wl / 2:.1f}" y="14">{left}</text>\n<text x="{wl + wr / 2:.1f}" y="14">{right}</text>\n'
        f"</g>\n</svg>\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the course's figures (make figures).")
    parser.add_argument("names", nargs="*", help=f"default: all of {sorted(FIGURES) + sorted(BADGES)}")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="folder to write to (default: figures)")
    args = parser.parse_args(argv)
    names = args.names or list(FIGURES) + list(BADGES)
    unknown = [n for n in names if n not in FIGURES and n not in BADGES]
    if unknown:
        print(f"unknown figure(s) {unknown}; known: {sorted(FIGURES) + sorted(BADGES)}")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name in BADGES:
            path = args.out / f"{name}.svg"
            path.write_text(badge_svg(*BADGES[name]))
            print(f"wrote {path}")
            continue
        fmts = ("png", "svg") if name == "lora_factorisation" else ("png",)
        for path in save_figure(FIGURES[name](), name, formats=fmts, folder=args.out):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
