"""Self-checks for the exercises at the end of each notebook.

Each ``check_*`` function takes the learner's answer, prints whether it is right and *why*
(including the most common wrong answers, which are the pitfalls the course teaches), and
returns a :class:`Feedback` that is truthy when the answer is right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lora_edu._checks import as_matrix


@dataclass
class Feedback:
    correct: bool
    message: str

    def __bool__(self) -> bool:
        return self.correct

    def __repr__(self) -> str:
        return f"{'RIGHT' if self.correct else 'NOT YET'}: {self.message}"


def _report(correct: bool, message: str) -> Feedback:
    fb = Feedback(correct, message)
    print(repr(fb))
    return fb


def _as_number(answer: object) -> float | None:
    """``float(answer)``, or None when the answer is not a number (the caller reports that)."""
    try:
        return float(answer)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _is_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


# ----------------------------------------------------------------------------- notebook 01


def check_rank_2_matrix(M: object) -> Feedback:
    """Exercise 01.1: build a 4 x 5 matrix of rank exactly 2 with no zero entry."""
    try:
        M = as_matrix(M, "M")
    except (TypeError, ValueError) as exc:
        return _report(False, f"that is not a finite 2-D array ({exc})")
    if M.shape != (4, 5):
        return _report(False, f"the shape must be (4, 5), yours is {M.shape}")
    if np.any(M == 0):
        return _report(False, "no entry may be zero (zero rows or columns make it too easy)")
    r = int(np.linalg.matrix_rank(M))
    if r != 2:
        return _report(False, f"its rank is {r}, not 2. Hint: B (4 x 2) @ A (2 x 5) has rank <= 2")
    return _report(True, "rank 2: every column is a combination of the same two column vectors")


def check_factored_params(d: int, k: int, r: int, answer: object) -> Feedback:
    """Exercise 01.2: trainable parameters of a rank-r factorisation B (d x r) A (r x k)."""
    if not _is_int(answer):
        return _report(False, f"give a whole number, got {answer!r}")
    right = r * (d + k)
    if answer == right:
        return _report(True, f"r * (d + k) = {r} * ({d} + {k}) = {right:,}")
    if answer == r * d or answer == r * k:
        return _report(False, "you counted only one of the two factors; B has d*r and A has r*k entries")
    if answer == d * k:
        return _report(False, "that is the dense matrix; the factorisation has r * (d + k)")
    if answer == 2 * r * max(d, k) or answer == 2 * r * min(d, k):
        return _report(False, "that treats the matrix as square; d and k differ here")
    return _report(False, f"{answer:,} is not r * (d + k) for d={d}, k={k}, r={r}")


def check_product_rank_bound(rank_A: int, rank_B: int, answer: object) -> Feedback:
    """Exercise 01.3: the largest possible rank of A @ B given rank(A) and rank(B)."""
    right = min(rank_A, rank_B)
    if answer == right:
        return _report(True, f"rank(AB) <= min(rank A, rank B) = {right}: AB's columns are combinations of A's")
    if answer == rank_A + rank_B:
        return _report(False, "ranks add for sums (rank(A + B) <= rank A + rank B), not for products")
    if answer == rank_A * rank_B:
        return _report(False, "a product cannot have more independent columns than either factor")
    return _report(False, f"{answer!r} is not the bound; think about the column space of AB")


# ----------------------------------------------------------------------------- notebook 02


def check_rank_for_energy(image: np.ndarray, fraction: float, answer: object) -> Feedback:
    """Exercise 02.1: smallest k keeping ``fraction`` of the image's energy (sum of sigma^2)."""
    from lora_edu.svd import rank_for_energy

    s = np.linalg.svd(as_matrix(image, "image"), compute_uv=False)
    right = rank_for_energy(s, fraction)
    if not _is_int(answer):
        return _report(False, f"give a whole number of singular values, got {answer!r}")
    if answer == right:
        return _report(True, f"k = {right} keeps {100 * np.sum(s[:right]**2) / np.sum(s**2):.3f} %")
    amp = int(np.argmax(np.cumsum(s) / s.sum() >= fraction) + 1)
    if answer == amp:
        return _report(False, "you summed sigma_i, not sigma_i^2: energy is the squared Frobenius norm")
    if answer == right - 1:
        return _report(False, f"k = {answer} keeps a little less than {fraction:.0%}; 'reach' means >=")
    return _report(False, f"k = {answer} is not the smallest rank reaching {fraction:.0%} of the energy")


