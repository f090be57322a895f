"""Notebook 07: where LoRA went next - DoRA, PiSSA/OLoRA, LoRA+, adapter arithmetic - built on ``LoRALinear``.

Notation (the course's, the LoRA paper's): a frozen ``W0`` of shape (d, k) maps k inputs to d outputs
(``nn.Linear``'s (out, in) layout; GPT-2's ``Conv1D`` stores the transpose, handled as in
:mod:`lora_edu.lora`), ``B`` is (d, r), ``A`` is (r, k), the scaling is ``s = alpha / r`` and the
update is ``delta_W = s B A``.

* **DoRA** (Liu et al., 2024): :class:`DoRALinear` splits the adapted weight into a magnitude and a
  direction, ``W' = m * (W0 + s B A) / ||W0 + s B A||_c`` with one magnitude ``m_i`` per output unit
  and ``||.||_c`` the norm of each output unit's weights (a *row* of the (d, k) matrix; the paper,
  which writes layers as ``x W``, calls it a column). As in the paper (section 4.3) and PEFT, the
  norm is treated as a constant in the backward pass.
* **PiSSA** (Meng et al., 2024) and **OLoRA** (Buyukakyuz, 2024): :func:`pissa_init` and
  :func:`olora_init` start ``B`` and ``A`` from the top-r singular triplets (PiSSA) or the first r
  columns of a QR decomposition (OLoRA) of ``W0``, and freeze the residual ``W0 - s B A``.
* **LoRA+** (Hayou et al., 2024): :func:`loraplus_param_groups`, B's learning rate ``ratio`` times A's.
* **Adapter arithmetic**: :func:`concat_adapters`, the exact weighted sum of several ``s_i B_i A_i``
  as one adapter of rank ``sum(r_i)`` (PEFT's ``combination_type="cat"``).
* Analysis: :func:`magnitude_direction_change` (the DoRA paper's Delta M / Delta D),
  :func:`nf4_restore` and :func:`nf4_error` (QLoRA vs QPiSSA), :func:`orthogonality_penalty` and :func:`adalora_ranks`
  (AdaLoRA, trained with PEFT's ``AdaLoraConfig``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from lora_edu._checks import check_float, check_int
from lora_edu._utils import replace_submodule
from lora_edu.lora import LoRALinear, add_lora, lora_layers, merge_refusal

__all__ = [
    "adalora_ranks", "add_dora", "base_weight", "check_initialisable", "concat_adapters", "DoRALinear", "fit",
    "loraplus_param_groups", "magnitude_direction_change", "nf4_error", "nf4_restore", "olora_init",
    "orthogonality_penalty", "output_norms", "pissa_init", "rank_of", "set_base_weight", "to_dora",
]


# --- the frozen weight in the course's (d, k) layout ------------------------------------------------


def base_weight(layer: LoRALinear) -> torch.Tensor:
    """The frozen ``W0`` of ``layer`` as a (d, k) = (out, in) matrix, whatever the base stores.

    GPT-2's ``Conv1D`` stores (in, out), so its weight is returned transposed (a view).
    """
    if not isinstance(layer, LoRALinear):
        raise TypeError(f"layer must be a LoRALinear, got {type(layer).__name__}")
    w = layer.base.weight
    return w.T if layer.fan_in_fan_out else w


def set_base_weight(layer: LoRALinear, W: torch.Tensor) -> None:
    """Write a (d, k) matrix into ``layer``'s frozen base weight (transposed for ``Conv1D``), in place."""
    d, k = layer.out_features, layer.in_features
    if tuple(W.shape) != (d, k):
        raise ValueError(f"W must have shape (d, k) = {(d, k)}, got {tuple(W.shape)}")
    with torch.no_grad():
        layer.base.weight.copy_(W.T if layer.fan_in_fan_out else W)


def output_norms(W: torch.Tensor) -> torch.Tensor:
    """DoRA's ``||W||_c``: the Euclidean norm of each output unit's weights, shape (d,) for W (d, k).

    In the course's layout (``h = W x``) output unit i is row i. The DoRA paper writes layers as
    ``x W`` (W stored (k, d)), where the same vectors are columns, hence its subscript c.
    """
    if not torch.is_tensor(W) or W.ndim != 2:
        raise TypeError(f"W must be a 2-D tensor (d x k), got {type(W).__name__}")
    return torch.linalg.norm(W, dim=1)


# --- DoRA -------------------------------------------------------------------------------------


