"""One figure style for the whole course, and saving into ``figures/``.

Colours are the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies)
and every series also gets its own line style and marker, so plots stay readable in grayscale.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
from cycler import cycler

#: Okabe & Ito (2008) colour-blind-safe palette, black first.
OKABE_ITO = (
    "#000000",
    "#E69F00",
    "#0072B2",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
)
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), "-", "--")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

#: Where ``make figures`` writes: the repository's ``figures/`` folder.
FIGURES_DIR = Path(__file__).resolve().parent.parent / "figures"

COURSE_RC = {
    "axes.prop_cycle": cycler(color=OKABE_ITO) + cycler(linestyle=LINESTYLES) + cycler(marker=MARKERS),
    "lines.markersize": 4,
    "lines.linewidth": 1.6,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "image.cmap": "gray",
    # Fixed ids and no date keep regenerated SVGs byte-identical.
    "svg.hashsalt": "lora-edu",
}


def use_course_style() -> None:
    """Apply the course style to matplotlib globally (idempotent)."""
    mpl.rcParams.update(COURSE_RC)


def save_figure(fig, name: str, formats: tuple[str, ...] = ("png",), folder: Path | None = None) -> list[Path]:
    """Save ``fig`` as ``figures/<name>.<fmt>`` for each format; returns the paths written."""
    if not name or "/" in name or "\\" in name or "." in name:
        raise ValueError(f"name must be a bare file stem such as 'rank_grid', got {name!r}")
    folder = FIGURES_DIR if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        if fmt not in ("png", "svg"):
            raise ValueError(f"formats may contain 'png' and 'svg', got {fmt!r}")
        path = folder / f"{name}.{fmt}"
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        with mpl.rc_context({"svg.hashsalt": "lora-edu"}):  # stable ids: same figure, same bytes
            fig.savefig(path, format=fmt, metadata=metadata)
        paths.append(path)
    return paths


def palette_png(png: bytes, colors: int = 256) -> bytes:
    """Re-encode PNG bytes with a palette of at most ``colors`` colours (alpha included).

    A plot holds a few thousand distinct RGBA values at most, nearly all of them anti-aliasing
    shades along lines and glyphs; a 256-colour palette draws the same picture in about a third of
    the bytes of matplotlib's 32-bit PNG. An image with no more than ``colors`` colours is kept exactly.
    """
    import io

    import numpy as np
    from PIL import Image

    _check_colors(colors)
    image = Image.open(io.BytesIO(png)).convert("RGBA")
    rgba = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    codes, index = np.unique(rgba.view(np.uint32).ravel(), return_inverse=True)
    if len(codes) <= colors:  # few colours: an exact palette
        paletted = Image.fromarray(index.reshape(rgba.shape[:2]).astype(np.uint8), mode="P")
        paletted.putpalette(codes.view(np.uint8).tobytes(), rawmode="RGBA")
    else:
        paletted = image.quantize(colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    out = io.BytesIO()
    paletted.save(out, format="PNG", optimize=True)
    return out.getvalue()


def compact_inline_figures(colors: int = 256) -> bool:
    """Show this kernel's inline matplotlib figures as palette PNGs (:func:`palette_png`).

    Jupyter stores every figure in the notebook file; with a palette the file shrinks about threefold
    and the figures look the same. Call once after importing pyplot. Returns False (and changes
    nothing) outside IPython.
    """
    _check_colors(colors)
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import print_figure
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    # Load the backend now: the inline backend registers its own PNG formatter when it is first
    # loaded (lazily, at the first figure), which would replace ours.
    plt.switch_backend(mpl.get_backend())

    def png(fig: Figure) -> bytes | None:
        data = print_figure(fig, "png", bbox_inches="tight")  # what the inline backend would store
        return None if data is None else palette_png(data, colors)

    shell.display_formatter.formatters["image/png"].for_type(Figure, png)
    return True


def _check_colors(colors: object) -> None:
    if not isinstance(colors, int) or isinstance(colors, bool) or not 2 <= colors <= 256:
        raise ValueError(f"colors must be an integer in [2, 256], got {colors!r}")
