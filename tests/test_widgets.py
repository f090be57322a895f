"""The explorer framework (lora_edu.explorers.framework) and the five explorers built on it."""

from __future__ import annotations

import base64
import builtins
import io

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb
from PIL import Image

from lora_edu import widgets as W
from lora_edu.data import sample_image
from lora_edu.explorers import framework as F
from lora_edu.plotting import figure_png, new_figure
from lora_edu.svd import reconstruction_error

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def image():
    return sample_image(size=128)


def decode(raw: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(raw)))


# --- the framework ------------------------------------------------------------------------------


def test_controls_pick_the_slider_and_check_the_initial_value():
    ints = F.Control("r", "rank r", range(0, 9), 3, attr="slider").make_widget()
    assert type(ints).__name__ == "IntSlider" and (ints.min, ints.max, ints.value) == (0, 8, 3)
    sel = F.Control("g", "grouping", ("per-tensor", 64, 16), 64).make_widget()
    assert type(sel).__name__ == "SelectionSlider" and sel.value == 64
    assert [label for label, _ in sel.options] == ["per-tensor", "64", "16"]
    assert ints.continuous_update and sel.continuous_update  # a drag shows intermediate frames
    with pytest.raises(ValueError, match="r must be one of"):
        F.Control("r", "rank r", range(3), 5)


def _picture_with_a_layer():
    fig = new_figure((6, 3))
    ax_img, ax_plot = fig.subplots(1, 2)
    data = np.arange(20.0).reshape(4, 5)
    im = ax_img.imshow(data, cmap="gray", vmin=0, vmax=19)
    ax_img.set_axis_off()
    ax_plot.set_xlim(0, 10)
    ax_plot.set_ylim(1e-3, 1e3)
    ax_plot.set_yscale("log")
    fig.tight_layout()
    return fig, im, data, ax_plot


def test_layer_sits_exactly_where_matplotlib_draws_the_image():
    fig, im, data, _ = _picture_with_a_layer()
    pic = F.Picture(fig, {"img": im})
    left, top, w, h = pic.boxes["img"]
    full = decode(figure_png(fig))[..., :3].mean(axis=2)  # the figure with the image drawn
    base = decode(pic.png)[..., :3].mean(axis=2)           # the base leaves the image out
    drawn = np.argwhere(np.abs(full - base) > 1)
    (r0, c0), (r1, c1) = drawn.min(axis=0), drawn.max(axis=0)
    # the (4 x 5) image covers the layer's box to the pixel (the first row, value 0, is black on white)
    assert abs(r0 - top) <= 1 and abs(c0 - left) <= 1 and abs(r1 + 1 - (top + h)) <= 1 and abs(c1 + 1 - (left + w)) <= 1
    assert pic.upscaled("img")  # 4 x 5 values in a larger box: square pixels


def test_svg_marks_land_on_matplotlibs_own_pixels():
    fig, im, _, ax = _picture_with_a_layer()
    pic = F.Picture(fig, {"img": im})
    ref = ax.axvline(7.0, color="#D55E00", linewidth=2)  # drawn by matplotlib, to compare with
    rendered = decode(figure_png(fig))[..., :3].astype(int)
    cols = np.argwhere(np.abs(rendered - np.array(to_rgb("#D55E00")) * 255).sum(axis=2) < 40)[:, 1]
    ref.remove()
    svg = pic.svg([F.vline(ax, 7.0), F.dot(ax, 5.0, 10.0)])
    x = float(svg.split('d="M')[1].split(",")[0])
    assert abs(x - np.median(cols)) <= 1.0
    # y grows downwards in SVG: 10 on a log axis from 1e-3 to 1e3 sits 2/3 up the axes
    (x0, y0), (x1, y1) = ax.bbox.get_points()
    cy = float(svg.split('cy="')[1].split('"')[0])
    assert abs(cy - (pic.height - (y0 + (y1 - y0) * 4 / 6))) <= 1.0
    assert svg.count("<svg") == 2  # the overlay, and one clipping viewport for this axes' marks


def test_encode_matches_matplotlibs_colours_and_uses_png_only_for_transparency():
    fig, im, data, _ = _picture_with_a_layer()
    pic = F.Picture(fig, {"img": im})
    x = np.array([[0.0, 19.0, -5.0, 40.0, 9.5]] * 4)
    fmt, raw = pic.encode("img", x)
    assert fmt == "bmp"
    assert np.array_equal(decode(raw), im.to_rgba(x, bytes=True)[..., 0])  # gray: one channel
    x[0, 0] = np.nan  # matplotlib's "bad" colour is transparent
    fmt, raw = pic.encode("img", x)
    la = decode(raw)
    assert fmt == "png" and la.shape == (4, 5, 2) and la[0, 0, 1] == 0 and la[1, 1, 1] == 255


