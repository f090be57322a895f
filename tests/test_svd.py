import numpy as np
import pytest

from lora_edu import svd as S


@pytest.fixture
def A():
    return np.random.default_rng(0).standard_normal((9, 6))


def test_truncated_svd_shapes_and_order(A):
    for k in range(0, 7):
        U, s, Vt = S.truncated_svd(A, k)
        assert U.shape == (9, k) and s.shape == (k,) and Vt.shape == (k, 6)
        assert np.all(np.diff(s) <= 0)
    U, s, Vt = S.truncated_svd(A, 6)
    assert np.allclose((U * s) @ Vt, A)


def test_low_rank_approx_rank_and_extremes(A):
    assert np.allclose(S.low_rank_approx(A, 6), A)
    assert not S.low_rank_approx(A, 0).any()
    for k in range(1, 6):
        assert np.linalg.matrix_rank(S.low_rank_approx(A, k)) == k


def test_eckart_young_error_formula(A):
    s = np.linalg.svd(A, compute_uv=False)
    curve = S.eckart_young_errors(s)
    assert curve.shape == (7,) and curve[-1] == 0.0
    for k in range(7):
        assert np.isclose(S.reconstruction_error(A, k), np.sqrt(np.sum(s[k:] ** 2)))
        assert np.isclose(S.reconstruction_error(A, k), curve[k])


def near_optimal_competitors(A: np.ndarray, r: int, seed: int = 0):
    """Rank-r matrices close to the optimum: the ones a slightly wrong "best" approximation loses to.

    Random rank-r products are never near-optimal, so a test against them passes for almost any
    answer. These come within about eps^2 of the optimal error, for eps from 1e-1 down to 1e-5:
    the optimal factors nudged, and the best fits with a nearby column space or row space.
    """
    rng = np.random.default_rng(seed)
    (m, n), (U, s, Vt) = A.shape, np.linalg.svd(A, full_matrices=False)
    for eps in (1e-1, 1e-2, 1e-3, 1e-4, 1e-5):
        for _ in range(10):
            B = U[:, :r] + eps * rng.standard_normal((m, r))
            yield B @ (s[:r, None] * Vt[:r] + eps * rng.standard_normal((r, n)))   # optimal factors, nudged
            Q, _ = np.linalg.qr(U[:, :r] + eps * rng.standard_normal((m, r)))
            yield Q @ (Q.T @ A)                                   # best fit with this column space
            P, _ = np.linalg.qr(Vt[:r].T + eps * rng.standard_normal((n, r)))
            yield (A @ P) @ P.T                                   # best fit with this row space


@pytest.mark.parametrize("r", [1, 2, 3, 5])
def test_truncation_beats_every_near_optimal_competitor(A, r):
    A_r = S.low_rank_approx(A, r)
    s = np.linalg.svd(A, compute_uv=False)
    best_F, best_2 = np.linalg.norm(A - A_r), np.linalg.norm(A - A_r, 2)
    assert np.isclose(best_F, S.reconstruction_error(A, r)) and np.isclose(best_2, s[r])
    excess = []
    for C in near_optimal_competitors(A, r):
        assert np.linalg.matrix_rank(C) <= r
        error_F, error_2 = np.linalg.norm(A - C), np.linalg.norm(A - C, 2)
        assert error_F >= best_F * (1 - 1e-12) and error_2 >= best_2 * (1 - 1e-12)
        excess.append(error_F / best_F - 1)
    # The competitors reach the optimum to within 1e-7: a "best" that is off by more would lose.
    assert 0 <= min(excess) < 1e-7


def test_near_optimal_competitors_catch_a_wrong_best(A):
    """The test above has teeth: every plausible wrong rank-2 "best" loses to some competitor."""
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    r = 2
    turn = np.linalg.qr(np.eye(9) + 1e-3 * np.random.default_rng(1).standard_normal((9, 9)))[0]
    Q, _ = np.linalg.qr(A[:, :r])
    wrong = {
        "layers 1 and 3": (U[:, [0, 2]] * s[[0, 2]]) @ Vt[[0, 2]],
        "the two smallest layers": (U[:, -r:] * s[-r:]) @ Vt[-r:],
        "singular values 0.1 % too large": (U[:, :r] * (1.001 * s[:r])) @ Vt[:r],
        "singular values dropped": U[:, :r] @ Vt[:r],
        "rank r - 1": (U[:, : r - 1] * s[: r - 1]) @ Vt[: r - 1],
        "left vectors turned by about 1e-3": (turn @ U[:, :r] * s[:r]) @ Vt[:r],
        "projection on the first r columns": Q @ (Q.T @ A),
    }
    competitors = list(near_optimal_competitors(A, r))
    for name, W in wrong.items():
        assert np.linalg.matrix_rank(W) <= r
        assert min(np.linalg.norm(A - C) for C in competitors) < np.linalg.norm(A - W), name


