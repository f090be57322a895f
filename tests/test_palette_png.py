"""lora_edu.plotting.palette_png / compact_inline_figures: smaller figure PNGs that look the same."""

import io

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from lora_edu.plotting import compact_inline_figures, palette_png, use_course_style


def rgba(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"), dtype=np.int16)


def plot_png() -> bytes:
    use_course_style()
    fig = Figure(figsize=(4, 3), dpi=100)
    ax = fig.subplots()
    x = np.linspace(0, 6, 200)
    for i in range(4):
        ax.plot(x, np.sin(x + i), label=f"curve {i}")
    ax.set_xlabel("x (units)")
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def test_a_plot_shrinks_and_looks_the_same():
    png = plot_png()
    small = palette_png(png)
    assert Image.open(io.BytesIO(small)).mode == "P"
    assert len(small) < 0.6 * len(png)
    before, after = rgba(png), rgba(small)
    assert before.shape == after.shape
    assert np.abs(before - after).mean() < 1.0          # on average less than one level of 255
    assert np.percentile(np.abs(before - after).max(axis=2), 99) <= 24


def test_few_colours_are_kept_exactly():
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (200, 4), dtype=np.uint8)
    image = palette[rng.integers(0, 200, (30, 40))]
    buf = io.BytesIO()
    Image.fromarray(image, "RGBA").save(buf, format="PNG")
    assert np.array_equal(rgba(palette_png(buf.getvalue())), image)


def test_bad_colors_and_no_ipython():
    with pytest.raises(ValueError, match=r"colors must be an integer in \[2, 256\]"):
        palette_png(plot_png(), colors=300)
    with pytest.raises(ValueError, match="colors must be"):
        compact_inline_figures(colors=1)
    assert compact_inline_figures() is False            # plain Python: nothing to configure
