import numpy as np
import pytest
import torch

from lora_edu import autoencoder as AE
from lora_edu.data import load_digits_data, train_test_split_indices


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits_data()
    tr, te = train_test_split_indices(len(X), seed=0)
    Xtr, mean = AE.center(X[tr])
    Xte, _ = AE.center(X[te], mean)
    return Xtr, Xte


def test_linear_autoencoder_shapes_and_rank():
    m = AE.LinearAutoencoder(10, 3)
    assert m.encoder.weight.shape == (3, 10) and m.decoder.weight.shape == (10, 3)
    assert m(torch.zeros(5, 10)).shape == (5, 10)
    assert np.linalg.matrix_rank(m.end_to_end()) == 3


def test_training_reaches_the_pca_optimum_and_subspace(digits):
    Xtr, _ = digits
    k = 4
    m = AE.LinearAutoencoder(64, k)
    hist = AE.train_autoencoder(m, Xtr, epochs=600, lr=0.02, seed=0, progress=False)
    assert len(hist["loss"]) == 600 and hist["loss"][-1] < hist["loss"][0]
    assert AE.reconstruction_mse(m, Xtr) / AE.pca_mse(Xtr, k) < 1.01
    angles = AE.principal_angles(m.decoder.weight.detach().double().numpy(), AE.principal_directions(Xtr, k))
    assert angles.max() < 3.0


def test_training_is_seeded(digits):
    Xtr, _ = digits
    a, b = AE.LinearAutoencoder(64, 2), AE.LinearAutoencoder(64, 2)
    AE.train_autoencoder(a, Xtr[:200], epochs=5, lr=0.01, seed=3, progress=False)
    AE.train_autoencoder(b, Xtr[:200], epochs=5, lr=0.01, seed=3, progress=False)
    assert torch.equal(a.decoder.weight, b.decoder.weight)


def test_nonlinear_autoencoder_trains_minibatch(digits):
    Xtr, Xte = digits
    m = AE.NonlinearAutoencoder(64, 2, hidden=16)
    hist = AE.train_autoencoder(m, Xtr, epochs=3, lr=3e-3, batch_size=128, progress=False)
    assert hist["loss"][-1] < hist["loss"][0]
    assert np.isfinite(AE.reconstruction_mse(m, Xte))


def test_principal_angles_known_cases():
    e = np.eye(4)
    assert np.allclose(AE.principal_angles(e[:, :2], e[:, :2]), [0, 0])
    assert np.allclose(AE.principal_angles(e[:, :2], e[:, 2:]), [90, 90])
    assert np.allclose(AE.principal_angles(e[:, :1], e[:, :3]), [0])  # containment
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    assert np.allclose(AE.principal_angles(e[:, :1], (c * e[:, 0] + s * e[:, 1])[:, None]), [30])
    # any basis of the same subspace: angles ignore scaling and mixing
    B = e[:, :2] @ np.array([[2.0, 1.0], [0.0, 5.0]])
    assert np.allclose(AE.principal_angles(B, e[:, :2]), [0, 0], atol=1e-6)
    angles = AE.principal_angles(np.random.default_rng(0).standard_normal((6, 3)), np.eye(6)[:, :3])
    assert np.all(np.diff(angles) >= 0)


def test_subspace_similarity_range():
    e = np.eye(5)
    assert AE.subspace_similarity(e[:, :2], e[:, :2]) == pytest.approx(1.0)
    assert AE.subspace_similarity(e[:, :2], e[:, 2:4]) == pytest.approx(0.0, abs=1e-12)
    assert AE.subspace_similarity(e[:, :2], e[:, 1:3]) == pytest.approx(0.5)


def test_pca_mse_is_eckart_young(digits):
    Xtr, Xte = digits
    s = np.linalg.svd(Xtr, compute_uv=False)
    assert AE.pca_mse(Xtr, 5) == pytest.approx(np.sum(s[5:] ** 2) / Xtr.size)
    assert AE.pca_mse(Xtr, 64, Xte) == pytest.approx(0.0, abs=1e-20)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: AE.LinearAutoencoder(8, 0), ValueError, "k must be in [1, 8]"),
        (lambda: AE.LinearAutoencoder(8, 9), ValueError, "k must be in [1, 8]"),
        (lambda: AE.NonlinearAutoencoder(8, 2, hidden=0), ValueError, "hidden must be in"),
        (lambda: AE.train_autoencoder(AE.LinearAutoencoder(8, 2), np.zeros((4, 7)), epochs=1, lr=0.1),
         ValueError, "X must have shape (n, 8)"),
        (lambda: AE.train_autoencoder(AE.LinearAutoencoder(8, 2), np.zeros((4, 8)), epochs=0, lr=0.1),
         ValueError, "epochs must be in"),
        (lambda: AE.train_autoencoder(AE.LinearAutoencoder(8, 2), np.zeros((4, 8)), epochs=1, lr=0.0),
         ValueError, "lr must be in"),
        (lambda: AE.train_autoencoder(torch.nn.Linear(2, 2), np.zeros((4, 2)), epochs=1, lr=0.1),
         TypeError, "model must be"),
        (lambda: AE.principal_angles(np.eye(4)[:, :2], np.eye(5)[:, :2]), ValueError, "same space"),
        (lambda: AE.principal_angles(np.ones((4, 2)), np.eye(4)[:, :2]), ValueError, "linearly dependent"),
        (lambda: AE.principal_angles(np.ones(4), np.eye(4)[:, :2]), ValueError, "U must be 2-D"),
        (lambda: AE.pca_mse(np.eye(4), 5), ValueError, "k must be in [0, 4]"),
        (lambda: AE.center(np.eye(3), np.zeros(2)), ValueError, "mean must have shape (3,)"),
    ],
)
def test_bad_input(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)