class DoRALinear(LoRALinear):
    """LoRA with weight decomposition: ``W' = m * (W0 + s B A) / ||W0 + s B A||_c``.

    A :class:`~lora_edu.lora.LoRALinear` (same ``lora_A``, ``lora_B``, scaling, dropout, ``Conv1D``
    handling) plus ``lora_magnitude``: one trainable number per output unit, shape (d,), initialised
    to ``||W0 + s B A||_c`` (= ``||W0||_c`` while B = 0), so a fresh layer computes what the base did.

    The forward pass is PEFT's (``use_dora=True``)::

        n = ||W0 + s B A||_c, without gradient   # DoRA section 4.3: a constant for the backward pass
        h = base(x) + (m / n - 1) * (W0 x) + (m / n) * s B A dropout(x)

    which equals ``W' x + b`` (without dropout). The extra cost over LoRA is the norm, which needs
    ``s B A`` as a full (d, k) matrix at every step. Merging writes ``W'`` into the base weight.
    ``detach_norm = False`` lets the gradient flow through the norm too (to measure what the
    detach saves).
    """

    detach_norm: bool = True

    def __init__(self, base: nn.Module, r: int, alpha: float, dropout: float = 0.0, use_rslora: bool = False):
        super().__init__(base, r, alpha, dropout, use_rslora)
        self.lora_magnitude = nn.Parameter(self.weight_norm().detach().clone())

    @classmethod
    def from_lora(cls, layer: LoRALinear) -> DoRALinear:
        """A DoRA layer that takes over ``layer``'s base, ``A``, ``B`` and settings (the same start).

        Torch's global random state is left as it was (the fresh ``A`` drawn inside is overwritten).
        """
        if isinstance(layer, DoRALinear):
            raise ValueError("layer is already a DoRALinear")
        if not isinstance(layer, LoRALinear):
            raise TypeError(f"layer must be a LoRALinear, got {type(layer).__name__}")
        if layer.merged:
            raise ValueError("layer is merged; unmerge it before converting it to DoRA")
        p = layer.lora_dropout.p if isinstance(layer.lora_dropout, nn.Dropout) else 0.0
        with torch.random.fork_rng(devices=[]):
            new = cls(layer.base, layer.r, layer.alpha, p)
        new.scaling = layer.scaling  # keeps rsLoRA's alpha / sqrt(r) if the layer had it
        with torch.no_grad():
            new.lora_A.copy_(layer.lora_A)
            new.lora_B.copy_(layer.lora_B)
            new.lora_magnitude.copy_(new.weight_norm())
        new.lora_A.requires_grad_(layer.lora_A.requires_grad)
        new.lora_B.requires_grad_(layer.lora_B.requires_grad)
        return new

    def weight_norm(self) -> torch.Tensor:
        """``||W0 + s B A||_c``, shape (d,) (with the gradient; the forward pass detaches it)."""
        return output_norms(base_weight(self) + self.delta_weight())

    def adapted_weight(self) -> torch.Tensor:
        """``W' = m * (W0 + s B A) / ||W0 + s B A||_c``, shape (d, k): what the layer computes."""
        V = base_weight(self) + self.delta_weight()
        return (self.lora_magnitude / output_norms(V))[:, None] * V

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base(x)
        if self.merged:
            return result
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_norm):
            norm = self.weight_norm()  # DoRA section 4.3: a constant for the backward pass
        scale = self.lora_magnitude / norm  # (d,): m / ||W0 + s B A||_c
        if isinstance(self.lora_dropout, nn.Identity) or not self.training:
            base_part = result if self.base.bias is None else result - self.base.bias  # W0 x
        else:  # with dropout the whole adapted path sees the dropped-out input (as PEFT)
            x = self.lora_dropout(x)
            base_part = x @ base_weight(self).T
        lora_part = (x @ self.lora_A.T @ self.lora_B.T) * self.scaling
        return result + (scale - 1) * base_part + scale * lora_part

    def merge(self) -> None:
        """Write ``W'`` into the base weight (no extra work at inference); refuses as LoRALinear does."""
        if self.merged:
            raise ValueError("this DoRALinear is already merged")
        refusal = merge_refusal(self.base)
        if refusal is not None:
            raise TypeError(f"cannot merge into this {type(self.base).__name__}: {refusal}")
        with torch.no_grad():
            W = self.adapted_weight()
            if not torch.isfinite(W).all():
                raise ValueError("the DoRA weight contains NaN or inf; refusing to write it into the base weight")
            self._merge_factor = (self.lora_magnitude / self.weight_norm()).clone()  # m / n, needed to unmerge
            set_base_weight(self, W)
        self.merged = True

    def unmerge(self) -> None:
        """Restore ``W0 = W' / (m / n) - s B A`` (up to float rounding)."""
        if not self.merged:
            raise ValueError("this DoRALinear is not merged")
        factor = self._merge_factor
        if (factor == 0).any():
            raise ValueError("a magnitude is 0, so W0 cannot be recovered from the merged weight")
        with torch.no_grad():
            set_base_weight(self, base_weight(self) / factor[:, None] - self.delta_weight())
        self.merged = False

    def extra_repr(self) -> str:
        return super().extra_repr() + f", magnitude={tuple(self.lora_magnitude.shape)}"


