"""Notebook 02: truncated SVD, Eckart-Young-Mirsky, energy kept and storage cost.

``A`` (m, n) = ``U`` (m, p) ``diag(s)`` (p, p) ``Vt`` (p, n) with p = min(m, n). Keeping the first k
factors gives the best rank-k approximation in the Frobenius norm (Eckart-Young-Mirsky), and
its error is ``sqrt(sum(s[k:] ** 2))``. ``k`` always runs from 0 to min(m, n).
"""

from __future__ import annotations

import numpy as np

from lora_edu._checks import as_matrix, as_vector, check_float, check_int


def _check_k(k: object, shape: tuple[int, int]) -> int:
    return check_int(k, "k", 0, min(shape))


def truncated_svd(A: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``k`` singular triplets of ``A``.

    Args:
        A: matrix of shape (m, n), finite.
        k: number of singular values to keep, 0 <= k <= min(m, n).

    Returns:
        ``(U_k, s_k, Vt_k)`` with shapes (m, k), (k,), (k, n); ``s_k`` descending.
    """
    A = as_matrix(A, "A")
    k = _check_k(k, A.shape)
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    return U[:, :k], s[:k], Vt[:k, :]


def low_rank_approx(A: np.ndarray, k: int) -> np.ndarray:
    """Best rank-``k`` approximation ``A_k = U_k diag(s_k) Vt_k`` of ``A`` (m, n), shape (m, n)."""
    U_k, s_k, Vt_k = truncated_svd(A, k)
    # Scaling the columns of U_k is cheaper than building diag(s_k): O(mk) instead of O(k^2).
    return (U_k * s_k) @ Vt_k


def reconstruction_error(A: np.ndarray, k: int, relative: bool = False) -> float:
    """Frobenius norm ``||A - A_k||_F`` of the rank-k truncation error.

    With ``relative=True`` it is divided by ``||A||_F`` (0.0 for the zero matrix).
    """
    A = as_matrix(A, "A")
    err = float(np.linalg.norm(A - low_rank_approx(A, k)))
    if relative:
        total = float(np.linalg.norm(A))
        return err / total if total > 0 else 0.0
    return err


def eckart_young_errors(s: np.ndarray) -> np.ndarray:
    """``sqrt(sum(s[k:] ** 2))`` for every k = 0..len(s): the optimal rank-k errors, shape (p + 1,).

    Computed from the singular values alone, so the error-vs-rank curve costs one SVD in total.
    """
    s = as_vector(s, "s")
    tail = np.concatenate([np.cumsum((s**2)[::-1])[::-1], [0.0]])
    return np.sqrt(np.maximum(tail, 0.0))


def energy_kept(s: np.ndarray, k: int) -> float:
    """Fraction ``sum(s[:k]**2) / sum(s**2)`` of the squared Frobenius norm kept at rank k."""
    s = as_vector(s, "s")
    k = check_int(k, "k", 0, len(s))
    total = float(np.sum(s**2))
    return float(np.sum(s[:k] ** 2)) / total if total > 0 else 1.0


def rank_for_energy(s: np.ndarray, fraction: float) -> int:
    """Smallest k whose ``sum(s[:k]**2)`` reaches ``fraction`` of ``sum(s**2)``.

    Args:
        s: singular values, shape (p,), non-negative (any order is sorted descending first).
        fraction: in (0, 1].

    Returns:
        k in [0, p]; 0 only for an all-zero spectrum (nothing to keep).
    """
    s = as_vector(s, "s")
    if np.any(s < 0):
        raise ValueError("s must be non-negative singular values")
    fraction = check_float(fraction, "fraction", 0.0, 1.0, lo_open=True)
    cum = np.cumsum(np.sort(s)[::-1] ** 2)
    total = cum[-1] if len(cum) else 0.0
    if total == 0:
        return 0
    # Compare against the cumsum's own total (so fraction=1.0 is always reached) with a 1e-12
    # relative slack, so that e.g. 9/14 of [9, 4, 1] is reached at k=1 despite rounding.
    return int(np.argmax(cum >= fraction * total * (1 - 1e-12)) + 1)


def storage_cost(m: int, n: int, k: int) -> int:
    """Numbers stored for a rank-k SVD of an (m, n) matrix: ``k * (m + n + 1)`` (U_k, s_k, Vt_k)."""
    m = check_int(m, "m", 1)
    n = check_int(n, "n", 1)
    k = check_int(k, "k", 0, min(m, n))
    return k * (m + n + 1)


class SVDCache:
    """The SVD of ``A`` computed once; any rank-k approximation is then one thin product.

    This is what makes the rank slider instant: a slider move costs an (m, k)(k, n) product, not
    a new O(m n min(m, n)) SVD.
    """

    def __init__(self, A: np.ndarray) -> None:
        self.A = as_matrix(A, "A")
        self.U, self.s, self.Vt = np.linalg.svd(self.A, full_matrices=False)
        self.errors = eckart_young_errors(self.s)
        self.norm = float(np.linalg.norm(self.s))

    @property
    def max_rank(self) -> int:
        return len(self.s)

    def approx(self, k: int) -> np.ndarray:
        """Rank-k approximation, shape (m, n)."""
        k = check_int(k, "k", 0, self.max_rank)
        return (self.U[:, :k] * self.s[:k]) @ self.Vt[:k]

    def relative_error(self, k: int) -> float:
        k = check_int(k, "k", 0, self.max_rank)
        return float(self.errors[k] / self.norm) if self.norm > 0 else 0.0

    def energy(self, k: int) -> float:
        return energy_kept(self.s, k)

    def storage(self, k: int) -> int:
        m, n = self.A.shape
        return storage_cost(m, n, k)
