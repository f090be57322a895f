"""Exercises of notebook 02 (SVD truncation).

How to use them, and how they are written: :mod:`lora_edu.exercises`.

* :data:`energy_rank` - the smallest r keeping 98 % of the photo's energy (sigma_i squared, not sigma_i).
* :data:`break_even_rank` - the largest r at which a rank-r SVD stores fewer numbers than the matrix.
* :data:`eckart_young_error` - ``||A - A_r||_F`` from the singular values alone (Frobenius, not spectral).
* :data:`largest_stretch` - the largest ``||M x||`` over unit vectors x for a shear (sigma_1, not an eigenvalue).
* :data:`lora_factors` - split a rank-3 update into B (d x r) and A (r x k) with B A = Delta W.
* :data:`denoise_rank` - open task: choose the truncation rank that best denoises a matrix.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lora_edu.exercises._core import as_number, exercise, is_whole_number, named_mistake
from lora_edu.svd import denoising_errors, optimal_hard_threshold, rank_for_energy, storage_cost

__all__ = ["energy_rank", "break_even_rank", "eckart_young_error", "largest_stretch", "lora_factors", "denoise_rank"]

_NOT_AN_INT = "give a whole number of singular values as an int (e.g. 12, not 12.0 or '12')"


def _whole(answer: object) -> tuple[bool, str]:
    """(False, why) when ``answer`` is not an int; a whole float gets its own message."""
    value = as_number(answer)
    if value is not None and value == int(value) and not is_whole_number(answer):
        return False, f"a rank is a count: pass the int {int(value)}, not the float {answer!r}"
    if value is not None and not is_whole_number(answer):
        return False, f"a rank is a whole number, got {answer!r}"
    return False, _NOT_AN_INT


_SVD_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _singular_values(A: np.ndarray) -> np.ndarray:
    """Singular values of a problem matrix, computed once (problem data is read-only)."""
    if A.flags.writeable:                    # not problem data: no caching
        return np.linalg.svd(A, compute_uv=False)
    hit = _SVD_CACHE.get(id(A))
    if hit is None or hit[0] is not A:
        hit = _SVD_CACHE[id(A)] = (A, np.linalg.svd(A, compute_uv=False))
    return hit[1]


def _close(x: float, y: float, rtol: float = 1e-6) -> bool:
    return bool(np.isclose(x, y, rtol=rtol, atol=0.0))


# --- 02.1 -----------------------------------------------------------------------------------------


def _photo() -> np.ndarray:
    from lora_edu.data import sample_image

    img = sample_image()
    img.flags.writeable = False
    return img


_PHOTO = _photo()
_S_PHOTO = np.linalg.svd(_PHOTO, compute_uv=False)
_S_PHOTO.flags.writeable = False


@exercise("02.1", data={"image": _PHOTO, "fraction": 0.98}, answer_format="an int r")
def energy_rank(answer: object, image: np.ndarray, fraction: float) -> tuple[bool, str]:
    """the smallest rank r whose truncation keeps at least 98 % of the photo's energy"""
    if not is_whole_number(answer):
        return _whole(answer)
    r = int(answer)
    s = _singular_values(image)
    energy = np.cumsum(s**2) / np.sum(s**2)
    right = rank_for_energy(s, fraction)
    if r == right:
        below = f" and r = {right - 1} only {100 * energy[right - 2]:.2f} %" if right >= 2 else ""
        return True, f"r = {right} keeps {100 * energy[right - 1]:.2f} % of the energy{below}"
    if r <= 0:
        return False, "rank 0 keeps no energy at all"
    if r >= len(s):
        return False, f"full rank keeps 100 % trivially; the question asks for the smallest r that keeps {fraction:.0%}"
    amplitude = int(np.argmax(np.cumsum(s) / np.sum(s) >= fraction) + 1)
    if r == amplitude:
        return False, ("you summed sigma_i; energy is the squared Frobenius norm, the sum of sigma_i^2. "
                       "Summing sigma_i over-weights the many small singular values and asks for a far larger r")
    tight = rank_for_energy(s, 1 - (1 - fraction) ** 2)
    if r == tight:
        return False, (f"that r gives a relative error of at most {1 - fraction:.0%}; keeping {fraction:.0%} of the "
                       f"energy only needs a relative error of sqrt(1 - {fraction}) = {np.sqrt(1 - fraction):.1%}")
    if r == right - 1:
        return False, (f"r = {r} keeps {100 * energy[r - 1]:.3f} %, just short of {fraction:.0%}: np.argmax and "
                       "np.searchsorted on the cumulative energy return a 0-based index, so add 1 to get r")
    if r < right:
        return False, f"r = {r} keeps only {100 * energy[r - 1]:.2f} % of the energy, less than {fraction:.0%}"
    return False, f"r = {r} keeps enough, but r = {r - 1} does too: find the smallest such r"


