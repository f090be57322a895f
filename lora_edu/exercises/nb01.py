"""Exercises of notebook 01 (matrix rank).

How to use them, and how they are written: :mod:`lora_edu.exercises`.

* :data:`rank_3_matrix` - build a 5 x 6 matrix with no zero entry and rank exactly 3;
* :data:`factored_params` - numbers stored by a rank-8 LoRA factorisation of GPT-2's ``c_attn``;
* :data:`degrees_of_freedom` - numbers that really pin down a rank-16 update of GPT-2's ``c_fc``;
* :data:`product_rank_range` - smallest and largest rank of a product, from the ranks and shapes;
* :data:`ignored_input` - an input that a LoRA update ``B A`` sends to zero;
* :data:`cr_factorisation` - open task: ``A = C R`` with C made of columns of A.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from lora_edu._checks import check_finite
from lora_edu.exercises._core import as_number, count_verdict, exercise, is_whole_number

__all__ = [
    "rank_3_matrix",
    "factored_params",
    "degrees_of_freedom",
    "product_rank_range",
    "ignored_input",
    "cr_factorisation",
]


def _rank(M: np.ndarray) -> int:
    return int(np.linalg.matrix_rank(M))


def _read_matrix(answer: object, name: str = "answer") -> np.ndarray:
    """``answer`` as a finite 2-D float array; raise ValueError (reported by Exercise.check) if not."""
    try:
        M = np.asarray(answer, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} is not an array of numbers") from exc
    if M.ndim != 2:
        raise ValueError(f"{name} must be 2-D (a matrix), got shape {M.shape}")
    return check_finite(M, name)


def _read_count(answer: object) -> int | None:
    """A whole number (int, or a float such as 24576.0 that is exactly whole), else None."""
    if is_whole_number(answer):
        return int(answer)
    x = as_number(answer)
    if x is not None and np.isfinite(x) and x == round(x):
        return int(round(x))
    return None


# --- 1. a matrix of a given rank with no zero entry ---------------------------------------------


@exercise("01.1", data={"shape": (5, 6), "rank": 3}, answer_format="a 5 x 6 numpy array")
def rank_3_matrix(answer: object, shape: tuple[int, int], rank: int) -> tuple[bool, str]:
    """Build a 5 x 6 matrix with no zero entry whose rank is exactly 3."""
    M = _read_matrix(answer)
    d, k = shape
    if M.shape != (d, k):
        if M.shape == (k, d):
            return False, f"your matrix is {k} x {d}; the task asks for {d} rows and {k} columns (transpose it)"
        return False, f"your matrix has shape {M.shape}; the task asks for {d} x {k}"
    zeros = int(np.count_nonzero(M == 0))
    if zeros:
        return False, (f"{zeros} entries are zero; the task asks for none (zero rows or columns are the "
                       "easy way to lower a rank, and the point is to do it without them)")
    tiny = int(np.count_nonzero(np.abs(M) < 1e-8 * np.abs(M).max()))
    if tiny:
        return False, (f"{tiny} entries are below 1e-8 of the largest: zeros in disguise, which the rank "
                       "tolerance treats as 0. Lower the rank through dependencies between rows instead")
    r = _rank(M)
    if r == rank:
        return True, (f"rank {r} with no zero entry: every row is a combination of {rank} independent rows "
                      f"(e.g. B @ A with B {d} x {rank} and A {rank} x {k}, both without zero products)")
    if r == 1:
        return False, ("rank 1: every row is a multiple of one row (np.ones is the classic). "
                       f"Mix {rank} independent patterns, e.g. B @ A with B {d} x {rank} and A {rank} x {k}")
    if r == min(d, k):
        return False, (f"rank {r}: full rank, as almost every matrix of random numbers is. "
                       f"Build it from {rank} patterns, e.g. B @ A with B {d} x {rank} and A {rank} x {k}")
    if r < rank:
        return False, f"rank {r}: only {r} independent rows; add {rank - r} more independent pattern(s)"
    return False, f"rank {r}: {r - rank} pattern(s) too many; use exactly {rank} (B @ A with inner size {rank})"


# --- 2. parameters of B (d x r) and A (r x k) ---------------------------------------------------


def _count_feedback(n: int, right: int, named: dict[int, str], hint: str) -> tuple[bool, str]:
    return count_verdict(n, right, named[right], named, "a count of numbers is positive" if n <= 0 else hint)


@exercise("01.2", answer_format="an int",
          data={"d": 2304, "k": 768, "r": 8, "layer": "c_attn (768 inputs, 2304 outputs)"})
def factored_params(answer: object, d: int, k: int, r: int, layer: str) -> tuple[bool, str]:
    """How many trainable numbers does a rank-8 factorisation Delta W = B A of GPT-2's c_attn weight store?"""
    n = _read_count(answer)
    if n is None:
        return False, "give a whole number (an int): a count of numbers stored"
    named = {
        r * (d + k): f"B ({d} x {r}) and A ({r} x {k}) hold r(d + k) = {r * (d + k):,} numbers, "
                     f"{100 * r * (d + k) / (d * k):.1f} % of the {d * k:,} in the dense matrix",
        2 * r * k: f"that treats {layer} as {k} x {k} (the study note's slip): it maps {k} inputs to d = {d} "
                   "outputs, so B is d x r",
        2 * r * d: f"that treats {layer} as {d} x {d}: it has k = {k} inputs, so A is r x k",
        r * k: "that is A alone (r x k); B (d x r) is trained too",
        r * d: "that is B alone (d x r); A (r x k) is trained too",
        d * k: "that is the dense matrix (d k numbers); the factors B and A hold fewer",
        r * d * k: "r d k multiplies everything; B has d r entries and A has r k",
        r * (d + k - r): ("that is r(d + k - r), the degrees of freedom of a rank-r matrix; the question asks "
                          "what B and A *store*, r(d + k), including the r^2 redundant numbers"),
        r: "that is the rank r itself, not a count of parameters",
    }
    return _count_feedback(n, r * (d + k), named,
                           "not r(d + k): count the entries of B (d x r) and A (r x k) and add them")