def to_dora(model: nn.Module) -> nn.Module:
    """Replace every (non-DoRA) :class:`LoRALinear` of ``model`` by :meth:`DoRALinear.from_lora`; in place."""
    layers = {n: m for n, m in lora_layers(model).items() if not isinstance(m, DoRALinear)}
    if not layers:
        raise ValueError("model has no LoRALinear layers to convert; call add_lora first")
    for name, layer in layers.items():
        replace_submodule(model, name, DoRALinear.from_lora(layer))
    return model


def add_dora(model: nn.Module, target_modules, r: int, alpha: float, dropout: float = 0.0,
             use_rslora: bool = False) -> nn.Module:
    """:func:`lora_edu.lora.add_lora`, then :func:`to_dora`: the same ``A`` draws as LoRA with the same seed."""
    return to_dora(add_lora(model, target_modules, r, alpha, dropout, use_rslora))


# --- PiSSA and OLoRA: start from the principal part of W0, freeze the rest -------------------------


def check_initialisable(layer: LoRALinear) -> None:
    """Raise unless ``layer`` is an unmerged, plain :class:`LoRALinear` (what PiSSA/OLoRA start from)."""
    if not isinstance(layer, LoRALinear) or isinstance(layer, DoRALinear):
        raise TypeError(f"layer must be a LoRALinear (initialise first, then convert with to_dora), "
                        f"got {type(layer).__name__}")
    if layer.merged:
        raise ValueError("layer is merged; the initialisation needs the frozen W0 alone")


def pissa_init(layer: LoRALinear) -> LoRALinear:
    """PiSSA: ``B = U_r sqrt(S_r / s)``, ``A = sqrt(S_r / s) V_r^T``, base weight := ``W0 - U_r S_r V_r^T``.

    The top-r singular triplets of ``W0`` (notebook 02's :func:`lora_edu.svd.truncated_svd`) become
    the trainable adapter, so that ``s B A`` is the best rank-r part of ``W0`` and the layer still
    computes ``W0 x``; the residual stays frozen. In place; returns ``layer``. Each singular pair is
    fixed only up to a joint sign flip, which changes ``B`` and ``A`` but not ``B A``.
    """
    from lora_edu.svd import truncated_svd

    check_initialisable(layer)
    W = base_weight(layer).detach()
    if layer.r > min(W.shape):
        raise ValueError(f"r={layer.r} exceeds min(d, k)={min(W.shape)}: W0 has only that many singular triplets")
    U_r, S_r, Vt_r = truncated_svd(W.double().cpu().numpy(), layer.r)
    root = np.sqrt(S_r / layer.scaling)
    B = torch.tensor(U_r * root, dtype=W.dtype, device=W.device)            # (d, r)
    A = torch.tensor(root[:, None] * Vt_r, dtype=W.dtype, device=W.device)  # (r, k)
    with torch.no_grad():
        layer.lora_B.copy_(B)
        layer.lora_A.copy_(A)
    set_base_weight(layer, W - layer.scaling * B @ A)  # the residual W0 - U_r S_r V_r^T, frozen
    return layer


def olora_init(layer: LoRALinear) -> LoRALinear:
    """OLoRA: ``W0 = Q R``; ``B = Q[:, :r]`` (orthonormal columns), ``A = R[:r]``, base := ``W0 - s B A``.

    ``Q_r R_r`` is ``W0`` projected onto the span of its first r columns (cheaper than an SVD, and
    not the best rank-r part). In place; returns ``layer``. Unlike PEFT 0.21, the QR is taken of the
    (d, k) matrix for GPT-2's ``Conv1D`` too.
    """
    check_initialisable(layer)
    W = base_weight(layer).detach()
    if layer.r > min(W.shape):
        raise ValueError(f"r={layer.r} exceeds min(d, k)={min(W.shape)}")
    Q, R = torch.linalg.qr(W.float())
    B, A = Q[:, : layer.r].to(W.dtype), R[: layer.r].to(W.dtype)
    with torch.no_grad():
        layer.lora_B.copy_(B)
        layer.lora_A.copy_(A)
    set_base_weight(layer, W - layer.scaling * B @ A)
    return layer