# --- 02.2 -----------------------------------------------------------------------------------------


@exercise("02.2", data={"m": 768, "n": 512}, answer_format="an int r")
def break_even_rank(answer: object, m: int, n: int) -> tuple[bool, str]:
    """the largest rank r at which storing U_r, the r singular values and V_r^T takes fewer numbers than the m x n
    matrix itself"""
    right = (m * n - 1) // (m + n + 1)
    if not is_whole_number(answer):
        value = as_number(answer)
        if value is not None and _close(value, m * n / (m + n + 1), 1e-4):
            return False, (f"r(m + n + 1) < mn holds for r < {m * n / (m + n + 1):.2f}; a rank is a whole number, "
                           "so take the largest integer below it")
        return _whole(answer)
    r = int(answer)
    if r == right:
        return True, (f"r = {right} stores {storage_cost(m, n, right):,} < {m * n:,} numbers; r = {right + 1} "
                      f"would store {storage_cost(m, n, right + 1):,}")
    if r <= 0:
        return False, "r = 0 stores nothing and approximates nothing; the question asks for the largest saving rank"
    if r >= min(m, n):
        return False, (f"at full rank r = {min(m, n)} the factors store r(m + n + 1) = "
                       f"{min(m, n) * (m + n + 1):,} numbers, more than the {m * n:,} of the matrix itself")
    if r == right + 1 and r * (m + n) < m * n:
        return False, (f"r = {r} stores r(m + n + 1) = {r * (m + n + 1):,} >= {m * n:,} numbers. Either you counted "
                       f"r(m + n) (U_r and V_r, but not the r singular values), or you rounded "
                       f"mn / (m + n + 1) = {m * n / (m + n + 1):.2f} up or to the nearest integer instead of down")
    if r > right:
        return False, f"r = {r} stores r(m + n + 1) = {r * (m + n + 1):,} >= {m * n:,} numbers: no saving"
    return False, f"r = {r} saves, but so does r = {r + 1} ({(r + 1) * (m + n + 1):,} < {m * n:,}): find the largest"


# --- 02.3 -----------------------------------------------------------------------------------------


@exercise("02.3", data={"s": _S_PHOTO, "r": 10}, answer_format="a float")
def eckart_young_error(answer: object, s: np.ndarray, r: int) -> tuple[bool, str]:
    """||A - A_r||_F for the photo A, computed from its singular values s alone (without forming A_r)"""
    value = as_number(answer)
    if value is None:
        return False, f"give one number (a float), got {type(answer).__name__}"
    right = float(np.sqrt(np.sum(s[r:] ** 2)))
    if _close(value, right):
        return True, f"sqrt(sigma_{r + 1}^2 + ... + sigma_{len(s)}^2) = {right:.6g}, the Frobenius error of A_{r}"
    pitfalls = [
        (float(s[r]), f"that is sigma_{r + 1}, the error in the spectral norm ||A - A_r||_2. The Frobenius error "
                      "adds up every discarded sigma_i^2"),
        (float(s[r - 1]), f"that is sigma_{r} = s[{r - 1}], the last singular value you keep; the spectral error would "
                          f"be sigma_{r + 1} = s[{r}], and the Frobenius error adds up every discarded sigma_i^2"),
        (float(np.sum(s[r:])), "you summed the discarded sigma_i; the Frobenius error is sqrt(sum of sigma_i^2)"),
        (float(np.sum(s[r:] ** 2)), "that is the squared error ||A - A_r||_F^2: take the square root"),
        (float(np.sqrt(np.sum(s[r - 1:] ** 2))), f"off by one: you discarded s[{r - 1}:], but keeping r = {r} "
                                                 f"singular values discards s[{r}:] (0-based)"),
        (float(np.sqrt(np.sum(s[:r] ** 2))), "that is ||A_r||_F, the part you keep; the error is the part you discard"),
        (right / float(np.linalg.norm(s)), "that is the relative error (divided by ||A||_F); the question asks for "
                                           "the error itself"),
        (float(np.linalg.norm(s)), "that is ||A||_F, the error of r = 0"),
    ]
    if why := named_mistake(value, pitfalls, _close):
        return False, why
    if value == 0:
        return False, f"a rank-{r} approximation of a full-rank photo cannot be exact: the error is not 0"
    if _close(value, right, 2e-3):
        return False, f"{value!r} is close but not equal: it looks rounded. Pass the unrounded value you computed"
    return False, f"{value:.6g} is not the Frobenius error of the rank-{r} truncation"


# --- 02.4 -----------------------------------------------------------------------------------------


_SHEAR = np.array([[1.0, 2.0], [0.0, 1.0]])
_SHEAR.flags.writeable = False


