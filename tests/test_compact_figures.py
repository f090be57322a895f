"""lora_edu.plotting.compact_inline_figures: notebook figures stored small, looking the same."""

import base64
import io

import matplotlib_inline.backend_inline  # noqa: F401  (loaded with the Agg backend: changes nothing)
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from lora_edu import plotting
from lora_edu.data import sample_image
from lora_edu.plotting import COURSE_RC, compact_figure_bytes, compact_inline_figures


def line_plot() -> Figure:
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    for i, style in enumerate(COURSE_RC["axes.prop_cycle"].by_key()["linestyle"][:4]):
        ax.plot(np.linspace(0, 1, 50) ** (i + 1), ls=style, label=f"x^{i + 1}")
    ax.set_xlabel("index i")
    ax.legend()
    return fig


def photo() -> Figure:
    fig = Figure(figsize=(5, 5), dpi=100)
    fig.subplots().imshow(sample_image(), cmap="gray")
    return fig


def rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=float)


def plain_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, bbox_inches="tight")
    return buffer.getvalue()


def test_a_plot_becomes_a_palette_png_that_looks_the_same():
    fig = line_plot()
    kind, data = compact_figure_bytes(fig)
    reference = plain_png(fig)
    assert kind == "image/png" and Image.open(io.BytesIO(data)).mode == "P"
    assert len(data) < len(reference) / 2
    difference = np.abs(rgb(data) - rgb(reference))
    assert difference.shape[:2] == rgb(reference).shape[:2]
    assert difference.mean() < 1.0 and np.percentile(difference, 99.9) < 16     # grey levels 0..255


def test_a_photo_becomes_a_jpeg_that_looks_the_same():
    fig = photo()
    kind, data = compact_figure_bytes(fig)
    reference = plain_png(fig)
    assert kind == "image/jpeg" and len(data) < len(reference) / 3
    assert np.abs(rgb(data) - rgb(reference)).mean() < 3.0


def test_nothing_changes_outside_ipython(monkeypatch):
    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert compact_inline_figures() is None


@pytest.fixture
def shell(monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    # Pretend to be a notebook kernel; the inline backend module itself was loaded (inertly) above.
    monkeypatch.setattr(plotting.mpl, "get_backend", lambda *a, **k: "module://matplotlib_inline.backend_inline")
    yield shell
    InteractiveShell.clear_instance()


def test_inline_figures_are_displayed_compactly(shell):
    compact_inline_figures()
    data, _ = shell.display_formatter.format(line_plot())
    assert "image/png" in data and "image/jpeg" not in data
    assert Image.open(io.BytesIO(base64.b64decode(data["image/png"]))).mode == "P"
    data, _ = shell.display_formatter.format(photo())
    assert "image/jpeg" in data and "image/png" not in data
    empty, _ = shell.display_formatter.format(Figure())
    assert "image/png" not in empty and "image/jpeg" not in empty
