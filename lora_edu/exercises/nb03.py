"""Exercises for notebook 03 (linear autoencoders, PCA and the SVD).

Each exercise holds its own problem: data matrices are generated here from a fixed seed (numpy's
generators give the same numbers on every platform), so the learner passes only the answer. The
checkers recognise the mistakes the notebook warns about (no centring, a sum or a Frobenius norm
instead of a mean, n instead of n - 1, U instead of V, R instead of R^-1, ...) and name them.
How to use them, and how they are written: :mod:`lora_edu.exercises`.

The exercises in the notebook's order:

* :data:`optimum_mse`          03.1  lowest training MSE of a rank-r linear autoencoder, in closed form
* :data:`explained_variance`   03.2  PCA's explained variances from the singular values
* :data:`pca_encoder`          03.3  an optimal encoder matrix (rows as examples: V, not U)
* :data:`matched_budget`       03.4  parameters of a non-linear autoencoder, and the linear code of the same budget
* :data:`orthonormal_decoder`  03.5  undo the invertible-M symmetry: an orthonormal basis of the decoder's span
* :data:`uncentred`            03.6  open task: train without centring; the anchor is the uncentred optimum
"""

from __future__ import annotations

import math

import numpy as np

from lora_edu._checks import check_finite
from lora_edu.exercises._core import as_number, exercise, is_whole_number, named_mistake

__all__ = [
    "optimum_mse",
    "explained_variance",
    "pca_encoder",
    "matched_budget",
    "orthonormal_decoder",
    "uncentred",
]


# --- problem data --------------------------------------------------------------------------------