@exercise("02.4", data={"M": _SHEAR}, answer_format="a float")
def largest_stretch(answer: object, M: np.ndarray) -> tuple[bool, str]:
    """the largest length ||M x|| over all unit vectors x (||x|| = 1) for the shear M"""
    value = as_number(answer)
    if value is None:
        return False, f"give one number (a float), got {type(answer).__name__}"
    s = np.linalg.svd(M, compute_uv=False)
    if _close(value, s[0]):
        return True, f"sigma_1 = {s[0]:.6g}: the unit circle goes to an ellipse whose longest semi-axis is sigma_1"
    pitfalls = [
        (float(np.max(np.abs(np.linalg.eigvals(M)))), "that is the largest |eigenvalue|. Eigenvalues give the stretch "
         "only along eigenvectors, which for a non-symmetric matrix are not the most stretched directions"),
        (float(s[0] ** 2), "that is sigma_1^2, the largest eigenvalue of M^T M: take its square root"),
        (float(np.linalg.norm(M)), "that is the Frobenius norm sqrt(sigma_1^2 + sigma_2^2), larger than any stretch"),
        (float(np.max(np.linalg.norm(M, axis=0))), "that is the longest column, ||M e_j||: the stretch of a basis "
         "vector. The most stretched unit vector is v_1, which need not be a basis vector"),
        (float(np.max(np.linalg.norm(M, axis=1))), "that is the longest row; the stretch of x is ||M x||"),
        (float(np.max(np.abs(M))), "that is the largest entry of M, not a stretch"),
        (float(s[-1]), "that is sigma_2, the smallest stretch"),
    ]
    if why := named_mistake(value, pitfalls, _close):
        return False, why
    if _close(value, s[0], 2e-3):
        return False, f"{value!r} is close but not equal: it looks rounded. Pass the unrounded value"
    if value < s[0]:
        return False, f"some unit vector is stretched more than {value:.6g}"
    return False, f"no unit vector is stretched as much as {value:.6g}"


# --- 02.5 -----------------------------------------------------------------------------------------


def _delta_w() -> np.ndarray:
    rng = np.random.default_rng(7)
    dw = rng.integers(-3, 4, size=(12, 3)).astype(float) @ rng.integers(-3, 4, size=(3, 10)).astype(float)
    dw.flags.writeable = False
    return dw


@exercise("02.5", data={"delta_W": _delta_w()}, answer_format="a pair (B, A) of arrays")
def lora_factors(answer: object, delta_W: np.ndarray) -> tuple[bool, str]:
    """split the (d, k) = (12, 10) update delta_W into LoRA's factors: B of shape (d, r) and A of shape (r, k) with B @
    A == delta_W and r as small as possible"""
    d, k = delta_W.shape
    rank = int(np.linalg.matrix_rank(delta_W))
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return False, "give a pair (B, A) of numpy arrays"
    B, A = (np.asarray(x, dtype=float) for x in answer)
    if B.ndim != 2 or A.ndim != 2:
        return False, f"B and A must be matrices, got shapes {B.shape} and {A.shape}"
    if B.shape[0] != d or A.shape[1] != k or B.shape[1] != A.shape[0]:
        hint = ""
        if B.shape[0] == d and A.shape == (k, B.shape[1]):
            hint = ": A has shape (k, r), so you passed V_r; A is V_r^T, shape (r, k)"
        return False, f"B must be (d, r) = ({d}, r) and A (r, {k}) with the same r; got {B.shape} and {A.shape}{hint}"
    r = B.shape[1]
    prod = B @ A
    rel = float(np.linalg.norm(prod - delta_W) / np.linalg.norm(delta_W))
    if rel < 1e-6:  # exact up to rounding, float32 factors included
        if r == rank:
            return True, f"B A = Delta W with r = {r}: {B.size + A.size} numbers instead of {delta_W.size}"
        if r == k and np.allclose(A, np.eye(k)):
            return False, "B = Delta W, A = I is the trivial factorisation: r = k stores more than Delta W itself"
        return False, (f"the product is right but r = {r}, while rank(Delta W) = {rank}: the extra {r - rank} "
                       "columns of B and rows of A multiply zero singular values. Keep only the non-zero ones")
    if r < rank:
        return False, (f"rank(Delta W) = {rank}: no product of a ({d}, {r}) and an ({r}, {k}) matrix can reproduce it "
                       f"(yours is off by {rel:.1%})")
    U, s, Vt = np.linalg.svd(delta_W, full_matrices=False)
    if r == rank:
        if np.allclose(prod, U[:, :r] @ Vt[:r], atol=1e-8 * s[0]):
            return False, ("B A = U_r V_r^T: you dropped the singular values. "
                           "Put Sigma_r into B or A (or half into each)")
        if np.allclose(prod, (U[:, :r] * s[:r] ** 2) @ Vt[:r], atol=1e-8 * s[0] ** 2):
            return False, "B A = U_r Sigma_r^2 V_r^T: Sigma_r went in twice. Split it as Sigma_r^(1/2) Sigma_r^(1/2)"
    return False, f"B A differs from Delta W by {rel:.1%} (relative Frobenius error)"


