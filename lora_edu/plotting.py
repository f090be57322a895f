"""One figure style for the whole course, pyplot-free figures, and saving into ``figures/``.

Colours are the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies)
and every series also gets its own line style and marker, so plots stay readable in grayscale.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib as mpl
from cycler import cycler
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

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


def new_figure(figsize: tuple[float, float], dpi: float = 90, **kwargs) -> Figure:
    """A pyplot-free Figure in the course style: no inline auto-display, no global state.

    Args:
        figsize: (width, height) in inches; the figure is ``figsize * dpi`` pixels.
        dpi: pixels per inch of :func:`figure_png`.
        **kwargs: passed to :class:`matplotlib.figure.Figure`.
    """
    with mpl.rc_context(COURSE_RC):
        fig = Figure(figsize=figsize, dpi=dpi, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure) -> bytes:
    """``fig`` rendered to PNG bytes at its own dpi and size (no tight bounding box: the pixels
    are exactly ``fig.bbox``, so display coordinates of its artists are pixel positions)."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.canvas.print_png(buf)
    return buf.getvalue()


def save_figure(fig: Figure, name: str, formats: tuple[str, ...] = ("png",), folder: str | Path = "figures",
                ) -> list[Path]:
    """Save ``fig`` as ``<folder>/<name>.<fmt>`` for each format; returns the paths written.

    ``folder`` is relative to the working directory (``make figures`` runs in the repository root).
    """
    if not name or "/" in name or "\\" in name or "." in name:
        raise ValueError(f"name must be a bare file stem such as 'rank_grid', got {name!r}")
    folder = Path(folder)
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
