"""Notebook 02: truncated SVD, Eckart-Young-Mirsky, energy kept, storage cost and denoising.

``A`` (m, n) = ``U`` (m, p) ``diag(s)`` (p, p) ``Vt`` (p, n) with p = min(m, n). Keeping the first r
factors gives the best rank-r approximation ``A_r`` in the Frobenius and spectral norms
(Eckart-Young-Mirsky), and its Frobenius error is ``sqrt(sum(s[r:] ** 2))``. ``r`` (the truncation
rank, as in the course's notation A_r = U_r Sigma_r V_r^T) always runs from 0 to min(m, n).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lora_edu._checks import as_matrix, as_vector, check_float, check_int


def _check_r(r: object, shape: tuple[int, int]) -> int:
    return check_int(r, "r", 0, min(shape))


def truncated_svd(A: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``r`` singular triplets of ``A``.

    Args:
        A: matrix of shape (m, n), finite.
        r: number of singular values to keep, 0 <= r <= min(m, n).

    Returns:
        ``(U_r, s_r, Vt_r)`` with shapes (m, r), (r,), (r, n); ``s_r`` descending.
    """
    A = as_matrix(A, "A")
    r = _check_r(r, A.shape)
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    return U[:, :r], s[:r], Vt[:r, :]


def low_rank_approx(A: np.ndarray, r: int) -> np.ndarray:
    """Best rank-``r`` approximation ``A_r = U_r diag(s_r) Vt_r`` of ``A`` (m, n), shape (m, n)."""
    U_r, s_r, Vt_r = truncated_svd(A, r)
    # Scaling the columns of U_r is cheaper than building diag(s_r): O(mr) instead of O(r^2).
    return (U_r * s_r) @ Vt_r


def reconstruction_error(A: np.ndarray, r: int, relative: bool = False) -> float:
    """Frobenius norm ``||A - A_r||_F`` of the rank-r truncation error.

    With ``relative=True`` it is divided by ``||A||_F`` (0.0 for the zero matrix).
    """
    A = as_matrix(A, "A")
    err = float(np.linalg.norm(A - low_rank_approx(A, r)))
    if relative:
        total = float(np.linalg.norm(A))
        return err / total if total > 0 else 0.0
    return err


def eckart_young_errors(s: np.ndarray) -> np.ndarray:
    """``sqrt(sum(s[r:] ** 2))`` for every r = 0..len(s): the optimal rank-r errors, shape (p + 1,).

    Computed from the singular values alone, so the error-vs-rank curve costs one SVD in total.
    """
    s = as_vector(s, "s")
    tail = np.concatenate([np.cumsum((s**2)[::-1])[::-1], [0.0]])
    return np.sqrt(np.maximum(tail, 0.0))


def energy_kept(s: np.ndarray, r: int) -> float:
    """Fraction ``sum(s[:r]**2) / sum(s**2)`` of the squared Frobenius norm kept at rank r."""
    s = as_vector(s, "s")
    r = check_int(r, "r", 0, len(s))
    total = float(np.sum(s**2))
    return float(np.sum(s[:r] ** 2)) / total if total > 0 else 1.0


