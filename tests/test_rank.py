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
    ],
)
def test_bad_input_names_the_argument(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)