# --- 3. degrees of freedom r(d + k - r) ---------------------------------------------------------


@exercise("01.3", answer_format="an int",
          data={"d": 3072, "k": 768, "r": 16, "layer": "c_fc (768 inputs, 3072 outputs)"})
def degrees_of_freedom(answer: object, d: int, k: int, r: int, layer: str) -> tuple[bool, str]:
    """How many numbers really pin down a rank-16 update of GPT-2's MLP weight c_fc (the dimension of the set of rank-16
    matrices of its shape)?"""
    n = _read_count(answer)
    if n is None:
        return False, "give a whole number (an int): a count of free parameters"
    right = r * (d + k - r)
    named = {
        right: (f"r(d + k - r) = {right:,}: B A stores r(d + k) = {r * (d + k):,} numbers, but (B M)(M^-1 A) "
                f"= B A for every invertible {r} x {r} M, so r^2 = {r * r} of them are redundant"),
        r * (d + k): (f"r(d + k) = {r * (d + k):,} counts every entry of B and A; but B M and M^-1 A give the "
                      f"same update for any invertible r x r M, so r^2 = {r * r} of those numbers are redundant"),
        r * (d + k + r): "right size of correction, wrong sign: the r^2 redundant numbers are subtracted",
        r * (d + k) - r: "M is an r x r matrix: it has r^2 entries, not r",
        r * (d + k) - 2 * r * r: "subtract r^2 once: one invertible r x r matrix M is the whole redundancy",
        d * k: "that is every entry of a dense d x k matrix; a rank-r matrix has far fewer degrees of freedom",
        r * d + r * r: "count both sides: r independent columns (d r numbers) and the r(k - r) coefficients "
                       "that build the other columns",
        r: "that is the rank r itself",
    }
    return _count_feedback(n, right, named,
                           "start from r(d + k) (B and A) and remove what the symmetry B A = (B M)(M^-1 A) adds")


# --- 4. smallest and largest rank of a product ---------------------------------------------------


@exercise("01.4", answer_format="a pair (smallest, largest) of ints",
          data={"A_shape": (6, 7), "rank_A": 3, "B_shape": (7, 9), "rank_B": 5})