# --- 02.6 -----------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _denoise_problem() -> tuple[np.ndarray, np.ndarray]:
    """(clean, noisy): a rank-25 signal with geometrically decaying strengths plus N(0, 1) noise."""
    m, n, true_rank = 200, 300, 25
    rng = np.random.default_rng(2024)
    Uc, _ = np.linalg.qr(rng.standard_normal((m, true_rank)))
    Vc, _ = np.linalg.qr(rng.standard_normal((n, true_rank)))
    clean = (Uc * (80 * 0.9 ** np.arange(true_rank))) @ Vc.T
    noisy = clean + rng.standard_normal((m, n))
    clean.flags.writeable = noisy.flags.writeable = False
    return clean, noisy


@lru_cache(maxsize=1)
def _denoising_errors() -> np.ndarray:
    clean, noisy = _denoise_problem()
    return denoising_errors(noisy, clean)


#: An answer within this factor of the best achievable error counts as right.
DENOISE_TOLERANCE = 1.03


@exercise("02.6", data={"noisy": _denoise_problem()[1], "sigma": 1.0}, answer_format="an int r")
def denoise_rank(answer: object, noisy: np.ndarray, sigma: float) -> tuple[bool, str]:
    """noisy = clean + noise, with clean of low rank (not given) and i.i.d. Gaussian noise of standard deviation sigma.
    Choose the truncation rank r whose noisy_r is closest to clean"""
    if not is_whole_number(answer):
        return _whole(answer)
    r = int(answer)
    m, n = noisy.shape
    if not 0 <= r <= min(m, n):
        return False, f"r must be between 0 and min(m, n) = {min(m, n)}"
    errors = _denoising_errors()
    best = int(np.argmin(errors))
    ratio = errors[r] / errors[best]
    ok = np.flatnonzero(errors <= DENOISE_TOLERANCE * errors[best])
    s = _singular_values(noisy)
    edge = (np.sqrt(m) + np.sqrt(n)) * sigma
    if r in ok:
        gap = ("the best possible error" if r == best
               else f"{100 * (ratio - 1):.1f} % above the best possible error (r = {best})")
        return True, (f"the rank-{r} truncation gives {gap}, {errors[-1] / errors[r]:.1f}x closer to the clean matrix "
                      f"than the noisy data. Ranks {ok[0]}..{ok[-1]} are within {100 * (DENOISE_TOLERANCE - 1):.0f} %")
    if r == 0:
        return False, "r = 0 throws the signal away with the noise"
    if r == min(m, n):
        return False, "full rank keeps all the noise: that is the noisy matrix itself"
    worse = f"{100 * (ratio - 1):.0f} % worse than the best r"
    for f in (0.8, 0.9, 0.95, 0.99):
        if r == rank_for_energy(s, f):
            return False, (f"that is the rank for {f:.0%} of the energy. The energy rule counts noise energy as "
                           "signal: here the noise carries most of the energy, so it keeps far too many directions "
                           f"({worse})")
    if r == int(np.sum(s > edge)):
        tau = optimal_hard_threshold((m, n), sigma=sigma)
        return False, (f"that counts the singular values above the noise bulk's edge (sqrt(m) + sqrt(n)) sigma = "
                       f"{edge:.2f}. A direction just above the edge is still mostly noise: Gavish and Donoho's "
                       f"threshold sits higher, at lambda*(beta) sqrt(max(m, n)) sigma = {tau:.2f} ({worse})")
    if r < ok[0]:
        return False, (f"too few: sigma_{r + 1} = {s[r]:.1f} stands well above the edge of the pure-noise spectrum, "
                       f"(sqrt(m) + sqrt(n)) sigma = {edge:.1f}, so dropping that direction loses more signal than "
                       f"noise ({worse})")
    if s[r - 1] <= edge:
        return False, (f"too many: sigma_{r} = {s[r - 1]:.2f} lies inside the pure-noise spectrum, below its edge "
                       f"(sqrt(m) + sqrt(n)) sigma = {edge:.2f}: such directions are mostly noise ({worse})")
    return False, (f"too many: sigma_{r} = {s[r - 1]:.2f} is only just above the edge of the pure-noise spectrum, "
                   f"(sqrt(m) + sqrt(n)) sigma = {edge:.2f}; a direction that weak adds more noise than signal "
                   f"({worse})")