def check_break_even_rank(m: int, n: int, answer: object) -> Feedback:
    """Exercise 02.2: the largest k at which a rank-k SVD stores fewer numbers than the matrix."""
    if not _is_int(answer):
        return _report(False, f"give a whole number, got {answer!r}")
    right = (m * n - 1) // (m + n + 1)
    if answer == right:
        return _report(True, f"k(m + n + 1) < mn holds up to k = {right} ({right * (m + n + 1):,} < {m * n:,})")
    if answer == (m * n - 1) // (m + n):
        return _report(False, "you forgot the k singular values themselves: the cost is k(m + n + 1)")
    if answer == min(m, n):
        return _report(False, "at full rank the factors store far more than the matrix itself")
    return _report(False, f"k = {answer} is not where k(m + n + 1) stops being smaller than m n")


def check_eckart_young_error(s: np.ndarray, k: int, answer: object) -> Feedback:
    """Exercise 02.3: the Frobenius error of the best rank-k approximation, from the spectrum."""
    s = np.asarray(s, dtype=float)
    right = float(np.sqrt(np.sum(s[k:] ** 2)))
    val = _as_number(answer)
    if val is None:
        return _report(False, f"give a number, got {answer!r}")
    if np.isclose(val, right, rtol=1e-9, atol=1e-12):
        return _report(True, f"sqrt(sum of the discarded sigma_i^2) = {right:.6g}")
    if np.isclose(val, float(np.sum(s[k:])), rtol=1e-9):
        return _report(False, "you summed the discarded sigma_i; the Frobenius error is sqrt(sum sigma_i^2)")
    if k < len(s) and np.isclose(val, float(s[k]), rtol=1e-9):
        return _report(False, "sigma_{k+1} is the error in the spectral (2-)norm, not the Frobenius norm")
    return _report(False, f"{val:.6g} is not the rank-{k} Frobenius error")


# ----------------------------------------------------------------------------- notebook 03


def check_linear_ae_optimum(X: np.ndarray, k: int, answer: object) -> Feedback:
    """Exercise 03.1: the lowest MSE (per entry) a rank-k linear autoencoder can reach on X."""
    X = as_matrix(X, "X")
    s = np.linalg.svd(X, compute_uv=False)
    right = float(np.sum(s[k:] ** 2) / X.size)
    val = _as_number(answer)
    if val is None:
        return _report(False, f"give a number, got {answer!r}")
    if np.isclose(val, right, rtol=1e-6):
        return _report(True, f"sum of the discarded sigma_i^2 / (n d) = {right:.6g}, the rank-{k} truncated SVD's MSE")
    if np.isclose(val, right * X.size, rtol=1e-6):
        return _report(False, "that is the summed squared error; MSE divides by the n * d entries")
    if np.isclose(val, np.sqrt(right * X.size), rtol=1e-6):
        return _report(False, "that is the Frobenius norm of the error; square it and divide by n * d")
    return _report(False, f"{val:.6g} is not the rank-{k} optimum; use the singular values of X")


def check_linear_ae_params(d: int, k: int, answer: object) -> Feedback:
    """Exercise 03.2: parameters of a bias-free linear autoencoder d -> k -> d."""
    if not _is_int(answer):
        return _report(False, f"give a whole number, got {answer!r}")
    right = 2 * d * k
    if answer == right:
        return _report(True, f"encoder k*d + decoder d*k = 2 * {d} * {k} = {right:,}")
    if answer == d * k:
        return _report(False, "you counted one matrix; the encoder (k x d) and decoder (d x k) both count")
    if answer == d * d:
        return _report(False, "that is the d x d end-to-end map; the point of the bottleneck is to store 2dk < d^2")
    return _report(False, f"{answer:,} is not 2 d k for d={d}, k={k}")


