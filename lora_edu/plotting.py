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



def compact_figure_bytes(fig, colors: int = 256, jpeg_quality: int = 85) -> tuple[str, bytes]:
    """``fig`` as Jupyter's inline backend draws it, in the smaller of two formats that look the same.

    A PNG with an adaptive palette of ``colors`` colours (no dithering, so lines, text and flat areas
    stay exact) is about 3x smaller than matplotlib's RGBA PNG for a plot. A photo has too many shades
    for that: where a JPEG of ``jpeg_quality`` (no chroma subsampling, so thin coloured lines stay
    sharp) is less than two thirds of the palette PNG's size, the JPEG is used. (For a plot the JPEG
    is the larger of the two, by far.)

    Returns:
        ``("image/png", bytes)`` or ``("image/jpeg", bytes)``.
    """
    import io

    from PIL import Image

    raw = io.BytesIO()
    fig.savefig(raw, format="png", dpi=fig.dpi, bbox_inches="tight",
                facecolor=fig.get_facecolor(), edgecolor=fig.get_edgecolor())
    raw.seek(0)
    with Image.open(raw) as image:
        rgba = image.convert("RGBA")
    rgb = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    png, jpeg = io.BytesIO(), io.BytesIO()
    palette = rgb.quantize(colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette.save(png, format="PNG", optimize=True)
    rgb.save(jpeg, format="JPEG", quality=jpeg_quality, subsampling=0, optimize=True)
    if 3 * jpeg.tell() < 2 * png.tell():
        return "image/jpeg", jpeg.getvalue()
    return "image/png", png.getvalue()


def compact_inline_figures(colors: int = 256, jpeg_quality: int = 85) -> None:
    """Store every inline matplotlib figure of this IPython kernel as :func:`compact_figure_bytes` does.

    The pictures look the same and the executed notebook gets about 3x smaller, which matters for a
    course committed executed and read on GitHub. Outside IPython (a script, the tests) it does nothing.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with Jupyter
        return
    shell = get_ipython()
    if shell is None:
        return
    import base64

    import matplotlib
    from matplotlib.figure import Figure

    if "inline" not in matplotlib.get_backend():
        return
    # Load the inline backend now: when it loads, it registers its own PNG formatter, which would
    # otherwise replace ours at the first figure.
    import matplotlib_inline.backend_inline  # noqa: F401
    last: list = [None, "", b""]  # the figure the PNG formatter just encoded, its mimetype and bytes

    def as_png(fig: Figure) -> str | None:
        if not fig.axes and not fig.lines:
            return None
        last[:] = [fig, *compact_figure_bytes(fig, colors, jpeg_quality)]
        return base64.b64encode(last[2]).decode("ascii") if last[1] == "image/png" else None

    def as_jpeg(fig: Figure) -> str | None:
        # IPython asks the PNG formatter first: reuse its encoding of the same display, once.
        if last[0] is fig:
            kind, data = last[1], last[2]
            last[:] = [None, "", b""]
        elif fig.axes or fig.lines:
            kind, data = compact_figure_bytes(fig, colors, jpeg_quality)
        else:
            return None
        return base64.b64encode(data).decode("ascii") if kind == "image/jpeg" else None

    formatters = shell.display_formatter.formatters
    for formatter in formatters.values():
        formatter.pop(Figure, None)
    formatters["image/png"].for_type(Figure, as_png)
    formatters["image/jpeg"].for_type(Figure, as_jpeg)