# --- LoRA+ and a full-batch training loop with parameter groups ---------------------------------


def loraplus_param_groups(model: nn.Module, lr: float, ratio: float) -> list[dict]:
    """LoRA+'s two learning rates, grouped as PEFT's ``create_loraplus_optimizer`` groups them.

    Trainable ``lora_B`` tensors, and every trainable 1-D tensor (biases, DoRA's magnitudes), get
    ``lr * ratio``; everything else (``lora_A``, a trained output layer's weight) gets ``lr``.
    Returns ``[{"params": [...], "lr": lr}, {"params": [...], "lr": lr * ratio}]`` for any optimizer.
    """
    lr = check_float(lr, "lr", 0.0, lo_open=True)
    ratio = check_float(ratio, "ratio", 0.0, lo_open=True)
    slow, fast = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (fast if "lora_B" in name or p.ndim == 1 else slow).append(p)
    if not slow and not fast:
        raise ValueError("model has no trainable parameters")
    return [{"params": slow, "lr": lr}, {"params": fast, "lr": lr * ratio}]


def fit(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float,
    ratio: float = 1.0,
    optimizer: str = "adam",
    every: int = 0,
    on_record: Callable[[int, nn.Module], object] | None = None,
    extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
    after_step: Callable[[int], object] | None = None,
) -> dict:
    """Full-batch training of ``model``'s trainable parameters on cross-entropy(model(X), y).

    Args:
        steps: optimizer steps (each sees all of ``X``: no batch order, nothing random).
        lr: learning rate of A (and of everything that is not in LoRA+'s fast group).
        ratio: LoRA+'s ``lr_B / lr_A`` (:func:`loraplus_param_groups`); 1 is plain LoRA.
        optimizer: ``"adam"`` or ``"sgd"``.
        every, on_record: call ``on_record(step, model)`` before step 0 and after every ``every``
            steps; its results are returned under ``"records"``.
        extra_loss: a penalty added to the loss (AdaLoRA's orthogonality term).
        after_step: called with the step index after the optimizer step, while the gradients are
            still there (AdaLoRA's ``update_and_allocate`` goes here, as PEFT's docs say).

    Returns ``{"loss": [training loss before each step], "seconds": wall time, "records": [...]}``.
    """
    steps = check_int(steps, "steps", 1)
    every = check_int(every, "every", 0)
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    groups = loraplus_param_groups(model, lr, ratio)
    groups = [g for g in groups if g["params"]]
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(groups)
    losses, records = [], []
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        if every and on_record is not None and step % every == 0:
            records.append(on_record(step, model))
        loss = nn.functional.cross_entropy(model(X), y)
        losses.append(loss.item())
        if extra_loss is not None:
            loss = loss + extra_loss(model)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if after_step is not None:
            after_step(step)
    model.eval()
    if every and on_record is not None:
        records.append(on_record(steps, model))
    return {"loss": losses, "seconds": time.perf_counter() - start, "records": records}


# --- analysis -------------------------------------------------------------------------------------


def magnitude_direction_change(W: torch.Tensor, W0: torch.Tensor) -> tuple[float, float]:
    """The DoRA paper's (Delta M, Delta D) of a fine-tuned ``W`` against ``W0`` (both (d, k)).

    ``Delta M``: the mean over output units of ``| ||W_i|| - ||W0_i|| |``; ``Delta D``: the mean of
    ``1 - cos(W_i, W0_i)`` (rows i: one per output unit, the vectors DoRA gives a magnitude).
    """
    if W.shape != W0.shape or W.ndim != 2:
        raise ValueError(f"W and W0 must be matrices of one shape, got {tuple(W.shape)} and {tuple(W0.shape)}")
    W, W0 = W.detach().double(), W0.detach().double()
    dm = (output_norms(W) - output_norms(W0)).abs().mean()
    dd = (1 - nn.functional.cosine_similarity(W, W0, dim=1)).mean()
    return float(dm), float(dd)