def rank_for_energy(s: np.ndarray, fraction: float) -> int:
    """Smallest r whose ``sum(s[:r]**2)`` reaches ``fraction`` of ``sum(s**2)``.

    Args:
        s: singular values, shape (p,), non-negative (any order is sorted descending first).
        fraction: in (0, 1].

    Returns:
        r in [0, p]; 0 only for an all-zero spectrum (nothing to keep).
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
    # relative slack, so that e.g. 9/14 of [9, 4, 1] is reached at r=1 despite rounding.
    return int(np.argmax(cum >= fraction * total * (1 - 1e-12)) + 1)


def storage_cost(m: int, n: int, r: int) -> int:
    """Numbers stored for a rank-r SVD of an (m, n) matrix: ``r * (m + n + 1)`` (U_r, s_r, Vt_r)."""
    m = check_int(m, "m", 1)
    n = check_int(n, "n", 1)
    r = check_int(r, "r", 0, min(m, n))
    return r * (m + n + 1)


# --- denoising: which singular values are signal? ----------------------------------------------


def optimal_threshold_coefficient(beta: float) -> float:
    """Gavish & Donoho's lambda*(beta) for a known noise level (their eq. 11).

    For an (m, n) matrix with ``beta = min(m, n) / max(m, n)`` and i.i.d. noise of standard
    deviation sigma, the optimal hard threshold is ``lambda*(beta) * sqrt(max(m, n)) * sigma``;
    ``lambda*(1) = 4 / sqrt(3)``.
    """
    beta = check_float(beta, "beta", 0.0, 1.0, lo_open=True)
    return float(np.sqrt(2 * (beta + 1) + 8 * beta / ((beta + 1) + np.sqrt(beta**2 + 14 * beta + 1))))


@lru_cache(maxsize=64)
def marchenko_pastur_median(beta: float) -> float:
    """Median of the Marchenko-Pastur law with ratio ``beta`` in (0, 1] and unit variance.

    It is the median of ``s_i**2 / max(m, n)`` for the singular values ``s_i`` of a pure-noise
    (m, n) matrix with unit-variance entries, in the limit of large matrices.
    """
    from scipy import integrate, optimize

    beta = check_float(beta, "beta", 0.0, 1.0, lo_open=True)
    lo, hi = (1 - np.sqrt(beta)) ** 2, (1 + np.sqrt(beta)) ** 2

    def density(x: float) -> float:
        return np.sqrt(max((hi - x) * (x - lo), 0.0)) / (2 * np.pi * beta * x)

    def cdf_minus_half(t: float) -> float:
        return integrate.quad(density, lo, t)[0] - 0.5

    return float(optimize.brentq(cdf_minus_half, lo, hi, xtol=1e-12))


def optimal_hard_threshold(shape: tuple[int, int], sigma: float | None = None, s: np.ndarray | None = None) -> float:
    """Gavish & Donoho (2014): keep the singular values above this threshold to denoise.

    Args:
        shape: ``(m, n)`` of the noisy matrix.
        sigma: the noise's standard deviation per entry, if known: the threshold is then
            ``lambda*(beta) * sqrt(max(m, n)) * sigma`` (``4/sqrt(3) sqrt(n) sigma`` for square n x n).
        s: the noisy matrix's singular values, used when ``sigma`` is None: the threshold is then
            ``omega(beta) * median(s)`` with ``omega(beta) = lambda*(beta) / sqrt(mu_beta)`` and
            ``mu_beta`` the Marchenko-Pastur median (``omega(1)`` is about 2.858).

    Returns:
        The threshold tau; ``int(np.sum(s > tau))`` is the rank to keep.
    """
    if len(shape) != 2:
        raise ValueError(f"shape must be (m, n), got {shape!r}")
    m, n = (check_int(x, name, 1) for x, name in zip(shape, ("shape[0]", "shape[1]"), strict=True))
    beta = min(m, n) / max(m, n)
    lam = optimal_threshold_coefficient(beta)
    if sigma is not None:
        sigma = check_float(sigma, "sigma", 0.0, lo_open=True)
        return lam * np.sqrt(max(m, n)) * sigma
    if s is None:
        raise ValueError("give the noise level sigma, or the singular values s to estimate it from")
    s = as_vector(s, "s")
    if len(s) != min(m, n):
        raise ValueError(f"s must hold all min(m, n) = {min(m, n)} singular values, got {len(s)}")
    return lam / np.sqrt(marchenko_pastur_median(beta)) * float(np.median(s))


def denoising_errors(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """``||N_r - C||_F`` for every r = 0..min(m, n), where ``N_r`` truncates ``noisy`` (m, n); shape (p + 1,).

    One SVD ``noisy = U diag(s) V^T`` gives the whole curve without forming any ``N_r``:
    ``||N_r - C||_F^2 = ||C||_F^2 + sum_{i <= r} (s_i^2 - 2 s_i u_i^T C v_i)``.
    """
    noisy = as_matrix(noisy, "noisy")
    clean = as_matrix(clean, "clean")
    if clean.shape != noisy.shape:
        raise ValueError(f"clean must have the shape of noisy {noisy.shape}, got {clean.shape}")
    U, s, Vt = np.linalg.svd(noisy, full_matrices=False)
    overlap = np.sum(U * (clean @ Vt.T), axis=0)  # u_i^T C v_i for every i
    sq = np.linalg.norm(clean) ** 2 + np.concatenate([[0.0], np.cumsum(s**2 - 2 * s * overlap)])
    return np.sqrt(np.maximum(sq, 0.0))


class SVDCache:
    """The SVD of ``A`` computed once; any rank-r approximation is then one thin product.

    This is what makes the rank slider instant: a slider move costs an (m, r)(r, n) product, not
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

    def approx(self, r: int) -> np.ndarray:
        """Rank-r approximation, shape (m, n)."""
        r = check_int(r, "r", 0, self.max_rank)
        return (self.U[:, :r] * self.s[:r]) @ self.Vt[:r]

    def relative_error(self, r: int) -> float:
        r = check_int(r, "r", 0, self.max_rank)
        return float(self.errors[r] / self.norm) if self.norm > 0 else 0.0

    def energy(self, r: int) -> float:
        return energy_kept(self.s, r)

    def storage(self, r: int) -> int:
        m, n = self.A.shape
        return storage_cost(m, n, r)
