"""The explorer framework: one slider explorer = controls, readout, live picture, static picture.

An explorer is a subclass of :class:`Explorer` that writes only what is specific to it:

* ``draw(fig, **values)`` draws the figure once: everything that never moves (axes, curves,
  legends) plus the ``imshow`` artists whose pixels change, returned by name;
* ``update(**values)`` returns a :class:`Frame` for the slider values: the readout line, new pixel
  arrays for those images, and the :class:`Line`/:class:`Bars`/:class:`Text` marks that move;
* ``static_positions()``, ``panel(ax, **values)`` and optionally ``summary(ax, positions)`` draw
  the static small multiples that viewers without a kernel see (GitHub, nbconvert, slides).

Everything else is here, once: the sliders (:class:`Control`), the readout, the decision
"ipywidgets or static fallback", and the live picture. The live picture is fast because a slider
move never re-renders the matplotlib figure. The figure is rendered to PNG once, with the moving
images hidden; on a move the framework encodes only the new pixels (numpy, an uncompressed BMP the
size of their axes) into an image placed exactly over their axes, and redraws the moving marks as
a small SVG overlay whose coordinates come from the axes' own transforms; the legends, cut from
the first render, stay on top. The readout, the new pixels (as ``data:`` URLs) and the SVG go to
the browser as one widget message. So a move costs the update's arithmetic, a colour lookup, a
few hundred bytes of SVG and one message: about what a slider echoing its value into a label
costs.

Displayed in a notebook, an explorer emits two outputs: the live widget, then the static PNG.
Any viewer that cannot run the widget (nbconvert HTML, GitHub, nbviewer, a Lab without the
widget extension) shows the PNG; where the widget renders, a CSS rule that the widget itself
carries hides the PNG, so the reader never sees the picture twice.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.transforms import blended_transform_factory

from lora_edu.plotting import OKABE_ITO, figure_png, new_figure

#: The text/plain of the live widget's output: what a front end without widget support prints.
FALLBACK_NOTE = (
    "If you can read this line, the interactive widget did not render: the picture below it is "
    "the static fallback. In JupyterLab, install jupyterlab_widgets in the environment that runs "
    "Lab (README > Troubleshooting)."
)
NO_IPYWIDGETS = "ipywidgets is not installed, so here is the static picture (pip install ipywidgets for sliders)."

#: CSS carried by every live explorer. (1) Where the live widget renders, hide the static PNG
#: output right after it (the reader already sees the live picture). Viewers that do not render
#: the widget never get this rule, so they show the PNG. (2) Small arrays are scaled up with
#: square pixels, as matplotlib draws them. (3) The legends, cut from the base PNG, stay above the
#: moving marks (the marks' box is positioned, so it would otherwise paint over them).
CSS = """<style>
.jp-OutputArea-child:has(.lora-edu-has-static) + .jp-OutputArea-child:has(> [data-mime-type="image/png"])
  { display: none; }