def product_rank_range(answer: object, A_shape: tuple[int, int], rank_A: int,
                              B_shape: tuple[int, int], rank_B: int) -> tuple[bool, str]:
    """A is 6 x 7 of rank 3 and B is 7 x 9 of rank 5. What are the smallest and the largest rank that A B can have?"""
    try:
        lo, hi = answer  # type: ignore[misc]
    except (TypeError, ValueError):
        return False, "give a pair (smallest, largest) of ints"
    lo, hi = _read_count(lo), _read_count(hi)
    if lo is None or hi is None:
        return False, "give a pair (smallest, largest) of whole numbers"
    n = A_shape[1]                       # the shared inner size
    null_A = n - rank_A                  # dim null(A), inside R^n
    meet_lo = max(0, rank_B + null_A - n)   # two subspaces of R^n must share at least this much
    meet_hi = min(null_A, rank_B)           # and can share at most the smaller one
    right_lo, right_hi = rank_B - meet_hi, rank_B - meet_lo
    if (lo, hi) == (right_lo, right_hi):
        return True, (f"rank(AB) = rank B - dim(col B meets null A). null A has dimension {n} - {rank_A} = "
                      f"{null_A}; inside R^{n} it shares with the {rank_B}-dimensional col B at least "
                      f"{rank_B} + {null_A} - {n} = {meet_lo} and at most {meet_hi} dimensions, so "
                      f"{right_lo} <= rank(AB) <= {right_hi}, and both ends occur")
    if (lo, hi) == (right_hi, right_lo):
        return False, "the pair is (smallest, largest): you swapped them"
    problems = []
    if hi != right_hi:
        if hi == rank_A + rank_B:
            problems.append("largest: ranks do not add under products (that is the sum rule)")
        elif hi == max(rank_A, rank_B):
            problems.append("largest: rank(AB) <= rank A too, since every column of AB is a combination of "
                            "the columns of A")
        elif hi == rank_A * rank_B:
            problems.append("largest: ranks do not multiply; rank(AB) <= min(rank A, rank B)")
        elif hi > right_hi:
            problems.append(f"largest: rank(AB) <= min(rank A, rank B) = {right_hi}")
        else:
            problems.append(f"largest: it can reach min(rank A, rank B) = {right_hi}; choose B so that col B "
                            "meets null A as little as the dimensions allow")
    if lo != right_lo:
        if lo == 0:
            problems.append(f"smallest: AB = 0 needs all of col B (dimension {rank_B}) inside null A "
                            f"(dimension {n} - {rank_A} = {null_A}): it does not fit")
        elif lo == right_hi and hi == right_hi:
            problems.append("smallest: the rank of AB is not fixed by rank A and rank B; it depends on how "
                            "col B meets null A")
        elif lo < right_lo:
            problems.append(f"smallest: col B can lose at most dim null A = {null_A} directions")
        else:
            problems.append(f"smallest: null A (dimension {null_A}) can lie inside col B, so AB can lose "
                            f"{min(null_A, rank_B)} of col B's {rank_B} directions")
    if lo > hi:
        problems.append("smallest is larger than largest")
    return False, "; ".join(problems)


# --- 5. an input that the update B A ignores ----------------------------------------------------

_B5 = np.array([[1, 2], [0, 1], [3, -1], [2, 2], [-1, 4], [1, 1]])
_A5 = np.array([[1, 0, 2, -1, 3], [0, 1, 1, 2, -1]])


@exercise("01.5", data={"B": _B5, "A": _A5}, answer_format="a vector of 5 numbers (numpy array or list)")
def ignored_input(answer: object, B: np.ndarray, A: np.ndarray) -> tuple[bool, str]:
    """The LoRA update Delta W = B A is given by B (6 x 2) and A (2 x 5) below. Find a non-zero input x that it ignores:
    Delta W x = 0."""
    dW = B @ A
    d, k = dW.shape
    try:
        x = np.asarray(answer, dtype=float)
    except (TypeError, ValueError):
        return False, f"give a vector of {k} numbers"
    if x.ndim == 2 and 1 in x.shape:
        x = x.ravel()
    if x.ndim != 1:
        return False, f"give a vector of {k} numbers, got shape {x.shape}"
    if not np.all(np.isfinite(x)):
        return False, "the vector contains NaN or inf"
    if x.shape[0] == d and d != k:
        return False, (f"that vector has d = {d} entries: it lives on the output side (the left null space "
                       f"is there). Inputs of Delta W have k = {k} entries")
    if x.shape[0] != k:
        return False, f"inputs of Delta W = B A have k = {k} entries, got {x.shape[0]}"
    scale = np.linalg.norm(x)
    if scale == 0:
        return False, "x = 0 is sent to 0 by every matrix; the task asks for a non-zero x"
    residual = np.linalg.norm(dW @ x) / (np.linalg.norm(dW, 2) * scale)
    if residual < 1e-9:
        null_dim = k - _rank(dW)
        return True, (f"Delta W x = 0: x lies in the null space of A, which has dimension k - r = {null_dim}. "
                      f"For these inputs W' x = W_0 x: the update leaves {null_dim} input directions alone")
    row_space = np.linalg.lstsq(A.T, x, rcond=None)
    if np.linalg.norm(A.T @ row_space[0] - x) < 1e-9 * scale:
        return False, ("x is a combination of the rows of A: it lies in the row space, the directions the "
                       "update acts on. The ignored inputs are orthogonal to every row (A x = 0)")
    return False, (f"Delta W x is not zero (relative size {residual:.2g}); solve A x = 0: with A in reduced "
                   "form, pick the free entries of x and solve for the others")


