import numpy as np
import pytest
from matplotlib.figure import Figure

from lora_edu.data import sample_image
from lora_edu.plotting import figure_png, new_figure, save_figure


def test_sample_image_is_grayscale_in_unit_range():
    img = sample_image()
    assert img.shape == (600, 512) and img.dtype == np.float64
    assert 0.0 <= img.min() < 0.1 and 0.9 < img.max() <= 1.0
    crop = sample_image(size=512)
    assert crop.shape == (512, 512)
    assert np.array_equal(crop, img[44:556, :])


def test_sample_image_bad_input():
    with pytest.raises(ValueError, match="name must be one of"):
        sample_image("lena.png")
    with pytest.raises(ValueError, match=r"size must be in \[1, 512\]"):
        sample_image(size=600)


def test_save_figure_is_deterministic_and_checks_names(tmp_path):
    def make():
        fig = Figure(figsize=(2, 2))
        fig.subplots().plot([0, 1], [1, 0])
        return fig

    (svg1,) = save_figure(make(), "t", formats=("svg",), folder=tmp_path / "a")
    (svg2,) = save_figure(make(), "t", formats=("svg",), folder=tmp_path / "b")
    assert svg1.read_bytes() == svg2.read_bytes()
    with pytest.raises(ValueError, match="bare file stem"):
        save_figure(make(), "../escape", folder=tmp_path)
    with pytest.raises(ValueError, match="formats may contain"):
        save_figure(make(), "t", formats=("jpg",), folder=tmp_path)


def test_figure_png_is_the_figure_at_its_dpi_without_cropping():
    import io

    from PIL import Image

    fig = new_figure((3.0, 2.0), dpi=50)
    fig.subplots().plot([0, 1], [1, 0])
    assert Image.open(io.BytesIO(figure_png(fig))).size == (150, 100)  # what the explorers' pixel maths assumes
