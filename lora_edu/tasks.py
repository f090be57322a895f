"""The small, real fine-tuning task of notebooks 04 and 05: digits 0-4 -> digits 5-9.

An MLP is pretrained to classify the handwritten digits 0-4 of scikit-learn's bundled
``load_digits`` (no download), then adapted to a *shifted* task, classifying 5-9, with full
fine-tuning, LoRA at several ranks, or other parameter-efficient methods. Labels of both tasks are
0..4 (digit - 5 for the second), so the same 5-way output layer is reused.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lora_edu._checks import check_float, check_int
from lora_edu.data import load_digits_data, train_test_split_indices


@dataclass
class Split:
    X: torch.Tensor  # (n, 64) float32 in [0, 1]
    y: torch.Tensor  # (n,) int64 in 0..4


@dataclass
class ShiftTask:
    """Train/test splits of the source task (digits 0-4) and the target task (digits 5-9)."""

    source_train: Split
    source_test: Split
    target_train: Split
    target_test: Split


def digits_shift_task(test_fraction: float = 0.3, seed: int = 0) -> ShiftTask:
    """Split ``load_digits`` into source (0-4) and target (5-9) tasks with held-out test sets."""
    X, y = load_digits_data()
    train_idx, test_idx = train_test_split_indices(len(X), test_fraction, seed)
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)

    def part(idx: np.ndarray, lo: int) -> Split:
        idx = torch.tensor(idx)
        keep = idx[(yt[idx] >= lo) & (yt[idx] < lo + 5)]
        return Split(Xt[keep], yt[keep] - lo)

    return ShiftTask(part(train_idx, 0), part(test_idx, 0), part(train_idx, 5), part(test_idx, 5))


def seeded_linear(in_features: int, out_features: int, generator: torch.Generator) -> nn.Linear:
    """An ``nn.Linear`` with PyTorch's default initialisation, drawn from ``generator``.

    The same distributions as ``nn.Linear(in_features, out_features)`` (weight
    ``kaiming_uniform_(a=sqrt(5))``, i.e. U(-1/sqrt(in), 1/sqrt(in)), and bias U(-1/sqrt(in), 1/sqrt(in))),
    but torch's global random number generator is neither read nor advanced: building a model
    does not change what a later ``torch.randn`` returns.
    """
    layer = nn.utils.skip_init(nn.Linear, in_features, out_features)  # allocated, not initialised
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        bound = 1 / math.sqrt(in_features)
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


class DigitsMLP(nn.Module):
    """64 -> hidden -> hidden -> 5 with ReLU; layers named ``fc1``, ``fc2``, ``head``.

    ``seed`` fixes the initial weights through a private ``torch.Generator`` (torch's global random
    state is left alone); the weights equal those of ``torch.manual_seed(seed)`` followed by the
    three ``nn.Linear`` constructors.
    """

    def __init__(self, hidden: int = 128, seed: int = 0) -> None:
        super().__init__()
        hidden = check_int(hidden, "hidden", 1)
        gen = torch.Generator().manual_seed(check_int(seed, "seed", 0))
        self.fc1 = seeded_linear(64, hidden, gen)
        self.fc2 = seeded_linear(hidden, hidden, gen)
        self.head = seeded_linear(hidden, 5, gen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class BottleneckAdapter(nn.Module):
    """Houlsby-style adapter: ``x + up(relu(down(x)))``, with ``up`` zero-initialised (starts as identity)."""

    def __init__(self, dim: int, bottleneck: int) -> None:
        super().__init__()
        self.down = nn.Linear(check_int(dim, "dim", 1), check_int(bottleneck, "bottleneck", 1))
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(torch.relu(self.down(x)))


OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def train_classifier(
    model: nn.Module,
    data: Split,
    *,
    epochs: int,
    lr: float,
    seed: int = 0,
    batch_size: int | None = 64,
    optimizer: str = "adam",
) -> dict[str, list[float] | float]:
    """Train the trainable parameters of ``model`` on cross-entropy; returns the history.

    Args:
        epochs: passes over ``data``.
        lr: learning rate, > 0.
        seed: fixes the batch order and any dropout masks. Torch's global random state is restored
            afterwards, so training does not change what later code draws.
        batch_size: examples per step; ``None`` means the whole split (one step per epoch).
        optimizer: ``"adam"`` (``torch.optim.Adam``) or ``"sgd"`` (plain gradient descent).

    Returns ``{"loss": [mean training loss per epoch], "seconds": wall time of the loop}``.
    """
    epochs = check_int(epochs, "epochs", 1)
    lr = check_float(lr, "lr", 0.0, lo_open=True)
    n = len(data.y)
    batch_size = n if batch_size is None else check_int(batch_size, "batch_size", 1)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters (did you freeze everything?)")
    gen = torch.Generator().manual_seed(seed)
    opt = OPTIMIZERS[optimizer](params, lr=lr)
    losses: list[float] = []
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # dropout draws from the global generator: seed it, then restore
        torch.manual_seed(seed)
        for _ in range(epochs):
            model.train()
            order = torch.randperm(n, generator=gen) if batch_size < n else torch.arange(n)
            total = 0.0
            for i in range(0, n, batch_size):
                b = order[i : i + batch_size]
                loss = nn.functional.cross_entropy(model(data.X[b]), data.y[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(b)
            losses.append(total / n)
    model.eval()
    return {"loss": losses, "seconds": time.perf_counter() - start}


@torch.no_grad()
def accuracy(model: nn.Module, data: Split) -> float:
    """Fraction of correctly classified examples."""
    model.eval()
    return float((model(data.X).argmax(dim=1) == data.y).float().mean())
