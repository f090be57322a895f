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
    r = 4
    m = AE.LinearAutoencoder(64, r)
    losses = AE.train_autoencoder(m, Xtr, epochs=600, lr=0.02, seed=0, progress=False)
    assert len(losses) == 600 and losses[-1] < losses[0]
    assert AE.reconstruction_mse(m, Xtr) / AE.pca_mse(Xtr, r) < 1.01
    angles = AE.principal_angles(m.decoder.weight.detach().double().numpy(), AE.principal_directions(Xtr, r))
    assert angles.max() < 3.0


def test_the_seed_fixes_the_initial_weights_and_leaves_the_global_rng_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    a, b = AE.LinearAutoencoder(64, 2, seed=3), AE.LinearAutoencoder(64, 2, seed=3)
    assert torch.equal(torch.rand(3), expected)          # building models did not consume global draws
    assert torch.equal(a.encoder.weight, b.encoder.weight) and torch.equal(a.decoder.weight, b.decoder.weight)
    assert not torch.equal(a.encoder.weight, AE.LinearAutoencoder(64, 2, seed=4).encoder.weight)
    n1, n2 = AE.NonlinearAutoencoder(8, 2, hidden=4, seed=1), AE.NonlinearAutoencoder(8, 2, hidden=4, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(n1.parameters(), n2.parameters(), strict=True))


def test_training_is_reproducible(digits):
    Xtr, _ = digits
    a, b = AE.LinearAutoencoder(64, 2, seed=3), AE.LinearAutoencoder(64, 2, seed=3)
    AE.train_autoencoder(a, Xtr[:200], epochs=5, lr=0.01, batch_size=50, seed=3, progress=False)
    AE.train_autoencoder(b, Xtr[:200], epochs=5, lr=0.01, batch_size=50, seed=3, progress=False)
    assert torch.equal(a.decoder.weight, b.decoder.weight)
    c = AE.LinearAutoencoder(64, 2, seed=3)               # same start, other batch order
    AE.train_autoencoder(c, Xtr[:200], epochs=5, lr=0.01, batch_size=50, seed=4, progress=False)
    assert not torch.equal(a.decoder.weight, c.decoder.weight)


def test_training_continues_from_the_given_weights(digits):
    """No hidden re-initialisation: a second call starts where the first one stopped."""
    Xtr, _ = digits
    m = AE.LinearAutoencoder(64, 4)
    first = AE.train_autoencoder(m, Xtr, epochs=200, lr=0.02, progress=False)
    trained = m.decoder.weight.detach().clone()
    second = AE.train_autoencoder(m, Xtr, epochs=1, lr=1e-9, progress=False)
    assert second[0] == pytest.approx(AE.reconstruction_mse(m, Xtr), rel=1e-4)   # measured at the trained weights
    assert second[0] < 0.5 * first[0]                    # a re-initialised model would start near first[0]
    assert torch.allclose(m.decoder.weight, trained, atol=1e-6)
    # and a model whose weights we set by hand (tiny, as in notebook 03's plateau run) is trained from them
    small = AE.LinearAutoencoder(64, 2)
    with torch.no_grad():
        small.encoder.weight.mul_(1e-6)
        small.decoder.weight.mul_(1e-6)
    (loss0,) = AE.train_autoencoder(small, Xtr, epochs=1, lr=1e-9, progress=False)
    assert loss0 == pytest.approx(float(np.mean(Xtr**2)), rel=1e-4)   # output ~0: the error is the data's energy


def test_nonlinear_autoencoder_trains_minibatch(digits):
    Xtr, Xte = digits
    m = AE.NonlinearAutoencoder(64, 2, hidden=16)
    losses = AE.train_autoencoder(m, Xtr, epochs=3, lr=3e-3, batch_size=128, progress=False)
    assert losses[-1] < losses[0]
    assert np.isfinite(AE.reconstruction_mse(m, Xte))
    assert sum(p.numel() for p in m.parameters()) == (64 * 16 + 16) + (16 * 2 + 2) + (2 * 16 + 16) + (16 * 64 + 64)


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
        (lambda: AE.LinearAutoencoder(8, 0), ValueError, "r must be in [1, 8]"),
        (lambda: AE.LinearAutoencoder(8, 9), ValueError, "r must be in [1, 8]"),
        (lambda: AE.NonlinearAutoencoder(8, 2, hidden=0), ValueError, "hidden must be in"),
        (lambda: AE.train_autoencoder(AE.LinearAutoencoder(8, 2), np.zeros((4, 7)), epochs=1, lr=0.1),
         ValueError, "X must have shape (n, 8)"),
        (lambda: AE.train_autoencoder(AE.LinearAutoencoder(8, 2), np.zeros((4, 8)), epochs=0, lr=0.1),
         ValueError, "epochs must be in"),
        (lambda: AE.train_autoencoder(AE.LinearAutoencoder(8, 2), np.zeros((4, 8)), epochs=1, lr=0.0),
         ValueError, "lr must be in"),
        (lambda: AE.train_autoencoder(AE.LinearAutoencoder(8, 2), np.zeros((4, 8)), epochs=1, lr=0.1, batch_size=5),
         ValueError, "batch_size must be in [1, 4]"),
        (lambda: AE.LinearAutoencoder(8, 2.0), TypeError, "r must be an integer"),
        (lambda: AE.train_autoencoder(torch.nn.Linear(2, 2), np.zeros((4, 2)), epochs=1, lr=0.1),
         TypeError, "model must be"),
        (lambda: AE.principal_angles(np.eye(4)[:, :2], np.eye(5)[:, :2]), ValueError, "same space"),
        (lambda: AE.principal_angles(np.ones((4, 2)), np.eye(4)[:, :2]), ValueError, "linearly dependent"),
        (lambda: AE.principal_angles(np.ones(4), np.eye(4)[:, :2]), ValueError, "U must be 2-D"),
        (lambda: AE.pca_mse(np.eye(4), 5), ValueError, "r must be in [0, 4]"),
        (lambda: AE.center(np.eye(3), np.zeros(2)), ValueError, "mean must have shape (3,)"),
    ],
)
def test_bad_input(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


def test_uncentred_data_is_a_worse_and_harder_problem():
    """Notebook 03, exercise 03.6's worked solution: without centring, the optimum is worse (by at most
    one code unit) and section 4's recipe no longer reaches it."""
    X, _ = load_digits_data()
    tr, _ = train_test_split_indices(len(X), test_fraction=0.2, seed=0)
    raw = X[tr]
    centred, _ = AE.center(raw)
    r = 8
    assert AE.pca_mse(centred, r) < AE.pca_mse(raw, r) < AE.pca_mse(centred, r - 1)
    m_raw, m_c = AE.LinearAutoencoder(64, r, seed=0), AE.LinearAutoencoder(64, r, seed=0)
    AE.train_autoencoder(m_raw, raw, epochs=300, lr=0.05, progress=False)
    AE.train_autoencoder(m_c, centred, epochs=300, lr=0.05, progress=False)
    assert AE.reconstruction_mse(m_c, centred) / AE.pca_mse(centred, r) < 1.01
    assert AE.reconstruction_mse(m_raw, raw) / AE.pca_mse(raw, r) > 1.03