@pytest.mark.parametrize("shape", [(3, 5), (7, 6, 3), (2, 1)])
def test_bmp_writer_round_trips(shape):
    pix = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    assert np.array_equal(decode(F._bmp(pix)), pix)


def test_box_average_shrinks_through_the_factors():
    R = F.box_average(10, 4)
    assert R.shape == (4, 10) and np.allclose(R.sum(axis=1), 1)
    assert np.allclose(F.box_average(5, 5), np.eye(5))
    rng = np.random.default_rng(0)
    U, V = rng.standard_normal((10, 3)), rng.standard_normal((3, 7))
    C = F.box_average(7, 3)
    assert np.allclose(R @ (U @ V) @ C.T, (R @ U) @ (V @ C.T))
    # output pixel 0 covers input pixels [0, 2.5): 0 and 1 fully, half of 2
    assert np.allclose(R[0, :3], [0.4, 0.4, 0.2]) and R[0, 3:].sum() == 0


def test_show_emits_the_live_widget_then_the_static_png(image, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    ex = W.rank_explorer(image, k=5)
    ex.show()
    live, static = shown
    assert WIDGET_MIME in live and "did not render" in live["text/plain"] and "image/png" not in live
    assert decode(base64.b64decode(static["image/png"])).shape[1] > 800  # small multiples, side by side
    assert "r = 2" in static["text/plain"] and "lora-edu-has-static" in ex.widget._dom_classes
    shown.clear()
    ex.show(static=False)  # the app: a kernel is always there, so no static picture (and no CSS hiding)
    assert len(shown) == 1 and "lora-edu-has-static" not in ex.widget._dom_classes


def test_without_ipywidgets_the_static_picture_is_shown(image, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_widgets(name, *args, **kwargs):
        if name.startswith("ipywidgets"):
            raise ImportError("simulated: no ipywidgets")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_widgets)
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    ex = W.rank_explorer(image)
    assert ex.widget is None and ex.values == {"r": 20}
    ex.show()
    assert "ipywidgets is not installed" in capsys.readouterr().out
    (static,) = shown
    assert set(static) == {"image/png", "text/plain"}
    assert "r = 20" in ex.update(r=20).readout  # the numbers work without widgets too


# --- notebook 02: rank of an image ----------------------------------------------------------------


def test_rank_explorer_slider_updates_image_and_readout(image):
    ex = W.rank_explorer(image, 5)
    before_pixels, before_text = ex.images["image"], ex.readout.value
    assert "r = 5" in before_text
    ex.slider.value = 40
    assert "r = 40" in ex.readout.value and ex.readout.value != before_text
    assert ex.images["image"][1] != before_pixels
    rel = 100 * reconstruction_error(image, 40, relative=True)
    assert f"relative error {rel:.2f} %" in ex.readout.value
    assert ex.slider.max == 128 and ex.slider.min == 0


def test_rank_explorer_still_takes_its_old_keyword_k(image):
    assert W.rank_explorer(image, k=7).slider.value == 7  # notebook 02 calls rank_explorer(img, k=20)


def test_rank_layer_shows_the_rank_k_image_at_the_size_on_screen():
    ex = W.rank_explorer(sample_image(), r=10)  # 600 x 512 pixels in a smaller box: shrunk through the factors
    _, _, w, h = ex.picture.boxes["image"]
    shown = decode(ex.images["image"][1]).astype(float)
    assert shown.shape == (h, w)
    expected = np.asarray(Image.fromarray(ex.cache.approx(10).astype(np.float32), "F").resize((w, h)))
    expected = 255 * np.clip((expected - ex.vmin) / (ex.vmax - ex.vmin), 0, 1)
    assert np.mean(np.abs(shown - expected)) < 3  # gray levels; resampling filters differ slightly


def test_slider_moves_do_not_recompute_the_svd_or_rerender_the_figure(image, monkeypatch):
    ex = W.rank_explorer(image, r=3)
    frames = ex.frames

    def boom(*args, **kwargs):
        raise AssertionError("called on a slider move")

    monkeypatch.setattr(np.linalg, "svd", boom)
    monkeypatch.setattr(F, "figure_png", boom)
    for k in (1, 7, 64, 128, 0):
        ex.slider.value = k
    assert ex.frames == frames + 5


def test_rank_static_picture_is_not_the_grid_shown_above_it(image):
    rs = {p["r"] for p in W.rank_explorer(image).static_positions()}
    assert not rs & {1, 5, 20, 50}, "notebook 02 shows figures/rank_grid.png (ranks 1, 5, 20, 50) just above"


def test_explorers_reject_bad_input():
    with pytest.raises(ValueError, match="image must be 2-D"):
        W.rank_explorer(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match=r"r must be in \[0, 4\]"):
        W.rank_explorer(np.eye(4), r=5)
    with pytest.raises(ValueError, match="d must be in"):
        W.outer_product_explorer(d=0)
    with pytest.raises(ValueError, match="at least 16 values"):
        W.quantization_explorer(torch.ones(3, 3))


# --- notebook 01: outer products ------------------------------------------------------------------


def test_outer_product_explorer_tracks_rank():
    ex = W.outer_product_explorer(d=12, n=10, seed=0)
    for t in (0, 1, 4, 10):
        ex.terms.value = t
        assert f"numerical rank = <b>{t}</b>" in ex.readout.value
    ex.terms.value = 3
    ex.noise.value = 1e-3
    assert "numerical rank = <b>10</b>" in ex.readout.value
    frame = ex.update(terms=2, noise=0.0)
    (bars,) = [m for m in frame.marks if isinstance(m, F.Bars)]
    s = np.linalg.svd(ex.matrix(2, 0.0), compute_uv=False)
    assert np.allclose(bars.top, np.maximum(s, 1e-18)) and len(bars.x) == 10


# --- notebook 03: autoencoders --------------------------------------------------------------------


def test_autoencoder_explorer_switches_models():
    from lora_edu import autoencoder as AE
    from lora_edu.data import load_digits_data

    X, _ = load_digits_data()
    Xtr, mean = AE.center(X[:300])
    Xte, _ = AE.center(X[300:360], mean)
    lin = {k: AE.LinearAutoencoder(64, k) for k in (2, 4)}
    non = {2: AE.NonlinearAutoencoder(64, 2, hidden=8)}
    for m in [*lin.values(), *non.values()]:
        AE.train_autoencoder(m, Xtr, epochs=2, lr=0.01, progress=False)
    ex = W.autoencoder_explorer(Xtr, Xte, mean, lin, non, n_show=3)
    assert ex.slider.value == 4
    pixels = ex.images["digits"]
    assert "non-linear AE" not in ex.readout.value  # not trained at r=4, and it says nothing false
    assert any(isinstance(m, F.Text) and "not trained at r = 4" in m.text for m in ex.update(r=4).marks)
    row3 = (slice(3 * 9, 3 * 9 + 8), slice(0, 8))  # the non-linear row, first digit
    assert np.isnan(ex.mosaic(4)[row3]).all() and not np.isnan(ex.mosaic(2)[row3]).any()
    ex.slider.value = 2
    assert "r = 2" in ex.readout.value and "non-linear AE" in ex.readout.value
    assert ex.images["digits"] != pixels
    assert ex.errors["PCA (truncated SVD)"][4] == pytest.approx(AE.pca_mse(Xtr, 4, Xte))
    with pytest.raises(ValueError, match="linear must map"):
        W.autoencoder_explorer(Xtr, Xte, mean, {}, {})
    with pytest.raises(ValueError, match="must be among linear"):
        W.autoencoder_explorer(Xtr, Xte, mean, lin, {8: non[2]})


# --- notebook 04: LoRA rank -----------------------------------------------------------------------


def test_lora_rank_explorer():
    results = {r: {"singular_values": np.r_[np.linspace(2, 1, r), np.zeros(8 - r)], "accuracy": 0.9 + r / 100,
                   "trainable": 100 * r} for r in (1, 2, 4, 8)}
    ex = W.lora_rank_explorer(results, full_spectrum=np.linspace(3, 0.1, 16), full_accuracy=0.99)
    svg = ex.picture.svg(ex.update(**ex.values).marks)
    assert svg in ex._view.value
    ex.slider.value = 8
    assert "r = 8" in ex.readout.value and "8 non-negligible" in ex.readout.value
    assert svg not in ex._view.value and ex.picture.svg(ex.update(r=8).marks) in ex._view.value
    dots = [m for m in ex.update(r=2).marks if isinstance(m, F.Line) and not m.stroke]
    assert [(list(d.x), list(d.y)) for d in dots] == [([2], [pytest.approx(92.0)])]
    with pytest.raises(ValueError, match="lacks"):
        W.lora_rank_explorer({1: {"accuracy": 1.0}})


# --- notebook 05: quantization --------------------------------------------------------------------


@pytest.fixture(scope="module")
def outlier_weight():
    w = 0.02 * torch.randn(64, 64, generator=torch.Generator().manual_seed(0))
    w[0, 0] = 50 * w.abs().max()
    return w


def test_quantization_explorer_numbers(outlier_weight):
    from lora_edu.quant import quantization_error

    ex = W.quantization_explorer(outlier_weight)
    assert set(ex.errors) == {"per-tensor", 1024, 256, 64, 16}
    for g in ex.errors:
        assert sorted(ex.errors[g]) == list(range(2, 9))
        assert ex.errors[g][5] == quantization_error(outlier_weight, 5, g)
    # per tensor at 4 bits the outlier sets a step so coarse that every other weight rounds to 0
    assert ex.zeros["per-tensor"][4] == outlier_weight.numel() - 1
    assert ex.zero_share(4, "per-tensor") == "> 99.9 %"
    # a typical block of 64 does not hold the outlier: its levels span the bulk of the weights
    assert ex.levels(4, "per-tensor").max() == pytest.approx(float(outlier_weight.abs().max()))
    assert ex.levels(4, 64).max() < 0.2 * float(outlier_weight.abs().max())
    ex.bits.value, ex.grouping.value = 8, 16
    assert "<b>8 bits, blocks of 16</b>" in ex.readout.value and "255 levels" in ex.readout.value
    assert f"{ex.zero_share(8, 16)} of the weights round to 0" in ex.readout.value
    assert f"relative error {ex.errors[16][8]:.2f} %" in ex.readout.value


def test_quantization_explorer_static_picture_is_a_small_palette_png(outlier_weight):
    import base64
    import io

    from PIL import Image

    from lora_edu.explorers.framework import Explorer

    ex = W.quantization_explorer(outlier_weight)
    ours, plain = ex.static_bundle(), Explorer.static_bundle(ex)
    assert ours["text/plain"] == plain["text/plain"]
    with Image.open(io.BytesIO(base64.b64decode(ours["image/png"]))) as a, \
            Image.open(io.BytesIO(base64.b64decode(plain["image/png"]))) as b:
        assert a.format == "PNG" and a.mode == "P" and a.size == b.size
    assert len(ours["image/png"]) < len(plain["image/png"]) / 2


def test_quantization_error_checks_its_grouping():
    from lora_edu.quant import quantization_error

    w = torch.tensor([[-1.0, 0.5], [0.25, 1.0]])
    err = np.linalg.norm([0.5 - 64 / 127, 0.25 - 32 / 127]) / np.linalg.norm([1, 0.5, 0.25, 1])
    assert quantization_error(w, 8, "per-tensor") == pytest.approx(100 * err, rel=1e-5)
    assert quantization_error(torch.tensor([1.0, -1.0, 0.0, 1.0]), 2, 2) == 0.0  # representable exactly
    with pytest.raises(ValueError, match="grouping must be"):
        quantization_error(w, 8, "per-row")


def test_legends_stay_above_the_moving_marks(image):
    ex = W.rank_explorer(image)
    ((left, top, w, h), png), = ex.picture.legends
    (x0, y0), (x1, y1) = ex.ax_err.bbox.get_points()
    H = ex.picture.height
    assert x0 <= left and left + w <= x1 + 1 and H - y1 <= top and top + h <= H - y0 + 1  # inside its axes
    assert decode(png).shape[:2] == (h, w)
    stack = ex.widget.children[-1]
    assert stack.children[-1].value == png and stack.children.index(ex._view) < len(stack.children) - 1
    assert "lora-edu-legend" in stack.children[-1]._dom_classes  # CSS keeps it above the marks


def test_one_message_per_move_carries_readout_pixels_and_marks(image):
    """A move changes one widget (each widget message costs about a no-op round trip)."""
    ex = W.rank_explorer(image, 5)
    def tree(w):
        yield w
        for child in getattr(w, "children", ()):
            yield from tree(child)

    sent = []
    for w in tree(ex.widget):
        if w is not ex.slider and "value" in w.keys:
            w.observe(lambda change, w=w: sent.append(w), names="value")
    ex.slider.value = 9
    assert sent == [ex._view]
    html = ex._view.value
    assert '<b>r = 9</b>' in html and "relative error" in html
    fmt, raw = ex.images["image"]
    assert f'src="data:image/{fmt};base64,{base64.b64encode(raw).decode("ascii")}"' in html
    assert html.count('class="lora-edu-layer') == 1 and '<svg xmlns="http://www.w3.org/2000/svg"' in html