def test_relative_error_and_zero_matrix(A):
    assert np.isclose(S.reconstruction_error(A, 0, relative=True), 1.0)
    assert S.reconstruction_error(np.zeros((3, 3)), 1, relative=True) == 0.0


def test_storage_cost():
    assert S.storage_cost(600, 512, 0) == 0
    assert S.storage_cost(600, 512, 20) == 20 * (600 + 512 + 1)
    assert S.storage_cost(3, 2, 2) == 12


def test_rank_for_energy():
    s = np.array([3.0, 2.0, 1.0])  # energies 9, 4, 1 of 14
    assert S.rank_for_energy(s, 9 / 14) == 1
    assert S.rank_for_energy(s, 9 / 14 + 1e-9) == 2
    assert S.rank_for_energy(s, 13 / 14) == 2
    assert S.rank_for_energy(s, 1.0) == 3
    assert S.rank_for_energy(np.array([1.0, 2.0, 3.0]), 0.5) == 1  # unsorted input is sorted
    assert S.rank_for_energy(np.zeros(4), 0.9) == 0
    assert S.rank_for_energy(np.ones(1000) * 0.1, 1.0) == 1000  # rounding in cumsum does not lose the last


def test_energy_kept_matches_relative_error(A):
    s = np.linalg.svd(A, compute_uv=False)
    for k in range(7):
        assert np.isclose(S.reconstruction_error(A, k, relative=True), np.sqrt(1 - S.energy_kept(s, k)), atol=1e-7)


def test_svd_cache_matches_functions(A):
    cache = S.SVDCache(A)
    for k in range(7):
        assert np.allclose(cache.approx(k), S.low_rank_approx(A, k))
        assert np.isclose(cache.relative_error(k), S.reconstruction_error(A, k, relative=True))
        assert cache.storage(k) == S.storage_cost(9, 6, k)


def test_optimal_threshold_coefficient_closed_form():
    assert np.isclose(S.optimal_threshold_coefficient(1.0), 4 / np.sqrt(3))
    # lambda*(beta) grows with beta, from sqrt(2) at beta -> 0 to 4/sqrt(3) at beta = 1.
    lams = [S.optimal_threshold_coefficient(b) for b in (1e-6, 0.25, 0.5, 0.75, 1.0)]
    assert np.isclose(lams[0], np.sqrt(2), atol=1e-5) and np.all(np.diff(lams) > 0)


@pytest.mark.parametrize("beta", [0.1, 0.25, 0.5, 2 / 3, 1.0])
def test_omega_matches_gavish_donoho_approximation(beta):
    # Gavish & Donoho (2014) give omega(beta) ~ 0.56 b^3 - 0.95 b^2 + 1.82 b + 1.43 (omega(1) = 2.858).
    omega = S.optimal_threshold_coefficient(beta) / np.sqrt(S.marchenko_pastur_median(beta))
    assert abs(omega - (0.56 * beta**3 - 0.95 * beta**2 + 1.82 * beta + 1.43)) < 0.01
    if beta == 1.0:
        assert round(omega, 3) == 2.858


def test_marchenko_pastur_median_matches_simulated_noise():
    m, n = 300, 600
    s = np.linalg.svd(np.random.default_rng(0).standard_normal((m, n)), compute_uv=False)
    assert np.isclose(np.median(s**2 / n), S.marchenko_pastur_median(m / n), rtol=0.02)


