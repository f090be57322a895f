"""Notebook 01: matrix rank, its four subspaces, rank-1 outer products and rank-r factorisations.

Shapes follow the LoRA paper: a rank-r matrix ``W`` of shape (d, k) maps k inputs to d outputs
and factors as ``B @ A`` with ``B`` of shape (d, r) and ``A`` of shape (r, k).
"""

from __future__ import annotations

import numpy as np

from lora_edu._checks import as_matrix, check_float, check_int


def singular_values(A: np.ndarray) -> np.ndarray:
    """Singular values of ``A`` (shape (m, n)) in descending order, shape (min(m, n),)."""
    A = as_matrix(A, "A")
    if A.size == 0:
        return np.zeros(0, dtype=A.dtype)
    return np.linalg.svd(A, compute_uv=False)


def default_tolerance(A: np.ndarray) -> float:
    """numpy's default rank tolerance: ``sigma_max * max(m, n) * eps(dtype)``."""
    A = as_matrix(A, "A")
    s = singular_values(A)
    if s.size == 0:
        return 0.0
    return float(s[0] * max(A.shape) * np.finfo(A.dtype).eps)


def numerical_rank(A: np.ndarray, tol: float | None = None) -> int:
    """Number of singular values of ``A`` above ``tol``.

    Args:
        A: matrix of shape (m, n).
        tol: threshold; ``None`` uses numpy's default (``sigma_max * max(m, n) * eps``), so
            the result agrees with ``np.linalg.matrix_rank(A)``.

    Returns:
        The numerical rank, an int in [0, min(m, n)].
    """
    A = as_matrix(A, "A")
    if tol is None:
        tol = default_tolerance(A)
    else:
        tol = check_float(tol, "tol", 0.0)
    return int(np.count_nonzero(singular_values(A) > tol))


def cr_factorisation(A: np.ndarray, tol: float | None = None) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """``A = C @ R`` where ``C`` holds the independent columns of ``A`` itself.

    Columns are scanned left to right and a column is kept when it is not a combination of the
    columns kept before it. Column j of ``R`` holds the coefficients that rebuild column j of ``A``
    from the columns of ``C`` (so ``R`` has the identity in the kept columns).

    Args:
        A: matrix of shape (d, k).
        tol: rank tolerance for "is a combination"; ``None`` uses numpy's default for ``A``.

    Returns:
        ``C`` of shape (d, r), ``R`` of shape (r, k) and ``cols``, the r indices of the kept columns.
    """
    A = as_matrix(A, "A")
    tol = default_tolerance(A) if tol is None else check_float(tol, "tol", 0.0)
    cols: list[int] = []
    for j in range(A.shape[1]):
        # keep column j when it adds a direction that the kept columns do not span
        if numerical_rank(A[:, cols + [j]], tol=tol) > len(cols):
            cols.append(j)
    C = A[:, cols]
    R = np.linalg.lstsq(C, A, rcond=None)[0] if cols else np.zeros((0, A.shape[1]), dtype=A.dtype)
    return C, R, cols


def fundamental_subspaces(A: np.ndarray, tol: float | None = None) -> dict[str, np.ndarray]:
    """Orthonormal bases of the four fundamental subspaces of ``A`` (shape (d, k), rank r).

    Computed from the SVD (notebook 02): the first r left singular vectors span the column space,
    the rest the left null space; the first r right singular vectors span the row space, the rest
    the null space.

    Args:
        A: matrix of shape (d, k).
        tol: rank tolerance; ``None`` uses numpy's default.

    Returns:
        ``{"column": (d, r), "left_null": (d, d - r), "row": (k, r), "null": (k, k - r)}``,
        each with orthonormal columns.
    """
    A = as_matrix(A, "A")
    r = numerical_rank(A, tol)
    U, _, Vt = np.linalg.svd(A, full_matrices=True)
    return {"column": U[:, :r], "left_null": U[:, r:], "row": Vt[:r].T, "null": Vt[r:].T}


def degrees_of_freedom(d: int, k: int, r: int) -> int:
    """Dimension of the set of (d, k) matrices of rank r: ``r * (d + k - r)``.

    ``B @ A`` stores ``r * (d + k)`` numbers, but ``(B M) @ (M^-1 A)`` is the same matrix for every
    invertible (r, r) ``M``, so ``r * r`` of them are redundant.
    """
    d = check_int(d, "d", 1)
    k = check_int(k, "k", 1)
    r = check_int(r, "r", 0, min(d, k))
    return r * (d + k - r)


def random_low_rank(
    m: int, n: int, r: int, *, seed: int = 0, noise: float = 0.0
) -> np.ndarray:
    """A random (m, n) matrix of rank exactly ``r`` (with probability 1), plus optional noise.

    The matrix is ``B @ A / sqrt(r)`` with Gaussian ``B`` (m, r) and ``A`` (r, n), so entries have
    unit variance whatever ``r`` is. ``noise > 0`` adds i.i.d. Gaussian noise of that standard
    deviation, which makes the matrix full rank in exact arithmetic: notebook 01 shows how the
    tolerance of :func:`numerical_rank` decides whether that counts.
    """
    m = check_int(m, "m", 1)
    n = check_int(n, "n", 1)
    r = check_int(r, "r", 0, min(m, n))
    noise = check_float(noise, "noise", 0.0)
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((m, r))
    A = rng.standard_normal((r, n))
    W = B @ A / np.sqrt(max(r, 1))
    if noise > 0:
        W = W + noise * rng.standard_normal((m, n))
    return W


def outer_product_sum(us: np.ndarray, vs: np.ndarray) -> np.ndarray:
    """``sum_i u_i v_i^T`` for the columns ``u_i`` of ``us`` (d, r) and rows ``v_i`` of ``vs`` (r, k).

    This is exactly ``us @ vs``: a (d x r)(r x k) product *is* a sum of r rank-1 outer products,
    which is why its rank is at most r.
    """
    us = as_matrix(us, "us")
    vs = as_matrix(vs, "vs")
    if us.shape[1] != vs.shape[0]:
        raise ValueError(
            f"us has {us.shape[1]} columns but vs has {vs.shape[0]} rows; they must be equal (r)"
        )
    total = np.zeros((us.shape[0], vs.shape[1]), dtype=np.result_type(us, vs))
    for i in range(us.shape[1]):
        total += np.outer(us[:, i], vs[i])
    return total


def dense_params(d: int, k: int) -> int:
    """Parameters of a dense (d, k) matrix: ``d * k``."""
    return check_int(d, "d", 1) * check_int(k, "k", 1)


def factored_params(d: int, k: int, r: int) -> int:
    """Parameters of a rank-r factorisation ``B (d, r) @ A (r, k)``: ``r * (d + k)``."""
    d = check_int(d, "d", 1)
    k = check_int(k, "k", 1)
    r = check_int(r, "r", 0, min(d, k))
    return r * (d + k)


def break_even_rank(d: int, k: int) -> int:
    """Largest r for which the factorisation is strictly smaller than the dense matrix.

    ``r * (d + k) < d * k``  <=>  ``r < d * k / (d + k)``.
    """
    d = check_int(d, "d", 1)
    k = check_int(k, "k", 1)
    return (d * k - 1) // (d + k)