def check_orthonormalising_matrix(W_dec: np.ndarray, M: object) -> Feedback:
    """Exercise 03.3: an invertible M (k x k) with W_dec @ M having orthonormal columns."""
    W = as_matrix(W_dec, "W_dec")
    try:
        M = as_matrix(M, "M")
    except (TypeError, ValueError) as exc:
        return _report(False, f"M must be a finite k x k array ({exc})")
    k = W.shape[1]
    if M.shape != (k, k):
        return _report(False, f"M must be {k} x {k}, got {M.shape}")
    Q = W @ M
    err = float(np.abs(Q.T @ Q - np.eye(k)).max())
    if err < 1e-6:
        return _report(True, "W_dec M has orthonormal columns and (being invertible) the same column space")
    if np.allclose(M, np.eye(k)):
        return _report(False, f"the identity leaves W_dec as it is; its Gram matrix is off by {err:.2f}")
    hint = "try M = inv(R) from the QR factorisation W_dec = Q R"
    return _report(False, f"(W_dec M)^T (W_dec M) differs from the identity by up to {err:.3g}; {hint}")


# ----------------------------------------------------------------------------- notebook 04


def check_lora_params(shapes: list[tuple[int, int]], r: int, answer: object) -> Feedback:
    """Exercise 04.1: trainable LoRA parameters for layers of the given (out, in) shapes at rank r."""
    if not _is_int(answer):
        return _report(False, f"give a whole number, got {answer!r}")
    right = sum(r * (o + i) for o, i in shapes)
    if answer == right:
        return _report(True, f"sum over layers of r (d_out + d_in) = {right:,}")
    if answer in (sum(r * i for _, i in shapes), sum(r * o for o, _ in shapes)):
        return _report(False, "you counted only one of A (r x d_in) and B (d_out x r), as note 001's '32,768' does")
    if len(shapes) > 1 and answer in {r * (o + i) for o, i in shapes}:
        return _report(False, "that is one layer; add every targeted layer in every block")
    if answer == sum(o * i for o, i in shapes):
        return _report(False, "that is the frozen weights' size, not the adapter's")
    return _report(False, f"{answer:,} is not sum of r (d_out + d_in) over the {len(shapes)} layers")


def check_scaling(alpha: float, r: int, use_rslora: bool, answer: object) -> Feedback:
    """Exercise 04.2: the factor LoRA multiplies B A by."""
    import math

    right = alpha / (math.sqrt(r) if use_rslora else r)
    val = _as_number(answer)
    if val is None:
        return _report(False, f"give a number, got {answer!r}")
    if math.isclose(val, right, rel_tol=1e-9):
        return _report(True, f"{'alpha / sqrt(r)' if use_rslora else 'alpha / r'} = {right:g}")
    if math.isclose(val, alpha, rel_tol=1e-9):
        return _report(False, "alpha alone is not the factor; it is divided by r (or sqrt(r) with rsLoRA)")
    if use_rslora and math.isclose(val, alpha / r, rel_tol=1e-9):
        return _report(False, "that is standard LoRA's alpha / r; rsLoRA divides by sqrt(r)")
    if not use_rslora and math.isclose(val, alpha / math.sqrt(r), rel_tol=1e-9):
        return _report(False, "that is rsLoRA's alpha / sqrt(r); standard LoRA divides by r")
    return _report(False, f"{val:g} is not the scaling for alpha={alpha:g}, r={r}")