def test_optimal_hard_threshold_separates_signal_from_noise():
    rng = np.random.default_rng(1)
    m, n, true_rank = 200, 300, 6
    noise = rng.standard_normal((m, n))
    for s in (np.linalg.svd(noise, compute_uv=False),):
        assert np.sum(s > S.optimal_hard_threshold((m, n), sigma=1.0)) == 0        # pure noise: keep nothing
        assert np.sum(s > S.optimal_hard_threshold((m, n), s=s)) == 0
    U, _ = np.linalg.qr(rng.standard_normal((m, true_rank)))
    V, _ = np.linalg.qr(rng.standard_normal((n, true_rank)))
    signal = (U * np.linspace(150, 80, true_rank)) @ V.T                             # all well above the noise
    s = np.linalg.svd(signal + noise, compute_uv=False)
    assert np.sum(s > S.optimal_hard_threshold((m, n), sigma=1.0)) == true_rank
    tau_unknown = S.optimal_hard_threshold((m, n), s=s)
    assert np.sum(s > tau_unknown) == true_rank
    assert np.isclose(tau_unknown, S.optimal_hard_threshold((m, n), sigma=1.0), rtol=0.05)   # sigma estimated well
    # Square: 4/sqrt(3) sqrt(n) sigma, the title of the paper.
    assert np.isclose(S.optimal_hard_threshold((50, 50), sigma=2.0), 4 / np.sqrt(3) * np.sqrt(50) * 2.0)


def test_denoising_errors_match_forming_every_truncation():
    rng = np.random.default_rng(2)
    clean = rng.standard_normal((8, 3)) @ rng.standard_normal((3, 6))
    noisy = clean + 0.3 * rng.standard_normal(clean.shape)
    curve = S.denoising_errors(noisy, clean)
    direct = [np.linalg.norm(S.low_rank_approx(noisy, r) - clean) for r in range(7)]
    assert curve.shape == (7,) and np.allclose(curve, direct)
    assert np.isclose(curve[0], np.linalg.norm(clean)) and np.isclose(curve[-1], np.linalg.norm(noisy - clean))


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda A: S.truncated_svd(A, -1), ValueError, "r must be in [0, 6], got -1"),
        (lambda A: S.truncated_svd(A, 7), ValueError, "r must be in [0, 6], got 7"),
        (lambda A: S.low_rank_approx(A, 2.5), TypeError, "r must be an integer"),
        (lambda A: S.truncated_svd(A[0], 1), ValueError, "A must be 2-D"),
        (lambda A: S.truncated_svd(np.full((2, 2), np.inf), 1), ValueError, "NaN or inf"),
        (lambda A: S.reconstruction_error(A, 9), ValueError, "r must be in"),
        (lambda A: S.storage_cost(3, 4, 4), ValueError, "r must be in [0, 3]"),
        (lambda A: S.storage_cost(0, 4, 0), ValueError, "m must be in"),
        (lambda A: S.rank_for_energy([3.0, 1.0], 0.0), ValueError, "fraction must be in (0, 1]"),
        (lambda A: S.rank_for_energy([3.0, 1.0], 1.01), ValueError, "fraction must be in (0, 1]"),
        (lambda A: S.rank_for_energy([3.0, -1.0], 0.5), ValueError, "non-negative"),
        (lambda A: S.rank_for_energy([[3.0]], 0.5), ValueError, "s must be 1-D"),
        (lambda A: S.rank_for_energy([3.0, np.nan], 0.5), ValueError, "NaN"),
        (lambda A: S.energy_kept([3.0, 1.0], 3), ValueError, "r must be in [0, 2]"),
        (lambda A: S.SVDCache(A).approx(7), ValueError, "r must be in [0, 6]"),
        (lambda A: S.optimal_threshold_coefficient(0.0), ValueError, "beta must be in (0, 1]"),
        (lambda A: S.optimal_threshold_coefficient(1.5), ValueError, "beta must be in (0, 1]"),
        (lambda A: S.optimal_hard_threshold((9, 6)), ValueError, "give the noise level sigma"),
        (lambda A: S.optimal_hard_threshold((9, 6), sigma=-1.0), ValueError, "sigma must be in"),
        (lambda A: S.optimal_hard_threshold((9, 6), s=[1.0, 2.0]), ValueError, "all min(m, n) = 6"),
        (lambda A: S.optimal_hard_threshold((9,), sigma=1.0), ValueError, "shape must be (m, n)"),
        (lambda A: S.optimal_hard_threshold((0, 6), sigma=1.0), ValueError, "shape[0] must be in"),
        (lambda A: S.denoising_errors(A, A[:, :5]), ValueError, "clean must have the shape of noisy"),
    ],
)
def test_bad_input_names_the_argument(A, call, exc, words):
    with pytest.raises(exc) as info:
        call(A)
    assert words in str(info.value)
