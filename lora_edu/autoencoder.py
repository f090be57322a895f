"""Notebook 03: a linear autoencoder is a rank-k matrix factorisation (PCA), a non-linear one is not.

A linear autoencoder x -> W_dec W_enc x with a k-unit bottleneck computes a rank-k map. Trained with
mean squared error on centred data, it reaches the same error as the rank-k truncated SVD (PCA) of
the data and spans the same subspace (Baldi & Hornik, 1989), but its weights are the principal
directions only up to an invertible k x k matrix. Shapes: data X is (n, d) with one example per
row; ``encoder.weight`` is (k, d) (LoRA's "A"), ``decoder.weight`` is (d, k) (LoRA's "B").
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from lora_edu._checks import as_matrix, check_float, check_int


class LinearAutoencoder(nn.Module):
    """x (.., d) -> decoder(encoder(x)) with ``encoder = Linear(d, k)``, ``decoder = Linear(k, d)``, no bias.

    Without biases it should see centred data (:func:`center`); the product
    ``decoder.weight @ encoder.weight`` (d, d) has rank <= k.
    """

    def __init__(self, d: int, k: int) -> None:
        super().__init__()
        self.d = check_int(d, "d", 1)
        self.k = check_int(k, "k", 1, self.d)
        self.encoder = nn.Linear(self.d, self.k, bias=False)
        self.decoder = nn.Linear(self.k, self.d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def end_to_end(self) -> np.ndarray:
        """The d x d matrix W_dec W_enc the autoencoder applies, as numpy."""
        with torch.no_grad():
            # in float64: a float32 product has rounding "noise" singular values ~1e-8 that
            # numpy's float64 rank tolerance would count, making a rank-k map look full rank
            return (self.decoder.weight.double() @ self.encoder.weight.double()).numpy()


class NonlinearAutoencoder(nn.Module):
    """One hidden ReLU layer on each side of a k-unit linear bottleneck: d -> h -> k -> h -> d."""

    def __init__(self, d: int, k: int, hidden: int = 64) -> None:
        super().__init__()
        self.d = check_int(d, "d", 1)
        self.k = check_int(k, "k", 1, self.d)
        hidden = check_int(hidden, "hidden", 1)
        self.encoder = nn.Sequential(nn.Linear(self.d, hidden), nn.ReLU(), nn.Linear(hidden, self.k))
        self.decoder = nn.Sequential(nn.Linear(self.k, hidden), nn.ReLU(), nn.Linear(hidden, self.d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def center(X: np.ndarray, mean: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Subtract the column means (or the given ``mean``, e.g. the training mean); returns (Xc, mean)."""
    X = as_matrix(X, "X")
    mean = X.mean(axis=0) if mean is None else np.asarray(mean, dtype=X.dtype)
    if mean.shape != (X.shape[1],):
        raise ValueError(f"mean must have shape ({X.shape[1]},), got {mean.shape}")
    return X - mean, mean