# --- 6. open task: A = C R ----------------------------------------------------------------------

_a6 = np.array([1, 2, -1, 3])
_b6 = np.array([2, 1, 3, -1])
_A6 = np.stack([_a6, 2 * _a6, _b6, _a6 + _b6, 3 * _a6 - _b6], axis=1)   # 4 x 5, rank 2, no zero entry


def _column_indices(C: np.ndarray, A: np.ndarray) -> list[int | None]:
    """For each column of C, the index of an equal column of A (None where there is none)."""
    out: list[int | None] = []
    for c in C.T:
        hits = [j for j in range(A.shape[1]) if np.allclose(c, A[:, j], rtol=0, atol=1e-9 * max(1.0, np.abs(A).max()))]
        out.append(hits[0] if hits else None)
    return out


@exercise("01.6", data={"A": _A6}, answer_format="a pair (C, R) of numpy arrays")
def cr_factorisation(answer: object, A: np.ndarray) -> tuple[bool, str]:
    """Open task: write A (below, 4 x 5) as A = C R, where C holds independent columns of A itself and R is r x k."""
    try:
        C, R = answer  # type: ignore[misc]
    except (TypeError, ValueError):
        return False, "give a pair (C, R) of matrices"
    C, R = _read_matrix(C, "C"), _read_matrix(R, "R")
    d, k = A.shape
    r = _rank(A)
    if C.shape[1] == 0:
        return False, f"C has no columns; A has rank {r}, so C keeps {r} independent columns of A"
    if C.shape[0] != d:
        if C.shape[1] == d:
            return False, f"C has shape {C.shape}; its columns are columns of A, so it has {d} rows (transpose it)"
        return False, f"C must have d = {d} rows (its columns are columns of A), got shape {C.shape}"
    idx = _column_indices(C, A)
    if None in idx:
        i = idx.index(None)
        return False, (f"column {i} of C is not a column of A. C R takes A's own columns; an orthonormal "
                       "basis (e.g. from the SVD) gives a valid rank factorisation, but not C R")
    if _rank(C) < C.shape[1]:
        dup = next(((i, j) for i, j in combinations(range(len(idx)), 2) if _rank(C[:, [i, j]]) < 2), None)
        which = f" (columns {idx[dup[0]]} and {idx[dup[1]]} of A are parallel)" if dup else ""
        if C.shape[1] == k:
            return False, (f"C = A (and R = I) does give A = C R, but C's {k} columns are not independent: A has "
                           f"rank {r}, so C should keep {r} independent columns{which}")
        return False, (f"the {C.shape[1]} columns of C are not independent{which}: C must be a basis of the "
                       "column space. Scan left to right and skip a column that is a combination of those kept")
    if C.shape[1] < r:
        return False, (f"C has {C.shape[1]} independent column(s) but A has rank {r}: C R would have rank "
                       f"<= {C.shape[1]}. Keep {r} independent columns")
    if R.shape != (r, k):
        if R.shape == (k, r):
            return False, f"R has shape {R.shape}; it should be r x k = {r} x {k} (transpose it)"
        return False, f"R should be r x k = {r} x {k} (one column of coefficients per column of A), got {R.shape}"
    err = float(np.abs(C @ R - A).max())
    if err > 1e-8 * max(1.0, float(np.abs(A).max())):
        j = int(np.abs(C @ R - A).max(axis=0).argmax())
        return False, (f"C R differs from A (largest error {err:.3g}, in column {j}): column j of R holds the "
                       "coefficients that build column j of A from the columns of C")
    valid = [p for p in combinations(range(k), r) if _rank(A[:, list(p)]) == r]
    return True, (f"A = C R with C = columns {idx} of A and R (r x k = {r} x {k}). {len(valid)} of the "
                  f"{len(list(combinations(range(k), r)))} choices of {r} columns are valid: try another, "
                  "and compare the two R's")