def nf4_restore(W: torch.Tensor, r: int = 0, blocksize: int = 64, factors=None) -> torch.Tensor:
    """What a 4-bit model computes with: ``NF4(W - W_r) + W_r``, with ``W_r`` the best rank-r part of W.

    r = 0 is QLoRA's frozen weight (all of W quantized); r > 0 is QPiSSA's: the principal part lives
    in the full-precision adapter and only the residual is quantized (notebook 05's
    :func:`~lora_edu.quant.nf4_quantize`). ``factors``: W's SVD ``(U, S, Vt)`` as numpy arrays, to
    reuse one SVD across many r.
    """
    from lora_edu.quant import nf4_dequantize, nf4_quantize

    if not torch.is_tensor(W) or W.ndim != 2:
        raise TypeError(f"W must be a 2-D tensor, got {type(W).__name__}")
    r = check_int(r, "r", 0, min(W.shape))
    W = W.detach().float().cpu()
    if r == 0:
        W_r = torch.zeros_like(W)
    else:
        U, S, Vt = factors if factors is not None else np.linalg.svd(W.double().numpy(), full_matrices=False)
        W_r = torch.tensor((U[:, :r] * S[:r]) @ Vt[:r], dtype=torch.float32)
    residual = W - W_r
    packed, absmax = nf4_quantize(residual, blocksize)
    return nf4_dequantize(packed, absmax, residual.shape, blocksize) + W_r


def nf4_error(W: torch.Tensor, r: int = 0, blocksize: int = 64) -> float:
    """The relative NF4 error ``||W - nf4_restore(W, r)||_F / ||W||_F`` (r = 0: QLoRA; r > 0: QPiSSA)."""
    restored = nf4_restore(W, r, blocksize)
    W = W.detach().float().cpu()
    return float(torch.linalg.norm(W - restored) / torch.linalg.norm(W))


def concat_adapters(adapters: Sequence[tuple[torch.Tensor, torch.Tensor, float]],
                    weights: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """One adapter ``(B, A)`` with scaling 1 and ``B A = sum_i w_i s_i B_i A_i`` exactly.

    ``adapters`` holds ``(B_i, A_i, s_i)`` with B_i (d, r_i) and A_i (r_i, k); the result has rank
    ``sum(r_i)``: ``B = [B_1, B_2, ...]`` side by side and ``A`` the ``w_i s_i A_i`` stacked
    (PEFT's ``add_weighted_adapter(..., combination_type="cat")``). Summing the B's and the A's
    separately (``"linear"``) is not this: it adds the cross terms ``B_1 A_2 + B_2 A_1``.
    """
    if len(adapters) != len(weights) or not adapters:
        raise ValueError(f"adapters and weights must be non-empty and of one length, got {len(adapters)} "
                         f"and {len(weights)}")
    shapes = {(B.shape[0], A.shape[1]) for B, A, _ in adapters}
    if len(shapes) != 1 or any(B.shape[1] != A.shape[0] for B, A, _ in adapters):
        raise ValueError(f"every adapter must be a (d, r_i) B and an (r_i, k) A of one (d, k); got "
                         f"{[(tuple(B.shape), tuple(A.shape)) for B, A, _ in adapters]}")
    B = torch.cat([B.detach() for B, _, _ in adapters], dim=1)
    A = torch.cat([float(w) * float(s) * A.detach() for (_, A, s), w in zip(adapters, weights, strict=True)], dim=0)
    return B, A


def orthogonality_penalty(model: nn.Module) -> torch.Tensor:
    """AdaLoRA's regulariser: the mean over its P and Q matrices of ``||P^T P - I||_F`` and ``||Q Q^T - I||_F``.

    (PEFT's ``AdaLoraModel`` adds it to ``outputs.loss`` itself only for models that return a
    ``loss``; a classifier that returns logits needs it added by hand, weighted by ``orth_reg_weight``.)
    """
    terms = []
    for name, p in model.named_parameters():
        if p.requires_grad and ("lora_A" in name or "lora_B" in name):
            cov = p @ p.T if "lora_A" in name else p.T @ p
            terms.append(torch.linalg.norm(cov - torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)))
    if not terms:
        raise ValueError("model has no AdaLoRA parameters (lora_A / lora_B)")
    return torch.stack(terms).mean()


def adalora_ranks(peft_model) -> dict[str, int]:
    """The rank AdaLoRA left each adapted layer: how many entries of its ``lora_E`` (Lambda) are non-zero."""
    ranks = {}
    for name, p in peft_model.named_parameters():
        if "lora_E" in name:
            layer = name.split(".lora_E")[0].removeprefix("base_model.model.")
            ranks[layer] = int((p.detach() != 0).sum())
    if not ranks:
        raise ValueError("peft_model has no AdaLoRA layers (no lora_E parameters)")
    return ranks


def rank_of(M: torch.Tensor, rtol: float = 1e-5) -> int:
    """Numerical rank: singular values above ``rtol`` times the largest."""
    s = torch.linalg.svdvals(M.detach().double())
    return int((s > rtol * s.max()).sum()) if s.numel() and s.max() > 0 else 0