.lora-edu-pixelated { image-rendering: pixelated; }
.lora-edu-legend { position: relative; z-index: 1; }
</style>"""

# ---------------------------------------------------------------------------------------------
# Controls and frames
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Control:
    """One slider: the values it offers and how it is labelled.

    Attributes:
        name: keyword under which :meth:`Explorer.update` receives the value (``k``, ``bits``).
        label: the slider's description in the page (``"rank r"``).
        options: every value, in slider order. Consecutive ints give an ``IntSlider``, anything
            else a ``SelectionSlider`` whose labels are ``fmt(value)``.
        value: the initial value (one of ``options``).
        attr: the explorer attribute that holds the slider widget (default: ``name``).
        fmt: how a value is written on a ``SelectionSlider``.
        width: CSS width of the slider.
    """

    name: str
    label: str
    options: Sequence[Any]
    value: Any
    attr: str | None = None
    fmt: Callable[[Any], str] = str
    width: str = "480px"

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        if not self.options:
            raise ValueError(f"control {self.name!r} needs at least one option")
        if self.value not in self.options:
            raise ValueError(f"{self.name} must be one of {list(self.options)}, got {self.value!r}")

    @property
    def attribute(self) -> str:
        return self.attr or self.name

    @property
    def is_int_range(self) -> bool:
        """True when the options are consecutive ints (shown as an ``IntSlider`` with min/max)."""
        o = self.options
        return all(type(v) is int for v in o) and list(o) == list(range(o[0], o[0] + len(o)))

    def make_widget(self):
        """The ipywidgets slider; moving it fires on every step (``continuous_update``), so a drag
        shows intermediate frames rather than one at release."""
        from ipywidgets import IntSlider, Layout, SelectionSlider

        common = dict(description=self.label, continuous_update=True, layout=Layout(width=self.width),
                      style={"description_width": "initial"})
        if self.is_int_range:
            return IntSlider(value=self.value, min=self.options[0], max=self.options[-1], step=1, **common)
        return SelectionSlider(options=[(self.fmt(v), v) for v in self.options], value=self.value, **common)


@dataclass(frozen=True)
class Line:
    """A polyline and/or markers over ``ax``; a non-finite point breaks the line.

    ``coords`` says, for x and for y, whether values are ``"data"`` or ``"axes"`` (0..1) coordinates,
    so a vertical line at x = k spanning the axes is ``Line(ax, [k, k], [0, 1], coords=("data", "axes"))``.
    ``width`` and ``size`` (marker diameter) are in points, as in matplotlib.
    """

    ax: Axes
    x: Sequence[float]
    y: Sequence[float]
    color: str = OKABE_ITO[4]
    width: float = 1.6
    dash: str | None = None  # None (solid), "--", ":" or "-."
    marker: str | None = None  # None, "o" or "s"
    size: float = 7.0
    stroke: bool = True
    coords: tuple[str, str] = ("data", "data")


@dataclass(frozen=True)
class Bars:
    """Vertical bars over ``ax`` in data coordinates: centres ``x``, tops ``top``, all from ``bottom``."""

    ax: Axes
    x: Sequence[float]
    top: Sequence[float]
    bottom: float = 0.0
    width: float = 0.8
    color: str = OKABE_ITO[2]


@dataclass(frozen=True)
class Text:
    """A text at (x, y) in ``coords`` of ``ax`` (default: axes fraction), ``dy`` points above it."""

    ax: Axes
    x: float
    y: float
    text: str
    size: float = 10.0
    color: str = "#000000"
    ha: str = "center"  # "left", "center", "right"
    va: str = "bottom"  # "bottom", "center", "top"
    dy: float = 0.0
    bold: bool = False
    coords: tuple[str, str] = ("axes", "axes")


Mark = Line | Bars | Text


def vline(ax: Axes, x: float, **style) -> Line:
    """A vertical line at data x across the whole height of ``ax``."""
    return Line(ax, [x, x], [0.0, 1.0], coords=("data", "axes"), **style)


def hline(ax: Axes, y: float, **style) -> Line:
    """A horizontal line at data y across the whole width of ``ax``."""
    return Line(ax, [0.0, 1.0], [y, y], coords=("axes", "data"), **style)


def dot(ax: Axes, x: float, y: float, color: str = OKABE_ITO[4], size: float = 8.0, marker: str = "o") -> Line:
    """One marker at data (x, y)."""
    return Line(ax, [x], [y], color=color, marker=marker, size=size, stroke=False)


@dataclass
class Readout:
    """The readout line last shown: ``value`` is its HTML, as on an ``ipywidgets.HTML`` (the line
    itself travels inside the explorer's one view widget, see :meth:`Explorer.show_frame`)."""

    value: str = ""


@dataclass
class Frame:
    """What one setting of the sliders shows: the readout and everything in the picture that moves.

    Attributes:
        readout: one line of HTML under the sliders.
        images: name (as returned by ``draw``) -> new array for that ``imshow``: (h, w) values
            mapped through its colormap and norm, or (h, w, 3|4) colours.
        marks: the moving lines, bars and texts, drawn over the figure.
    """

    readout: str
    images: dict[str, np.ndarray] = field(default_factory=dict)
    marks: list[Mark] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# The live picture: a static PNG, image layers over their axes, an SVG overlay
# ---------------------------------------------------------------------------------------------

_DASHES = {"--": (3.7, 1.6), ":": (1.0, 1.65), "-.": (6.4, 1.6, 1.0, 1.6)}  # matplotlib's, x line width
_ANCHOR = {"left": "start", "center": "middle", "right": "end"}
_BASELINE = {"bottom": "auto", "center": "central", "top": "hanging"}


class Picture:
    """A matplotlib figure rendered once, plus what moves: image layers and SVG marks.

    Args:
        fig: the drawn figure (layout final: call ``tight_layout`` before).
        layers: name -> an ``AxesImage`` of ``fig`` whose pixels change; it is left out of the
            base PNG and shown as its own image placed exactly over its extent.

    All positions are figure pixels (``fig.bbox``) with the origin at the top left, as in the PNG.
    """

    def __init__(self, fig: Figure, layers: Mapping[str, AxesImage]) -> None:
        self.fig = fig
        self.layers = dict(layers)
        for name, im in self.layers.items():
            if im.origin != "upper":
                raise ValueError(f"layer {name!r}: draw it with imshow(origin='upper')")
        for im in self.layers.values():
            im.set_visible(False)
        self.png = figure_png(fig)  # draws the figure, so the transforms below are final
        for im in self.layers.values():
            im.set_visible(True)
        self.width, self.height = fig.canvas.get_width_height()
        self.px_per_pt = fig.dpi / 72.0
        self.legends = self._legend_crops()
        self.boxes = {name: self._box(im) for name, im in self.layers.items()}
        self._gray = {name: _is_gray(im) for name, im in self.layers.items()}
        self._tables = {name: _lut(im, self._gray[name]) for name, im in self.layers.items()}

    def _legend_crops(self) -> list[tuple[tuple[int, int, int, int], bytes]]:
        """Each legend of the figure as ``((left, top, width, height), PNG)`` cut from the base PNG:
        shown above the marks, so a moving line never crosses a legend (as in matplotlib)."""
        from PIL import Image

        base = Image.open(io.BytesIO(self.png))
        legends = [*self.fig.legends, *(ax.get_legend() for ax in self.fig.axes)]
        crops = []
        for legend in filter(None, legends):
            (x0, y0), (x1, y1) = legend.get_window_extent().get_points()
            left, top = max(0, int(np.floor(x0))), max(0, int(np.floor(self.height - y1)))
            right, bottom = min(self.width, int(np.ceil(x1))), min(self.height, int(np.ceil(self.height - y0)))
            buf = io.BytesIO()
            base.crop((left, top, right, bottom)).save(buf, "PNG")
            crops.append(((left, top, right - left, bottom - top), buf.getvalue()))
        return crops

    def _box(self, im: AxesImage) -> tuple[int, int, int, int]:
        """``(left, top, width, height)`` in pixels of the image's extent inside the figure."""
        x0, x1, y0, y1 = im.get_extent()
        pts = self._to_px(im.axes, ("data", "data"), [x0, x1], [y0, y1])
        left, right = sorted(pts[:, 0])
        top, bottom = sorted(pts[:, 1])
        return round(left), round(top), round(right) - round(left), round(bottom) - round(top)

    def _to_px(self, ax: Axes, coords: tuple[str, str], x, y) -> np.ndarray:
        """Points (x, y) in ``coords`` of ``ax`` -> (n, 2) pixel positions, y downwards."""
        tx, ty = (ax.transData if c == "data" else ax.transAxes for c in coords)
        with np.errstate(all="ignore"):  # log axes send 0 to -inf: such a point is skipped
            pts = blended_transform_factory(tx, ty).transform(np.column_stack([np.asarray(x, float),
                                                                               np.asarray(y, float)]))
        pts[:, 1] = self.height - pts[:, 1]
        return pts

    def encode(self, name: str, data: np.ndarray) -> tuple[str, bytes]:
        """``(format, bytes)`` of ``data`` through layer ``name``'s colormap and norm.

        Values larger than the layer's box are first averaged down to the box (the browser gets no
        more pixels than it shows; :func:`box_average` lets an explorer compute at that size in
        the first place), coloured through a lookup table, and written as an uncompressed BMP
        (8-bit when the colormap is gray), which costs no compression time; a PNG only where some
        pixel is transparent (BMP has no alpha that every browser reads).
        """
        from PIL import Image

        im = self.layers[name]
        x = np.asarray(data)
        _, _, w, h = self.boxes[name]
        if x.ndim == 2 and x.shape[1] > w and x.shape[0] > h:
            x = np.asarray(Image.fromarray(x.astype(np.float32), "F").resize((w, h), Image.Resampling.BOX))
        table = self._tables[name]
        if x.ndim == 2 and table is not None:
            colours, alpha, opaque = table
            idx = _lut_index(im, x, len(alpha) - 3)
            pix = colours[idx]
            if not opaque:
                a = alpha[idx]
                opaque = bool(a.min() == 255)
        else:  # an RGB(A) array, or a norm that only matplotlib knows how to apply
            rgba = im.to_rgba(x, bytes=True)
            pix, a = (rgba[..., 0] if self._gray[name] else rgba[..., :3]), rgba[..., 3]
            opaque = bool(a.min() == 255)
        if opaque:
            return "bmp", _bmp(np.ascontiguousarray(pix))
        pil = Image.fromarray(np.dstack([pix, a]), "LA" if pix.ndim == 2 else "RGBA")
        buf = io.BytesIO()
        pil.save(buf, "PNG", compress_level=1)
        return "png", buf.getvalue()

    def upscaled(self, name: str) -> bool:
        """True when the layer's array is enlarged 3x or more, which matplotlib draws with square
        pixels (nearest neighbour); below that the browser's smooth scaling matches it."""
        h, w = self.layers[name].get_array().shape[:2]
        return self.boxes[name][2] >= 3 * w or self.boxes[name][3] >= 3 * h

    def svg(self, marks: Sequence[Mark]) -> str:
        """The marks as one SVG the size of the figure (what the overlay shows).

        Lines and bars are clipped to their axes by a nested ``<svg>`` viewport per axes (whose
        viewBox keeps figure pixels as coordinates): a plain rectangle clip, cheaper for the browser
        to repaint on every move than a ``clip-path``.
        """
        by_axes: dict[int, list[str]] = {}
        axes: dict[int, Axes] = {}
        texts = []
        for m in marks:
            if isinstance(m, Text):
                texts.append(self._text(m))
            else:
                axes[id(m.ax)] = m.ax
                by_axes.setdefault(id(m.ax), []).append(self._line(m) if isinstance(m, Line) else self._bars(m))
        body = []
        for key, parts in by_axes.items():
            (x0, y0), (x1, y1) = axes[key].bbox.get_points()
            x, y, w, h = f"{x0:.1f}", f"{self.height - y1:.1f}", f"{x1 - x0:.1f}", f"{y1 - y0:.1f}"
            body.append(f'<svg x="{x}" y="{y}" width="{w}" height="{h}" viewBox="{x} {y} {w} {h}" overflow="hidden">'
                        f'{"".join(parts)}</svg>')
        return (f'<svg xmlns="http://www.w3.org/2000/svg" class="lora-edu-overlay" width="{self.width}" '
                f'height="{self.height}" viewBox="0 0 {self.width} {self.height}" '
                f'style="display:block;pointer-events:none">{"".join(body)}{"".join(texts)}</svg>')

    def _line(self, m: Line) -> str:
        pts = self._to_px(m.ax, m.coords, m.x, m.y)
        ok = np.isfinite(pts).all(axis=1)
        out = []
        if m.stroke:
            d, pen_up = [], True
            for (px, py), good in zip(pts, ok, strict=True):
                if not good:
                    pen_up = True
                    continue
                d.append(f"{'M' if pen_up else 'L'}{px:.1f},{py:.1f}")
                pen_up = False
            lw = m.width * self.px_per_pt
            dash = (f' stroke-dasharray="{" ".join(f"{v * lw:.1f}" for v in _DASHES[m.dash])}"'
                    if m.dash in _DASHES else "")
            out.append(f'<path d="{"".join(d)}" fill="none" stroke="{m.color}" stroke-width="{lw:.2f}"{dash}/>')
        if m.marker:
            r = m.size * self.px_per_pt / 2
            for px, py in pts[ok]:
                if m.marker == "s":
                    out.append(f'<rect x="{px - r:.1f}" y="{py - r:.1f}" width="{2 * r:.1f}" height="{2 * r:.1f}" '
                               f'fill="{m.color}"/>')
                else:
                    out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="{r:.1f}" fill="{m.color}"/>')
        return "".join(out)

    def _bars(self, m: Bars) -> str:
        x = np.asarray(m.x, float)
        top = np.asarray(m.top, float)
        lo = self._to_px(m.ax, ("data", "data"), x - m.width / 2, np.full_like(x, m.bottom))
        hi = self._to_px(m.ax, ("data", "data"), x + m.width / 2, top)
        rects = []
        for (x0, y0), (x1, y1) in zip(lo, hi, strict=True):
            if np.isfinite([x0, y0, x1, y1]).all():
                rects.append(f'<rect x="{min(x0, x1):.1f}" y="{min(y0, y1):.1f}" width="{abs(x1 - x0):.1f}" '
                             f'height="{abs(y1 - y0):.1f}"/>')
        return f'<g fill="{m.color}">{"".join(rects)}</g>'

    def _text(self, m: Text) -> str:
        ((px, py),) = self._to_px(m.ax, m.coords, [m.x], [m.y])
        py -= m.dy * self.px_per_pt
        weight = ' font-weight="bold"' if m.bold else ""
        return (f'<text x="{px:.1f}" y="{py:.1f}" font-family="DejaVu Sans, Verdana, sans-serif" '
                f'font-size="{m.size * self.px_per_pt:.1f}px" fill="{m.color}" text-anchor="{_ANCHOR[m.ha]}" '
                f'dominant-baseline="{_BASELINE[m.va]}"{weight}>{html.escape(m.text)}</text>')


def box_average(n_in: int, n_out: int) -> np.ndarray:
    """The (n_out, n_in) matrix that averages n_in pixels down to n_out (a box filter).

    Averaging is linear, so an image that is a product of factors can be shrunk through its
    factors: ``box_average(H, h) @ (U @ V) @ box_average(W, w).T == (box_average(H, h) @ U) @
    (V @ box_average(W, w).T)``, which the rank explorer uses to compute only the pixels it shows.
    """
    edges = np.linspace(0.0, n_in, n_out + 1)
    left, right = edges[:-1, None], edges[1:, None]
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(right, j + 1) - np.maximum(left, j), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def _lut(im: AxesImage, gray: bool) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """The image's colormap as lookup tables over N colours, then under, over and bad:
    ``(colours, alpha, all_opaque)`` with colours (N + 3,) uint8 for a gray colormap, else
    (N + 3, 3). None where the norm is not a plain linear ``Normalize`` (matplotlib then maps)."""
    from matplotlib.colors import Normalize

    if type(im.norm) is not Normalize or im.norm.vmin is None or im.norm.vmax is None:
        return None
    cmap = im.get_cmap()
    rgba = np.vstack([cmap(np.arange(cmap.N)), [cmap.get_under(), cmap.get_over(), cmap.get_bad()]])
    rgba = (rgba * 255).astype(np.uint8)  # truncated, as matplotlib does for bytes=True
    colours = rgba[:, 0].copy() if gray else rgba[:, :3].copy()
    return colours, rgba[:, 3].copy(), bool(rgba[:, 3].min() == 255)


def _lut_index(im: AxesImage, x: np.ndarray, n: int) -> np.ndarray:
    """Indices into the tables of :func:`_lut` for values ``x``, as matplotlib's colormaps compute
    them: n colours for 0 <= t <= 1 (t = 1 is the last colour), then under, over, bad (NaN)."""
    vmin, vmax = float(im.norm.vmin), float(im.norm.vmax)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = (x - vmin) * (n / (vmax - vmin)) if vmax > vmin else np.zeros_like(x, dtype=float)
        idx = np.floor(f).astype(np.intp)
    idx[idx > n - 1] = n + 1
    idx[f == n] = n - 1
    idx[idx < 0] = n
    idx[np.isnan(f)] = n + 2
    return idx


def _bmp(pix: np.ndarray) -> bytes:
    """An uncompressed, top-down BMP of ``pix``: (h, w) uint8 gray (8-bit with a gray palette) or
    (h, w, 3) uint8 RGB (24-bit). Written with numpy: Pillow's BMP writer loops in Python."""
    h, w = pix.shape[:2]
    gray = pix.ndim == 2
    rows = (pix if gray else pix[..., ::-1]).reshape(h, -1)  # BMP stores blue, green, red
    pad = (-rows.shape[1]) % 4  # each row is padded to a multiple of 4 bytes
    if pad:
        rows = np.pad(rows, ((0, 0), (0, pad)))
    palette = np.repeat(np.arange(256, dtype=np.uint8), 4).reshape(256, 4) if gray else np.zeros((0, 4), np.uint8)
    palette[:, 3] = 0
    offset = 14 + 40 + palette.size
    header = struct.pack("<2sIHHI", b"BM", offset + rows.size, 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, w, -h, 1, 8 if gray else 24, 0, rows.size, 2835, 2835,
                       256 if gray else 0, 0)  # negative height: rows run top to bottom
    return header + info + palette.tobytes() + np.ascontiguousarray(rows).tobytes()


def _is_gray(im: AxesImage) -> bool:
    """Whether every colour of the image's colormap (bad colour included) is a shade of gray."""
    cmap = im.get_cmap()
    lut = np.vstack([cmap(np.linspace(0, 1, 256)), [cmap.get_bad()]])
    return bool(np.allclose(lut[:, 0], lut[:, 1]) and np.allclose(lut[:, 1], lut[:, 2]))


# ---------------------------------------------------------------------------------------------
# The explorer
# ---------------------------------------------------------------------------------------------


class Explorer:
    """Base class of the course's slider explorers (see the module docstring for the contract).

    After construction the explorer has ``picture`` (:class:`Picture`, the drawn live figure),
    one attribute per control (the slider widget, named by ``Control.attr``), ``readout`` (its
    ``value`` is the readout line last shown, HTML), ``images`` (each layer's last encoded pixels) and ``widget``
    (the whole ``VBox``). Where ipywidgets is missing,
    ``widget`` is None and only the static picture is shown; :meth:`update` works either way.
    Setting a slider's ``value`` from code updates the explorer like a drag.
    """

    #: (width, height) in inches of the live figure
    figsize: tuple[float, float] = (9.0, 3.6)
    #: (width, height) in inches of one small-multiple panel; width of the summary panel (0: none)
    panel_size: tuple[float, float] = (2.3, 2.6)
    summary_width: float = 0.0

    def __init__(self, controls: Sequence[Control], title: str) -> None:
        self.controls = tuple(controls)
        self.title = title
        self.widget = None
        self.frames = 0  # frames shown by the live picture (a test hook: moves are counted)
        self.readout = Readout()  # the readout line of the last frame shown (``readout.value``, HTML)
        self.images: dict[str, tuple[str, bytes]] = {}  # layer name -> (format, bytes) last shown
        self._blas = _blas_controller()
        fig = new_figure(self.figsize)
        self.picture = Picture(fig, self.draw(fig, **self.values))
        self.laid_out(self.picture)
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            return  # the one place that decides: no ipywidgets, static picture only
        self._build_live()

    # --- what a subclass writes -----------------------------------------------------------------

    def draw(self, fig: Figure, **values: Any) -> dict[str, AxesImage]:
        """Draw the live figure at ``values``; return the images whose pixels move, by name."""
        raise NotImplementedError

    def update(self, **values: Any) -> Frame:
        """The readout, new images and moving marks for ``values`` (one value per control)."""
        raise NotImplementedError

    def static_positions(self) -> list[dict[str, Any]]:
        """The slider settings shown as small multiples (a few, each a dict of control values)."""
        raise NotImplementedError

    def panel(self, ax: Axes, **values: Any) -> None:
        """Draw one small multiple for ``values`` into ``ax``, titled with the values."""
        raise NotImplementedError

    def summary(self, ax: Axes, positions: list[dict[str, Any]]) -> None:
        """Draw the panel beside the small multiples (a curve with the positions marked), if
        ``summary_width`` > 0."""
        raise NotImplementedError

    def laid_out(self, picture: Picture) -> None:
        """Called once the live picture is laid out (its pixel boxes known), before the first
        :meth:`update`: the place to precompute at display resolution. Optional."""

    # --- the framework ------------------------------------------------------------------------

    @property
    def values(self) -> dict[str, Any]:
        """The current value of every control, by name."""
        if self.widget is None:
            return {c.name: c.value for c in self.controls}
        return {c.name: getattr(self, c.attribute).value for c in self.controls}

    def _build_live(self) -> None:
        from ipywidgets import HTML, Box, GridBox, Image, Layout, VBox

        pic = self.picture
        w, h = pic.width, pic.height
        # Two grid rows: the readout, then the picture. What never moves (the base PNG, the legends)
        # is an Image widget sent once; everything that moves (readout, image layers, marks) is
        # one HTML widget spanning both rows, so a move is one message to the browser. Each extra
        # widget message costs about as much as the whole no-op round trip (measured in Chromium:
        # a slider updating 3 labels took 1.8x one updating 1).
        row2 = dict(grid_area="2 / 1 / 3 / 2", margin="0", padding="0")
        base = Image(value=pic.png, format="png", layout=Layout(width=f"{w}px", height=f"{h}px", **row2))
        self._view = HTML(layout=Layout(grid_area="1 / 1 / 3 / 2", margin="0", padding="0", width=f"{w}px"))
        self._view.add_class("lora-edu-view")
        legends = []
        for (left, top, bw, bh), png in pic.legends:
            legend = Image(value=png, format="png", layout=Layout(width=f"{bw}px", height=f"{bh}px",
                                                                 **(row2 | {"margin": f"{top}px 0 0 {left}px"})))
            legend.add_class("lora-edu-legend")
            legends.append(legend)
        stack = GridBox([base, self._view, *legends],
                        layout=Layout(grid_template_columns=f"{w}px", grid_template_rows=f"auto {h}px",
                                      width=f"{w}px", overflow="hidden"))
        stack.add_class("lora-edu-picture")
        sliders = []
        for c in self.controls:
            slider = c.make_widget()
            setattr(self, c.attribute, slider)
            slider.observe(self._on_change, names="value")
            sliders.append(slider)
        style = HTML(CSS, layout=Layout(display="none"))
        self.widget = VBox([style, Box(sliders, layout=Layout(flex_flow="row wrap")), stack])
        self.widget.add_class("lora-edu-explorer")  # a stable hook for CSS and the browser tests
        self._on_change()

    def _on_change(self, change: object = None) -> None:
        with _one_blas_thread(self._blas):
            frame = self.update(**self.values)
        self.show_frame(frame)

    def show_frame(self, frame: Frame) -> None:
        """Put ``frame`` on screen: the images it names are re-encoded (the others keep their last
        pixels), and the readout, the image layers and the marks go out as one HTML update."""
        for name, data in frame.images.items():
            self.images[name] = self.picture.encode(name, data)
        self.readout.value = frame.readout
        self._view.value = self.view_html(frame)
        self.frames += 1

    def view_html(self, frame: Frame) -> str:
        """The HTML of everything that moves: the readout line, then a box the size of the figure
        holding each image layer (an ``<img>`` with a ``data:`` URL, placed over its axes) and the
        SVG of the marks. A ``data:`` image is decoded as the element is inserted, so the new
        picture replaces the old one without a blank frame."""
        pic = self.picture
        layers = []
        for name in pic.layers:
            if name not in self.images:
                continue
            fmt, raw = self.images[name]
            left, top, bw, bh = pic.boxes[name]
            pixelated = " lora-edu-pixelated" if pic.upscaled(name) else ""
            data = base64.b64encode(raw).decode("ascii")
            layers.append(f'<img class="lora-edu-layer{pixelated}" alt="" style="position:absolute;left:{left}px;'
                          f'top:{top}px;width:{bw}px;height:{bh}px" src="data:image/{fmt};base64,{data}">')
        return (f'<div class="lora-edu-readout" style="padding: 0 2px">{frame.readout}</div>'
                f'<div class="lora-edu-live" style="position:relative;width:{pic.width}px;height:{pic.height}px;'
                f'line-height:0;pointer-events:none">{"".join(layers)}'
                f'<div class="lora-edu-overlay" style="position:absolute;left:0;top:0">{pic.svg(frame.marks)}</div>'
                "</div>")

    def static_figure(self) -> Figure:
        """The small multiples: one panel per :meth:`static_positions`, then the summary panel."""
        positions = self.static_positions()
        pw, ph = self.panel_size
        ratios = [pw] * len(positions) + ([self.summary_width] if self.summary_width else [])
        fig = new_figure((sum(ratios), ph), dpi=100)
        axes = np.atleast_1d(fig.subplots(1, len(ratios), gridspec_kw={"width_ratios": ratios}))
        for ax, values in zip(axes, positions, strict=False):
            self.panel(ax, **values)
        if self.summary_width:
            self.summary(axes[-1], positions)
        fig.suptitle(f"{self.title}: {len(positions)} settings of the slider (a static picture)", fontsize=10)
        fig.tight_layout()
        return fig

    def static_bundle(self) -> dict[str, str]:
        """The static picture as a notebook output bundle (PNG and a text description)."""
        png = figure_png(self.static_figure())
        settings = "; ".join(", ".join(f"{k} = {_fmt(v)}" for k, v in p.items()) for p in self.static_positions())
        return {"image/png": base64.b64encode(png).decode("ascii"),
                "text/plain": f"{self.title}, static picture at: {settings}"}

    def show(self, static: bool = True) -> None:
        """Display the live widget, then (``static``) the static picture for kernel-less viewers.

        The static PNG is a separate output after the widget: where the widget renders, its CSS
        hides that PNG; anywhere else the PNG is what the reader sees.
        """
        from IPython.display import display

        if self.widget is None:
            print(NO_IPYWIDGETS)
            display(self.static_bundle(), raw=True)
            return
        if static:
            self.widget.add_class("lora-edu-has-static")
        else:
            self.widget.remove_class("lora-edu-has-static")
        bundle = self.widget._repr_mimebundle_()
        bundle["text/plain"] = f"{self.title}. {FALLBACK_NOTE}"
        display(bundle, raw=True)
        if static:
            display(self.static_bundle(), raw=True)

    def _ipython_display_(self) -> None:
        self.show()

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={_fmt(v)}" for k, v in self.values.items())
        return f"<{type(self).__name__} {self.title!r}: {values}>"


def _blas_controller():
    """threadpoolctl's view of the BLAS libraries loaded now (None without threadpoolctl)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def _one_blas_thread(controller) -> contextlib.AbstractContextManager:
    """A context in which the BLAS libraries ``controller`` knows use one thread.

    A slider move multiplies small matrices. Split over threads, such a product waits for its
    threads to be scheduled: on a busy 2-core machine a (250, 40)(40, 213) product took 40 ms
    (median) with two OpenBLAS threads and 0.15 ms with one.
    """
    return contextlib.nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)
