import builtins

import numpy as np
import pytest

from lora_edu import widgets as W
from lora_edu.data import sample_image
from lora_edu.svd import reconstruction_error


@pytest.fixture(scope="module")
def image():
    return sample_image(size=128)


def test_rank_explorer_slider_updates_image_and_readout(image):
    ex = W.rank_explorer(image, k=5)
    before_png, before_text = ex.live.widget.value, ex.readout.value
    assert "k = 5" in before_text
    ex.slider.value = 40
    assert "k = 40" in ex.readout.value and ex.readout.value != before_text
    assert ex.live.widget.value != before_png
    rel = 100 * reconstruction_error(image, 40, relative=True)
    assert f"relative error {rel:.2f} %" in ex.readout.value
    assert ex.slider.max == 128 and ex.slider.min == 0


def test_slider_moves_do_not_recompute_the_svd(image, monkeypatch):
    ex = W.rank_explorer(image, k=3)
    renders = ex.live.renders

    def boom(*args, **kwargs):
        raise AssertionError("np.linalg.svd called on a slider move")

    monkeypatch.setattr(np.linalg, "svd", boom)
    for k in (1, 7, 64, 128, 0):
        ex.slider.value = k
    assert ex.live.renders == renders + 5


def test_explorer_output_carries_static_fallback(image):
    import base64

    bundle = W.rank_explorer(image)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    png = base64.b64decode(bundle["image/png"])
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert "did not render" in bundle["text/plain"]


def test_static_fallback_without_ipywidgets(image, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_widgets(name, *args, **kwargs):
        if name.startswith("ipywidgets"):
            raise ImportError("simulated: no ipywidgets")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_widgets)
    fig = W.rank_explorer(image)
    assert "static fallback" in capsys.readouterr().out
    assert len(fig.axes) == len(W.default_ranks(128))


def test_outer_product_explorer_tracks_rank():
    ex = W.outer_product_explorer(d=12, n=10, seed=0)
    for t in (0, 1, 4, 10):
        ex.terms.value = t
        assert f"numerical rank = <b>{t}</b>" in ex.readout.value
    ex.terms.value = 3
    ex.noise.value = 1e-3
    assert "numerical rank = <b>10</b>" in ex.readout.value


def test_explorers_reject_bad_input():
    with pytest.raises(ValueError, match="image must be 2-D"):
        W.rank_explorer(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match=r"k must be in \[0, 4\]"):
        W.rank_explorer(np.eye(4), k=5)
    with pytest.raises(ValueError, match="d must be in"):
        W.outer_product_explorer(d=0)


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
    png = bytes(ex.live.widget.value)
    assert "non-linear AE" not in ex.readout.value  # not trained at k=4, and it says nothing false
    ex.slider.value = 2
    assert "k = 2" in ex.readout.value and "non-linear AE" in ex.readout.value
    assert bytes(ex.live.widget.value) != png
    assert ex.errors["PCA (truncated SVD)"][4] == pytest.approx(AE.pca_mse(Xtr, 4, Xte))
    with pytest.raises(ValueError, match="linear must map"):
        W.autoencoder_explorer(Xtr, Xte, mean, {}, {})


def test_lora_rank_explorer():
    results = {r: {"singular_values": np.r_[np.linspace(2, 1, r), np.zeros(8 - r)], "accuracy": 0.9 + r / 100,
                   "trainable": 100 * r} for r in (1, 2, 4, 8)}
    ex = W.lora_rank_explorer(results, full_spectrum=np.linspace(3, 0.1, 16), full_accuracy=0.99)
    png = bytes(ex.live.widget.value)
    ex.slider.value = 8
    assert "r = 8" in ex.readout.value and "8 non-negligible" in ex.readout.value
    assert bytes(ex.live.widget.value) != png
    with pytest.raises(ValueError, match="lacks"):
        W.lora_rank_explorer({1: {"accuracy": 1.0}})
