import numpy as np
import pytest

from lora_edu import rank as R


def test_numerical_rank_agrees_with_numpy_default():
    rng = np.random.default_rng(0)
    for trial in range(100):
        m, n = (int(v) for v in rng.integers(1, 20, size=2))
        r = int(rng.integers(0, min(m, n) + 1))
        A = R.random_low_rank(m, n, r, seed=trial, noise=float(rng.choice([0.0, 1e-15, 1e-3])))
        for dtype in (np.float64, np.float32):
            assert R.numerical_rank(A.astype(dtype)) == np.linalg.matrix_rank(A.astype(dtype))


def test_numerical_rank_tolerance_separates_signal_from_noise():
    A = R.random_low_rank(60, 40, 5, seed=1, noise=1e-6)
    assert R.numerical_rank(A) == 40
    assert R.numerical_rank(A, tol=1e-3) == 5
    assert R.numerical_rank(np.zeros((3, 4))) == 0
    assert R.numerical_rank([[1, 2], [2, 4]]) == 1  # integer lists are accepted


def test_random_low_rank_rank_shape_and_seed():
    A = R.random_low_rank(30, 20, 7, seed=3)
    assert A.shape == (30, 20) and np.linalg.matrix_rank(A) == 7
    assert np.array_equal(A, R.random_low_rank(30, 20, 7, seed=3))
    assert not np.array_equal(A, R.random_low_rank(30, 20, 7, seed=4))
    assert np.linalg.matrix_rank(R.random_low_rank(5, 5, 0)) == 0


def test_outer_product_sum_is_matrix_product():
    rng = np.random.default_rng(2)
    us, vs = rng.standard_normal((6, 3)), rng.standard_normal((3, 4))
    assert np.allclose(R.outer_product_sum(us, vs), us @ vs)
    assert np.linalg.matrix_rank(R.outer_product_sum(us, vs)) == 3


def test_param_counts_match_the_seed_examples():
    assert R.dense_params(10, 8) == 80
    assert R.factored_params(10, 8, 3) == 54
    assert R.factored_params(1000, 1000, 4) == 8_000
    d, k = 2304, 768
    r = R.break_even_rank(d, k)
    assert R.factored_params(d, k, r) < d * k <= R.factored_params(d, k, r + 1)


def test_cr_factorisation_keeps_the_first_independent_columns():
    a, b = np.array([1, 2, -1, 3]), np.array([2, 1, 3, -1])
    A = np.stack([a, 2 * a, b, a + b, 3 * a - b], axis=1)
    C, Rm, cols = R.cr_factorisation(A)
    assert cols == [0, 2] and np.array_equal(C, A[:, [0, 2]])
    assert np.allclose(Rm, [[1, 2, 0, 1, 3], [0, 0, 1, 1, -1]])       # the reduced row echelon form
    assert np.allclose(C @ Rm, A)
    C0, R0, cols0 = R.cr_factorisation(np.zeros((3, 4)))
    assert cols0 == [] and C0.shape == (3, 0) and R0.shape == (0, 4)
    for seed in range(20):                                             # random shapes and ranks
        rng = np.random.default_rng(seed)
        m, n = (int(v) for v in rng.integers(1, 10, size=2))
        r = int(rng.integers(0, min(m, n) + 1))
        M = R.random_low_rank(m, n, r, seed=seed)
        C, Rm, cols = R.cr_factorisation(M, tol=1e-8 * max(np.linalg.norm(M, 2), 1.0))
        assert len(cols) == r and Rm.shape == (r, n) and np.allclose(C @ Rm, M)
        assert np.allclose(Rm[:, cols], np.eye(r))


def test_fundamental_subspaces_dimensions_and_orthogonality():
    W = R.random_low_rank(10, 8, 3, seed=0)
    sp = R.fundamental_subspaces(W)
    assert {k: v.shape for k, v in sp.items()} == {"column": (10, 3), "left_null": (10, 7), "row": (8, 3),
                                                   "null": (8, 5)}
    assert np.allclose(W @ sp["null"], 0) and np.allclose(sp["left_null"].T @ W, 0)
    assert np.allclose(sp["row"].T @ sp["null"], 0) and np.allclose(sp["column"].T @ sp["left_null"], 0)
    for basis in sp.values():
        assert np.allclose(basis.T @ basis, np.eye(basis.shape[1]))   # orthonormal
    full = R.fundamental_subspaces(np.eye(4))
    assert full["null"].shape == (4, 0) and full["left_null"].shape == (4, 0)


def test_degrees_of_freedom():
    assert R.degrees_of_freedom(2304, 768, 8) == 24_512
    assert R.degrees_of_freedom(6, 5, 2) == 18
    assert R.degrees_of_freedom(4, 3, 3) == 12 == R.dense_params(4, 3)      # full rank: every entry is free
    assert R.degrees_of_freedom(4, 3, 0) == 0


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: R.numerical_rank(np.ones(3)), ValueError, "A must be 2-D"),
        (lambda: R.numerical_rank(np.array([[1.0, np.nan]])), ValueError, "NaN or inf"),
        (lambda: R.numerical_rank([[1, 2], [3]]), ValueError, "rectangular"),
        (lambda: R.numerical_rank("abc"), TypeError, "A must be"),
        (lambda: R.numerical_rank(np.eye(2), tol=-1.0), ValueError, "tol must be in"),
        (lambda: R.random_low_rank(3, 4, 5), ValueError, "r must be in [0, 3]"),
        (lambda: R.random_low_rank(0, 4, 0), ValueError, "m must be in"),
        (lambda: R.random_low_rank(3, 4, 2.0), TypeError, "r must be an integer"),
        (lambda: R.random_low_rank(3, 4, 2, noise=-0.1), ValueError, "noise must be in"),
        (lambda: R.outer_product_sum(np.ones((3, 2)), np.ones((3, 4))), ValueError, "us has 2 columns"),
        (lambda: R.factored_params(10, 8, 9), ValueError, "r must be in [0, 8]"),
        (lambda: R.numerical_rank(np.array([[1 + 1j]])), TypeError, "complex"),
        (lambda: R.cr_factorisation(np.ones(3)), ValueError, "A must be 2-D"),
        (lambda: R.cr_factorisation(np.eye(2), tol=-1.0), ValueError, "tol must be in"),
        (lambda: R.fundamental_subspaces([[1, 2], [3]]), ValueError, "rectangular"),
        (lambda: R.degrees_of_freedom(10, 8, 9), ValueError, "r must be in [0, 8]"),
    ],
)
def test_bad_input_names_the_argument(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)
