"""Notebook 03: a linear autoencoder is a rank-r matrix factorisation (PCA); a non-linear one is not.

A linear autoencoder x -> W_dec W_enc x with an r-unit bottleneck computes a rank-r map. Trained
with mean squared error on centred data, it reaches the error of the rank-r truncated SVD (PCA) of
the data and spans the same subspace (Baldi & Hornik, 1989), but its weights are the principal
directions only up to an invertible r x r matrix. Shapes: data X is (n, d) with one example per
row, X = U S V^T, so the principal directions are the columns of V; ``encoder.weight`` is (r, d)
(LoRA's A), ``decoder.weight`` is (d, r) (LoRA's B).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lora_edu._checks import as_matrix, check_float, check_int
from lora_edu._utils import progress as progress_bar


class LinearAutoencoder(nn.Module):
    """x (.., d) -> decoder(encoder(x)) with ``encoder = Linear(d, r)``, ``decoder = Linear(r, d)``, no bias.

    Without biases it should see centred data (:func:`center`); the product
    ``decoder.weight @ encoder.weight`` (d, d) has rank <= r. ``seed`` fixes the initial weights
    (PyTorch's default initialisation) without touching the global random state.
    """

    def __init__(self, d: int, r: int, seed: int = 0) -> None:
        super().__init__()
        self.d = check_int(d, "d", 1)
        self.r = check_int(r, "r", 1, self.d)
        with torch.random.fork_rng(devices=[]):  # the global RNG is restored on exit
            torch.manual_seed(seed)
            self.encoder = nn.Linear(self.d, self.r, bias=False)
            self.decoder = nn.Linear(self.r, self.d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def end_to_end(self) -> np.ndarray:
        """The d x d matrix W_dec W_enc the autoencoder applies, as numpy."""
        with torch.no_grad():
            # in float64: a float32 product has rounding "noise" singular values ~1e-8 that
            # numpy's float64 rank tolerance would count, making a rank-r map look full rank
            return (self.decoder.weight.double() @ self.encoder.weight.double()).numpy()


class NonlinearAutoencoder(nn.Module):
    """One hidden ReLU layer on each side of an r-unit linear code: d -> hidden -> r -> hidden -> d.

    All four layers have biases. ``seed`` fixes the initial weights, as in :class:`LinearAutoencoder`.
    """

    def __init__(self, d: int, r: int, hidden: int = 64, seed: int = 0) -> None:
        super().__init__()
        self.d = check_int(d, "d", 1)
        self.r = check_int(r, "r", 1, self.d)
        hidden = check_int(hidden, "hidden", 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.encoder = nn.Sequential(nn.Linear(self.d, hidden), nn.ReLU(), nn.Linear(hidden, self.r))
            self.decoder = nn.Sequential(nn.Linear(self.r, hidden), nn.ReLU(), nn.Linear(hidden, self.d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def center(X: np.ndarray, mean: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Subtract the column means (or the given ``mean``, e.g. the training mean); returns (Xc, mean)."""
    X = as_matrix(X, "X")
    mean = X.mean(axis=0) if mean is None else np.asarray(mean, dtype=X.dtype)
    if mean.shape != (X.shape[1],):
        raise ValueError(f"mean must have shape ({X.shape[1]},), got {mean.shape}")
    return X - mean, mean


def as_tensor(X: np.ndarray | torch.Tensor, d: int) -> torch.Tensor:
    """X (n, d) as a float32 tensor, checked: 2-D, d columns, finite."""
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
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train ``model`` in place to reconstruct X (n, d) by mean squared error and Adam.

    Training starts from the model's current weights and never re-initialises them: to start
    again, build a fresh model (``LinearAutoencoder(d, r, seed=0)`` fixes the initial weights).

    Args:
        model: a module with attribute ``d`` (its input size), e.g. :class:`LinearAutoencoder`.
        X: training data, shape (n, d), one example per row (centre it for the linear model).
        epochs: passes over the data (>= 1).
        lr: Adam's learning rate (> 0). It decays by cosine annealing to lr / 100 over the epochs,
            which lets full-batch training settle on the optimum instead of hovering near it.
        batch_size: examples per step; None for full-batch training (one step per epoch).
        seed: seeds the order of the mini-batches, nothing else.
        progress: show a progress bar.

    Returns:
        the loss of each epoch: the mean squared error over the epoch's batches, each measured
        just before its step.
    """
    if not isinstance(model, nn.Module) or not isinstance(getattr(model, "d", None), int):
        raise TypeError("model must be an nn.Module with an integer attribute d (its input size), "
                        "e.g. LinearAutoencoder")
    data = as_tensor(X, model.d)
    epochs = check_int(epochs, "epochs", 1)
    lr = check_float(lr, "lr", 0.0, lo_open=True)
    n = len(data)
    batch_size = n if batch_size is None else check_int(batch_size, "batch_size", 1, n)
    shuffle = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=lr / 100)
    losses = []
    model.train()
    for _ in progress_bar(range(epochs), desc=f"training {type(model).__name__}", disable=not progress):
        order = torch.randperm(n, generator=shuffle) if batch_size < n else torch.arange(n)
        total = 0.0
        for start in range(0, n, batch_size):
            x = data[order[start : start + batch_size]]
            loss = ((model(x) - x) ** 2).mean()  # MSE over every entry of the batch
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(x)
        schedule.step()
        losses.append(total / n)
    model.eval()
    return losses


def reconstruction_mse(model: nn.Module, X: np.ndarray | torch.Tensor) -> float:
    """Mean squared reconstruction error of ``model`` on X (n, d), over all n * d entries."""
    data = as_tensor(X, model.d)
    with torch.no_grad():
        return float(((model(data) - data) ** 2).mean())


def pca_mse(X: np.ndarray, r: int, X_eval: np.ndarray | None = None) -> float:
    """MSE of projecting (centred) X_eval onto the top-r principal subspace of (centred) X.

    With ``X_eval=None`` this is the rank-r truncated SVD error of X itself, sum_{i>r} s_i^2 / (n d):
    by Eckart-Young the lowest MSE any rank-r linear map can reach on X.
    """
    X = as_matrix(X, "X")
    r = check_int(r, "r", 0, min(X.shape))
    Xe = X if X_eval is None else as_matrix(X_eval, "X_eval")
    if Xe.shape[1] != X.shape[1]:
        raise ValueError(f"X_eval must have {X.shape[1]} columns like X, got {Xe.shape[1]}")
    V_r = principal_directions(X, r)
    return float(np.mean((Xe - Xe @ V_r @ V_r.T) ** 2))


def principal_directions(X: np.ndarray, r: int) -> np.ndarray:
    """Top-r right singular vectors of X (n, d) as the columns of a (d, r) orthonormal matrix V_r."""
    X = as_matrix(X, "X")
    r = check_int(r, "r", 0, min(X.shape))
    return np.linalg.svd(X, full_matrices=False)[2][:r].T


def orthonormal_basis(M: np.ndarray, name: str = "M") -> np.ndarray:
    """An orthonormal basis (d, p) of the column space of M (d, p) by QR; raises if the columns are dependent."""
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
    Qu, Qv = orthonormal_basis(U, "U"), orthonormal_basis(V, "V")
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


def reconstructions_by_code_size(
    X_train: np.ndarray, X_eval: np.ndarray, linear: dict[int, nn.Module], nonlinear: dict[int, nn.Module],
) -> dict[str, dict[int, np.ndarray]]:
    """Every reconstruction of X_eval (m, d) that a comparison across code sizes r shows.

    Args:
        X_train: centred training data (n, d); its top-r principal directions give PCA's projection.
        X_eval: centred held-out data (m, d).
        linear: {r: trained LinearAutoencoder}; PCA is computed at the same r.
        nonlinear: {r: trained NonlinearAutoencoder}, any subset of those r.

    Returns:
        ``{"PCA (truncated SVD)": {r: (m, d)}, "linear AE": {r: (m, d)}, "non-linear AE": {r: (m, d)}}``
        as float64 arrays (the non-linear entry only at its own r).
    """
    X_train, X_eval = as_matrix(X_train, "X_train"), as_matrix(X_eval, "X_eval")
    out: dict[str, dict[int, np.ndarray]] = {"PCA (truncated SVD)": {}, "linear AE": {}, "non-linear AE": {}}
    Xt = torch.from_numpy(np.asarray(X_eval, dtype=np.float32))
    for r in sorted(linear):
        V = principal_directions(X_train, r)
        out["PCA (truncated SVD)"][r] = X_eval @ V @ V.T
        with torch.no_grad():
            out["linear AE"][r] = linear[r](Xt).double().numpy()
            if r in nonlinear:
                out["non-linear AE"][r] = nonlinear[r](Xt).double().numpy()
    return out