def check_merged_weight(W0, A, B, alpha: float, r: int, answer: object) -> Feedback:
    """Exercise 04.3: the merged nn.Linear weight W0 + (alpha / r) B A, shape (out, in)."""
    import torch

    W0, A, B = (torch.as_tensor(t, dtype=torch.float64) for t in (W0, A, B))
    right = W0 + (alpha / r) * (B @ A)
    try:
        ans = torch.as_tensor(answer, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return _report(False, f"give a tensor of shape {tuple(right.shape)}, got {type(answer).__name__}")
    if ans.shape != right.shape:
        if ans.shape == right.T.shape:
            return _report(False, "transposed: nn.Linear stores (out, in); only GPT-2's Conv1D stores (in, out)")
        return _report(False, f"shape {tuple(ans.shape)}; the merged weight has W0's shape {tuple(right.shape)}")
    if torch.allclose(ans, right, atol=1e-6):
        return _report(True, "W0 + (alpha / r) B A: the same function as the unmerged layer, with no extra matmuls")
    if torch.allclose(ans, W0 + B @ A, atol=1e-6):
        return _report(False, "you forgot the scaling alpha / r")
    if torch.allclose(ans, W0, atol=1e-6):
        return _report(False, "that is W0 unchanged; add the update")
    return _report(False, "not W0 + (alpha / r) B A")


# ----------------------------------------------------------------------------- notebook 05


def check_float_bits(x: float, dtype: str, answer: object) -> Feedback:
    """Exercise 05.1: the (sign, exponent, mantissa) bit strings of x in dtype."""
    from lora_edu.quant import float_bits

    right = float_bits(x, dtype)
    if not (isinstance(answer, (tuple, list)) and len(answer) == 3 and all(isinstance(a, str) for a in answer)):
        return _report(False, "give a tuple of three bit strings (sign, exponent, mantissa)")
    if tuple(answer) == right:
        return _report(True, f"{x} in {dtype}: sign {right[0]}, exponent {right[1]}, mantissa {right[2]}")
    if [len(a) for a in answer] != [len(b) for b in right]:
        return _report(False, f"{dtype} has {len(right[1])} exponent and {len(right[2])} mantissa bits")
    if answer[1] != right[1]:
        bias = 2 ** (len(right[1]) - 1) - 1
        return _report(False, f"the exponent is stored with a bias of {bias}: write e + {bias} in binary")
    return _report(False, "the mantissa stores the bits after the leading 1 of the binary fraction")


def check_nf4_bytes(n_params: int, blocksize: int, double_quant: bool, answer: object) -> Feedback:
    """Exercise 05.2: bytes to store n_params weights in NF4 with their block constants."""
    from lora_edu.quant import overhead_bits

    val = _as_number(answer)
    if val is None:
        return _report(False, f"give a number of bytes, got {answer!r}")
    right = n_params * (4 + overhead_bits(blocksize, double_quant)) / 8
    if math.isclose(val, right, rel_tol=1e-3):
        bits = 4 + overhead_bits(blocksize, double_quant)
        return _report(True, f"{n_params:,} x {bits:.3f} bits / 8 = {right:,.0f} bytes")
    if math.isclose(val, n_params * 4 / 8, rel_tol=1e-3):
        return _report(False, "you left out the block constants (absmax), which add bits per parameter")
    if math.isclose(val, n_params * 4, rel_tol=1e-3):
        return _report(False, "4 bits is half a byte, not 4 bytes")
    return _report(False, f"{val:,.0f} is not n_params x (4 + overhead) / 8")


def check_absmax_int8(x, answer: object) -> Feedback:
    """Exercise 05.3: the int8 codes of absmax quantization of x (one scale for the whole vector)."""
    import torch

    from lora_edu.quant import absmax_quantize

    right, scale = absmax_quantize(torch.as_tensor(x, dtype=torch.float32))
    try:
        ans = torch.as_tensor(answer).to(torch.int64)
    except (TypeError, ValueError, RuntimeError):
        return _report(False, "give a list or tensor of integers")
    if ans.shape != right.shape:
        return _report(False, f"one code per value: expected shape {tuple(right.shape)}")
    if torch.equal(ans, right.to(torch.int64)):
        return _report(True, f"round(x / scale) with scale = absmax / 127 = {float(scale):.6g}")
    if torch.equal(ans, torch.trunc(torch.as_tensor(x, dtype=torch.float32) / scale).to(torch.int64)):
        return _report(False, "you truncated; quantization rounds to the nearest integer")
    return _report(False, "not round(x * 127 / max|x|)")


# ----------------------------------------------------------------------------- notebook 06


def check_adam_state_bytes(trainable: int, answer: object) -> Feedback:
    """Exercise 06.2: bytes of AdamW's state for ``trainable`` fp32 parameters."""
    if not _is_int(answer):
        return _report(False, f"give a whole number of bytes, got {answer!r}")
    right = 8 * trainable
    if answer == right:
        return _report(True, f"two fp32 moments (m and v) per trainable parameter: 8 x {trainable:,} = {right:,} bytes")
    if answer == 4 * trainable:
        return _report(False, "Adam keeps two moment estimates per parameter, not one")
    if answer == 16 * trainable:
        return _report(False, "that adds weights and gradients; the question is the optimizer state alone")
    return _report(False, f"{answer:,} is not 8 bytes per trainable parameter")


def check_underfitting_fix(answer: object) -> Feedback:
    """Exercise 06.3: which change helps an underfitting adapter."""
    choices = {"lower r", "raise r", "more dropout", "fewer modules"}
    if answer not in choices:
        return _report(False, f"answer with one of {sorted(choices)}")
    if answer == "raise r":
        return _report(True, "more rank (or more target modules, or more steps) adds capacity; study note 001's rule")
    return _report(False, f"'{answer}' reduces capacity or adds regularisation: that is the fix for overfitting")