def _as_tensor(X: np.ndarray | torch.Tensor, d: int) -> torch.Tensor:
    if isinstance(X, torch.Tensor):
        t = X.detach().float()
    else:
        t = torch.from_numpy(as_matrix(X, "X").astype(np.float32))
    if t.ndim != 2 or t.shape[1] != d:
        raise ValueError(f"X must have shape (n, {d}) to match the model's d={d}, got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError("X contains NaN or inf")
    return t


def train_autoencoder(
    model: nn.Module,
    X: np.ndarray | torch.Tensor,
    *,
    epochs: int,
    lr: float,
    seed: int = 0,
    batch_size: int | None = None,
    progress: bool = True,
) -> dict[str, list[float] | float]:
    """Train ``model`` to reconstruct X (n, d) with MSE and Adam; returns the history.

    Args:
        model: a module with attribute ``d`` (e.g. :class:`LinearAutoencoder`).
        X: training data, shape (n, d), one example per row (centre it for the linear model).
        epochs: passes over the data (>= 1).
        lr: Adam learning rate (> 0); it is decayed by cosine annealing to lr/100, which is what
            lets full-batch training settle on the optimum instead of hovering near it.
        seed: seeds the initial weights (the model is re-initialised) and the batch order.
        batch_size: None for full-batch gradient descent.
        progress: show a tqdm progress bar.

    Returns:
        ``{"loss": [mean squared error per epoch], "seconds": wall time}``.
    """
    d = getattr(model, "d", None)
    if not isinstance(model, nn.Module) or d is None:
        raise TypeError("model must be an nn.Module with an attribute d (the input size), e.g. LinearAutoencoder")
    epochs = check_int(epochs, "epochs", 1)
    lr = check_float(lr, "lr", 0.0, lo_open=True)
    data = _as_tensor(X, d)
    n = data.shape[0]
    bs = n if batch_size is None else check_int(batch_size, "batch_size", 1, n)

    torch.manual_seed(seed)
    for m in model.modules():  # same seed -> same initial weights, whatever ran before
        if isinstance(m, nn.Linear):
            m.reset_parameters()
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=lr / 100)
    history: list[float] = []
    from tqdm.auto import trange

    start = time.perf_counter()
    model.train()
    for _ in trange(epochs, desc=f"training {type(model).__name__}", disable=not progress, leave=False):
        order = torch.randperm(n, generator=gen) if bs < n else torch.arange(n)
        total = 0.0
        for i in range(0, n, bs):
            batch = data[order[i : i + bs]]
            loss = ((model(batch) - batch) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        sched.step()
        history.append(total / n)
    model.eval()
    return {"loss": history, "seconds": time.perf_counter() - start}


def reconstruction_mse(model: nn.Module, X: np.ndarray | torch.Tensor) -> float:
    """Mean squared reconstruction error of ``model`` on X (n, d), over all n * d entries."""
    data = _as_tensor(X, model.d)
    with torch.no_grad():
        return float(((model(data) - data) ** 2).mean())


def pca_mse(X: np.ndarray, k: int, X_eval: np.ndarray | None = None) -> float:
    """MSE of projecting (centred) X_eval onto the top-k principal subspace of (centred) X.

    With ``X_eval=None`` this is the rank-k truncated SVD error of X itself: by Eckart-Young the
    lowest MSE any rank-k linear map can reach on X.
    """
    X = as_matrix(X, "X")
    k = check_int(k, "k", 0, min(X.shape))
    Xe = X if X_eval is None else as_matrix(X_eval, "X_eval")
    if Xe.shape[1] != X.shape[1]:
        raise ValueError(f"X_eval must have {X.shape[1]} columns like X, got {Xe.shape[1]}")
    Vk = principal_directions(X, k)
    return float(np.mean((Xe - Xe @ Vk @ Vk.T) ** 2))


def principal_directions(X: np.ndarray, k: int) -> np.ndarray:
    """Top-k right singular vectors of X (n, d) as the columns of a (d, k) orthonormal matrix."""
    X = as_matrix(X, "X")
    k = check_int(k, "k", 0, min(X.shape))
    return np.linalg.svd(X, full_matrices=False)[2][:k].T


def _orthonormal_basis(M: np.ndarray, name: str) -> np.ndarray:
    M = as_matrix(M, name)
    if M.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column (a basis vector), got shape {M.shape}")
    Q, R = np.linalg.qr(M.astype(np.float64))
    if np.min(np.abs(np.diag(R))) <= 1e-10 * max(1.0, np.max(np.abs(np.diag(R)))):
        raise ValueError(f"{name}'s columns are linearly dependent; they are not a basis")
    return Q


def principal_angles(U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Principal angles (degrees, ascending) between span(U) and span(V).

    Args:
        U: (d, p) basis of the first subspace (orthonormalised inside).
        V: (d, q) basis of the second subspace.

    Returns:
        min(p, q) angles in [0, 90]; all zeros iff one subspace contains the other.
    """
    Qu, Qv = _orthonormal_basis(U, "U"), _orthonormal_basis(V, "V")
    if Qu.shape[0] != Qv.shape[0]:
        raise ValueError(f"U and V must live in the same space: U has {Qu.shape[0]} rows, V has {Qv.shape[0]}")
    cos = np.linalg.svd(Qu.T @ Qv, compute_uv=False)
    return np.sort(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def subspace_similarity(U: np.ndarray, V: np.ndarray) -> float:
    """Normalised subspace similarity ``||Qu^T Qv||_F^2 / min(p, q)`` in [0, 1].

    1 when one subspace contains the other, 0 when they are orthogonal; the mean squared cosine
    of the principal angles. This is the LoRA paper's phi (section 7) for two given bases.
    """
    angles = np.radians(principal_angles(U, V))
    return float(np.mean(np.cos(angles) ** 2))


def reconstructions_by_k(
    X_train: np.ndarray, X_eval: np.ndarray, linear: dict[int, nn.Module], nonlinear: dict[int, nn.Module],
) -> dict[str, dict[int, np.ndarray]]:
    """Every reconstruction of X_eval (m, d) that a comparison across bottleneck sizes k shows.

    Args:
        X_train: centred training data (n, d); its top-k principal directions give PCA's projection.
        X_eval: centred held-out data (m, d).
        linear: {k: trained LinearAutoencoder}; PCA is computed at the same k.
        nonlinear: {k: trained NonlinearAutoencoder}, any subset of those k.

    Returns:
        ``{"PCA (truncated SVD)": {k: (m, d)}, "linear AE": {k: (m, d)}, "non-linear AE": {k: (m, d)}}``
        as float64 arrays (the non-linear entry only at its own k).
    """
    X_train, X_eval = as_matrix(X_train, "X_train"), as_matrix(X_eval, "X_eval")
    out: dict[str, dict[int, np.ndarray]] = {"PCA (truncated SVD)": {}, "linear AE": {}, "non-linear AE": {}}
    Xt = torch.from_numpy(np.asarray(X_eval, dtype=np.float32))
    for k in sorted(linear):
        V = principal_directions(X_train, k)
        out["PCA (truncated SVD)"][k] = X_eval @ V @ V.T
        with torch.no_grad():
            out["linear AE"][k] = linear[k](Xt).double().numpy()
            if k in nonlinear:
                out["non-linear AE"][k] = nonlinear[k](Xt).double().numpy()
    return out