def _data_matrix(seed: int, n: int, d: int) -> np.ndarray:
    """n examples (rows) of d features with a decaying spectrum and a clearly non-zero mean."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scales = 3.0 * 0.7 ** np.arange(d)                  # distinct, decaying standard deviations
    X = rng.standard_normal((n, d)) * scales @ Q.T
    return np.round(X + rng.uniform(1.0, 4.0, size=d), 3)


def _svals_centred(X: np.ndarray) -> np.ndarray:
    return np.linalg.svd(X - X.mean(axis=0), compute_uv=False)


def _number(answer: object) -> float | None:
    """A real number from a Python/numpy number or a one-element array/tensor; None otherwise."""
    if hasattr(answer, "shape") and hasattr(answer, "tolist") and not isinstance(answer, np.generic):
        values = np.asarray(answer.tolist() if not isinstance(answer, np.ndarray) else answer)
        if values.size != 1:
            return None
        answer = values.reshape(-1)[0].item()
    return as_number(answer)


def _matrix(answer: object, shape: tuple[int, ...], name: str) -> np.ndarray:
    """``answer`` as a float64 array of the given shape; ValueError with the expected shape otherwise."""
    if hasattr(answer, "detach"):                        # a torch tensor
        answer = answer.detach().cpu().numpy()
    arr = np.asarray(answer, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return check_finite(arr, name)


def _close(a: float, b: float, rtol: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=rtol, abs_tol=1e-12)


# --- 03.1 the optimum in closed form -----------------------------------------------------------


@exercise("03.1", data={"X": _data_matrix(301, 60, 10), "r": 3}, answer_format="a float")
def optimum_mse(answer, X, r):
    """Without training anything: what is the lowest training MSE (mean over all n*d entries) that a bias-free linear
    autoencoder with code size r can reach on X? Like every linear autoencoder in the notebook, it is trained on the
    centred data (X minus its column means)."""
    val = _number(answer)
    if val is None:
        return False, f"give one number (a float), got {answer!r}"
    n, d = X.shape
    s = _svals_centred(X)
    right = float(np.sum(s[r:] ** 2) / (n * d))
    if _close(val, right):
        return True, (f"sum of the discarded sigma_i^2 of the centred X, divided by the n*d = {n * d} entries: "
                      f"{right:.6g} (Eckart-Young; a linear autoencoder can reach it)")
    s_raw = np.linalg.svd(X, compute_uv=False)
    pitfalls = [
        (np.sum(s_raw[r:] ** 2) / (n * d),
         "you used the singular values of X itself: the autoencoder has no bias, so it sees the centred X "
         "(subtract the column means first)"),
        (right * n * d, "that is the summed squared error; the MSE divides it by the n*d entries"),
        (math.sqrt(right * n * d), "that is the Frobenius norm of the error; square it and divide by n*d"),
        (right * d, "you divided by n only (the error per example); the MSE averages over all n*d entries"),
        (right * n, "you divided by d only; the MSE averages over all n*d entries"),
        (np.sum(s[r:] ** 2) / ((n - 1) * d),
         "you divided by (n-1)*d, the variance convention; the MSE is a plain mean over the n*d entries"),
        (np.sum(s[:r] ** 2) / (n * d), "that is the energy the top r directions keep; the error is what they discard"),
        (np.sum(s[r:]) / (n * d), "you summed the singular values; the squared error sums sigma_i^2"),
        (s[r] ** 2 / (n * d), "that is sigma_{r+1}^2 alone; the error sums every discarded sigma_i^2"),
        (np.sum(s[r + 1:] ** 2) / (n * d), "off by one: you discarded one direction too few (keep the top r)"),
        (np.sum(s[r - 1:] ** 2) / (n * d), "off by one: you discarded the r-th direction too (keep the top r)"),
        (s[r] ** 2, "that is sigma_{r+1}^2, the squared spectral-norm error, not the mean squared error"),
        (np.sum(s**2) / (n * d),
         "that is the error of reconstructing nothing (r = 0), the mean of X_c^2; the code keeps the top r "
         "directions, so subtract what they carry"),
        (np.sum(s[r:] ** 2) / np.sum(s**2),
         "that is the *fraction* of the energy the code discards; the MSE is that energy divided by the n*d entries"),
    ]
    if why := named_mistake(val, pitfalls, lambda a, b: _close(a, float(b))):
        return False, why
    if val == 0:
        return False, "0 would need r >= rank of the centred X; a rank-r map loses the rest of the energy"
    if _close(val, right, rtol=1e-3):
        return False, ("close (within 0.1 %), but not equal: give the full-precision value (assign the variable "
                       "you computed), not a rounded copy of a printed number")
    return False, f"{val:.6g} is not the rank-{r} optimum; use the singular values of the centred X"


# --- 03.2 explained variance from the SVD ------------------------------------------------------


@exercise("03.2", data={"X": _data_matrix(302, 80, 8), "r": 4}, answer_format="a 1-D array of r floats")
def explained_variance(answer, X, r):
    """Compute, from the singular values, the explained variance of each of the top r principal components of X (what
    sklearn's PCA(r).fit(X).explained_variance_ reports), largest first."""
    n = X.shape[0]
    try:
        got = _matrix(answer, (r,), "answer")
    except ValueError:
        return False, f"give the {r} explained variances as a 1-D array of shape ({r},), got shape {np.shape(answer)}"
    s = _svals_centred(X)
    right = s[:r] ** 2 / (n - 1)
    if np.allclose(got, right, rtol=1e-6, atol=0):
        return True, ("sigma_i^2 / (n - 1): the eigenvalues of the sample covariance X_c^T X_c / (n - 1), "
                      "as sklearn reports")
    s_raw = np.linalg.svd(X, compute_uv=False)
    pitfalls = [
        (s[:r] ** 2 / n, "you divided by n; the sample covariance (and sklearn's PCA) divides by n - 1"),
        (s[:r] / (n - 1), "you used sigma_i; the variance along a direction is sigma_i^2 / (n - 1)"),
        (s[:r] ** 2, "these are sigma_i^2, the energy; divide by n - 1 for the variance"),
        (s[:r] ** 2 / np.sum(s**2),
         "that is the explained variance *ratio* (a fraction); the task asks for the variance"),
        (s_raw[:r] ** 2 / (n - 1), "you took the SVD of X itself; PCA centres the data first"),
        (s[:r] ** 2 / (n - 1) / X.shape[1],
         "you divided by d as well; the variance along a direction is sigma_i^2 / (n - 1)"),
        (s[::-1][:r] ** 2 / (n - 1), "those are the smallest components; the top r come first"),
    ]
    feature_var = X.var(axis=0, ddof=1)
    pitfalls += [
        (feature_var[:r], "those are the variances of the first r *features* (columns of X); PCA's variances "
                          "are along the principal directions v_i, which mix the features"),
        (np.sort(feature_var)[::-1][:r], "those are the r largest variances of single *features* (columns of X); "
                                         "PCA's directions v_i mix the features and carry more variance"),
    ]
    if why := named_mistake(got, pitfalls, lambda a, b: np.allclose(a, b, rtol=1e-6, atol=0)):
        return False, why
    if np.allclose(np.sort(got)[::-1], right, rtol=1e-6):
        return False, "the right numbers in the wrong order: list them largest first, as sigma_1 >= sigma_2 >= ..."
    if np.allclose(got, right, rtol=1e-3, atol=0):
        return False, ("close (within 0.1 %), but not equal: give the full-precision values (assign the array you "
                       "computed), not rounded copies of printed numbers")
    return False, "not sigma_i^2 / (n - 1) of the centred X for the top r components"


# --- 03.3 an optimal encoder: V, not U ------------------------------------------------------------


def _angles_deg(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Principal angles between the column spaces of A and B (both full column rank)."""
    Qa, _ = np.linalg.qr(A)
    Qb, _ = np.linalg.qr(B)
    cos = np.clip(np.linalg.svd(Qa.T @ Qb, compute_uv=False), -1.0, 1.0)
    return np.degrees(np.arccos(cos))


@exercise("03.3", data={"X": _data_matrix(303, 12, 12), "r": 3}, answer_format="an (r, d) array")
def pca_encoder(answer, X, r):
    """X holds one example per row (n = d here, so shapes will not catch a mix-up). Give an encoder matrix W_enc (r x d)
    that a bias-free linear autoencoder with code size r could have at the optimum (on the centred X). Any of the
    equivalent ones is accepted."""
    n, d = X.shape
    try:
        E = _matrix(answer, (r, d), "W_enc")
    except ValueError:
        if np.shape(answer) == (d, r):
            return False, (f"W_enc maps a d-vector to r numbers, so it is r x d = {(r, d)}; "
                           f"transpose your ({d}, {r}) matrix")
        raise
    if np.linalg.matrix_rank(E, tol=1e-8 * max(1.0, np.abs(E).max())) < r:
        return False, f"W_enc has rank < {r}: some code units are copies or mixtures of others (or zero)"
    Xc = X - X.mean(axis=0)
    U, s, Vt = np.linalg.svd(Xc)
    if _angles_deg(E.T, Vt[:r].T).max() < 1e-3:
        return True, ("its rows span the top-r principal directions (V_r^T up to an invertible r x r mix), "
                      "so W_dec = V_r M gives the optimum")
    Ur = U[:, :r]
    if _angles_deg(E.T, Ur).max() < 1e-3:
        return False, ("that is U_r^T. With examples as rows (X = U S V^T), U has one entry per *example*: its "
                       "columns are the codes of the training examples, scaled. The directions in feature space "
                       "are V's columns. (With examples as columns, X^T = V S U^T, the roles swap.)")
    _, _, Vt_raw = np.linalg.svd(X)
    if _angles_deg(E.T, Vt_raw[:r].T).max() < 1e-3:
        return False, ("those are the top directions of X without centring; PCA (and the bias-free autoencoder) "
                       "centre X first")
    if _angles_deg(E.T, Vt[-r:].T).max() < 1e-3:
        return False, "those are the r *smallest* directions (the last rows of V^T); the encoder keeps the top r"
    if _angles_deg(E.T, Vt[1:r + 1].T).max() < 1e-3:
        return False, "off by one: those are v_2 ... v_{r+1}; the top r directions start with v_1 (row 0 of V^T)"
    closest = _angles_deg(E.T, Vt[:r].T).max()
    if closest < 1.0:
        return False, (f"close: its rows span nearly the top-r principal directions (largest principal angle "
                       f"{closest:.3f} degrees), not exactly; did you round the numbers?")
    return False, "its rows do not span the top-r right singular vectors of the centred X"


# --- 03.4 matched parameter budgets --------------------------------------------------------------


@exercise("03.4", data={"d": 784, "hidden": 128, "r": 16}, answer_format="a pair (P, r_linear) of ints")
def matched_budget(answer, d, hidden, r):
    """A non-linear autoencoder d -> hidden -> r -> hidden -> d (lora_edu's NonlinearAutoencoder: four nn.Linear layers
    with biases, ReLU after the first and third). (a) How many parameters P does it have? (b) What is the largest code
    size r' of a bias-free linear autoencoder with at most P parameters?"""
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        return False, f"give a pair (P, r_linear) of two whole numbers, got {answer!r}"
    P, r_lin = answer
    if not (is_whole_number(P) and is_whole_number(r_lin)):
        return False, f"both parts must be whole numbers (ints), got {answer!r}"
    h = hidden
    right_P = (d * h + h) + (h * r + r) + (r * h + h) + (h * d + d)
    right_r = min(d, right_P // (2 * d))
    no_bias = d * h + h * r + r * h + h * d
    if P != right_P:
        if P == no_bias:
            return False, "P leaves out the biases: each of the four nn.Linear layers has one (out_features numbers)"
        if P in ((d * h + h) + (h * r + r), (r * h + h) + (h * d + d)):
            return False, "P counts one side only; the encoder and the decoder each have two layers"
        if P == 2 * d * r:
            return False, "2 d r is the *linear* autoencoder's count; this one has hidden layers of width hidden"
        return False, f"P = {P:,} is not the parameter count of d -> hidden -> r -> hidden -> d with biases"
    if r_lin == right_r:
        return True, (f"P = {right_P:,}; a bias-free linear autoencoder has 2 d r' parameters, so r' = "
                      f"floor(P / (2 d)) = {right_r} (<= d, so it is a real bottleneck, not the identity)")
    if r_lin == right_r + 1 and 2 * d * r_lin > right_P:
        return False, (f"r' = {r_lin} needs 2 d r' = {2 * d * r_lin:,} > P parameters; "
                       "round down to stay within the budget")
    if r_lin == right_P // d:
        return False, "you divided P by d only; the linear autoencoder has two matrices, 2 d r' parameters"
    return False, f"r' = {r_lin} is not the largest code size whose 2 d r' parameters fit into P"


# --- 03.5 an orthonormal decoder ----------------------------------------------------------------


def _decoder_matrix() -> np.ndarray:
    rng = np.random.default_rng(305)
    Q, _ = np.linalg.qr(rng.standard_normal((10, 3)))   # an orthonormal basis of some 3-D subspace
    M = rng.standard_normal((3, 3)) + 2 * np.eye(3)      # mixed by an invertible matrix, as training does
    return Q @ M


@exercise("03.5", data={"W_dec": _decoder_matrix()}, answer_format="an (r, r) array")
def orthonormal_decoder(answer, W_dec):
    """A trained decoder W_dec (d x r) spans the right subspace but its columns are not orthonormal. Find an r x r
    matrix M such that W_dec @ M has orthonormal columns."""
    r = W_dec.shape[1]
    M = _matrix(answer, (r, r), "M")
    Q = W_dec @ M
    gram = Q.T @ Q
    err = float(np.abs(gram - np.eye(r)).max())
    if err < 1e-8:
        return True, ("W_dec M has orthonormal columns, and M is invertible (W_dec M has rank r), so the span, and "
                      "the end-to-end map with encoder M^-1 W_enc, are unchanged")
    if np.allclose(M, np.eye(r)):
        return False, f"the identity leaves W_dec as it is; its Gram matrix W_dec^T W_dec is off from I by {err:.2f}"
    R = np.linalg.qr(W_dec)[1]
    if np.allclose(np.abs(M), np.abs(R), rtol=1e-6) or np.allclose(np.abs(M), np.abs(R.T), rtol=1e-6):
        return False, "that is R itself; W_dec = Q R, so the matrix that turns W_dec into Q is R^-1"
    G = W_dec.T @ W_dec
    if np.allclose(M, np.linalg.inv(G), rtol=1e-6):
        return False, "inv(W_dec^T W_dec) over-corrects; you need its inverse *square root* (or R^-1 from QR)"
    if np.allclose(M, G, rtol=1e-6):
        return False, "W_dec^T W_dec is the Gram matrix; you need the inverse of its square root (or R^-1 from QR)"
    if abs(np.linalg.det(M)) < 1e-12:
        return False, "M is singular, so W_dec M loses a direction of the subspace"
    if np.allclose(M, np.diag(np.diag(M))) and np.allclose(np.linalg.norm(Q, axis=0), 1, atol=1e-8):
        return False, ("a diagonal M only rescales the columns: now they have length 1 but are still not "
                       "orthogonal to each other (look at the off-diagonal of (W_dec M)^T (W_dec M))")
    return False, f"(W_dec M)^T (W_dec M) differs from the identity by up to {err:.3g}; hint: QR, W_dec = Q R"


# --- 03.6 open task: no centring -----------------------------------------------------------------


def _digits_train(test_fraction: float, split_seed: int) -> np.ndarray:
    from lora_edu.data import load_digits_data, train_test_split_indices

    X, _ = load_digits_data()
    train_idx, _ = train_test_split_indices(len(X), test_fraction=test_fraction, seed=split_seed)
    return X[train_idx]


@exercise("03.6", data={"r": 8, "test_fraction": 0.2, "split_seed": 0}, answer_format="a float")
def uncentred(answer, r, test_fraction, split_seed):
    """Open task: train LinearAutoencoder(64, r) on the training digits *without* centring them, and explain what
    happens. The checked part: the lowest training MSE a bias-free linear autoencoder with code size r can reach on the
    uncentred training digits."""
    val = _number(answer)
    if val is None:
        return False, f"give one number (a float), got {answer!r}"
    X = _digits_train(test_fraction, split_seed)
    n, d = X.shape
    s_raw = np.linalg.svd(X, compute_uv=False)
    s_c = _svals_centred(X)
    right = float(np.sum(s_raw[r:] ** 2) / (n * d))
    if _close(val, right):
        centred = np.sum(s_c[r:] ** 2) / (n * d)
        fewer = np.sum(s_c[r - 1:] ** 2) / (n * d)
        return True, (f"{right:.6g}: the rank-{r} optimum of the raw X. It lies between the centred optimum with r "
                      f"({centred:.6g}) and with r - 1 ({fewer:.6g}): the mean costs the code at most one unit")
    if _close(val, float(np.sum(s_c[r:] ** 2) / (n * d))):
        return False, ("that is the optimum on centred data; here the bias-free autoencoder sees the raw pixels, "
                       "so use the singular values of X itself")
    if _close(val, float(np.sum(s_c[r - 1:] ** 2) / (n * d))):
        return False, ("that is the centred optimum with r - 1 units: close (the mean takes about one unit), "
                       "but not exact")
    if _close(val, right * n * d):
        return False, "that is the summed squared error; the MSE divides it by the n*d entries"
    if _close(val, right, rtol=0.02):
        return False, ("close: that looks like a trained loss. Give the optimum in closed form (Eckart-Young on the "
                       "uncentred X); training only approaches it")
    return False, f"{val:.6g} is not the rank-{r} optimum of the uncentred training digits"

