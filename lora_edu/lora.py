"""Notebook 04: a LoRA layer from scratch, numerically identical to Hugging Face PEFT's.

Notation (LoRA paper, and PEFT's tensors): a frozen weight W0 maps ``in_features`` -> ``out_features``
(nn.Linear layout ``(out, in)``); the update is ``delta_W = scaling * B @ A`` with

* ``lora_A``: shape ``(r, in_features)``  - the paper's A (r x k), the "down" projection,
* ``lora_B``: shape ``(out_features, r)`` - the paper's B (d x r), the "up" projection,
* ``scaling = alpha / r`` (``alpha / sqrt(r)`` with rsLoRA).

``forward(x) = base(x) + (dropout(x) @ A.T @ B.T) * scaling``. A starts as PEFT's
``kaiming_uniform_(a=sqrt(5))`` and B at zero, so a freshly wrapped layer computes exactly what the
base layer computed.

Merging writes ``W0 + delta_W`` into the base weight. A base layer that cannot hold it (e.g. a
quantized weight) says so by declaring ``mergeable = False`` (and optionally ``mergeable_reason``);
:func:`merge_refusal` reads that protocol and ``merge``/``merge_lora`` then refuse before writing.

Analysis of learned updates (LoRA paper, section 7): :func:`lora_from_update` (the best rank-r
factors of an update, by truncated SVD) and :func:`amplification_factor`.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from lora_edu._checks import check_float, check_int
from lora_edu._utils import count_parameters, is_linear_like, linear_shape, replace_submodule

__all__ = [
    "LoRALinear", "add_lora", "amplification_factor", "base_shape", "count_parameters", "load_lora", "lora_from_update",
    "lora_layers", "lora_state_dict", "mark_only_lora_as_trainable", "matches", "merge_lora", "merge_refusal",
    "save_lora",
]

def base_shape(base: nn.Module) -> tuple[int, int, bool]:
    """``(in_features, out_features, fan_in_fan_out)`` of the layer LoRA wraps.

    ``nn.Linear`` (weight (out, in)), GPT-2's ``Conv1D`` (weight (in, out): ``fan_in_fan_out=True``),
    or any module with integer ``in_features``/``out_features`` and a ``weight`` that computes
    ``x @ W.T + b`` (e.g. a quantized linear layer). Raises ``TypeError`` naming ``base`` otherwise.
    """
    try:
        return linear_shape(base)
    except TypeError as exc:
        raise TypeError(f"base must be a linear layer: {exc}") from None


def merge_refusal(base: nn.Module) -> str | None:
    """Why the update cannot be written into ``base.weight``, or None if it can.

    The protocol: a base layer whose weight cannot absorb ``W0 + delta W`` (e.g. a quantized weight,
    where rounding would erase the small update) declares ``mergeable = False`` and may explain
    why in ``mergeable_reason``. A layer that declares nothing is mergeable, unless it declares the
    older ``is_quantized = True``.
    """
    declared = getattr(base, "mergeable", None)
    quantized = bool(getattr(base, "is_quantized", False))
    if declared is True or (declared is None and not quantized):
        return None
    reason = getattr(base, "mergeable_reason", None)
    if reason:
        return reason
    if quantized:
        return ("a quantized base cannot hold the update: rounding would erase it; "
                "dequantize the base first (QLoRA merges into the dequantized weight)")
    return f"{type(base).__name__} declares mergeable = False"


class LoRALinear(nn.Module):
    """A frozen ``base`` layer plus a trainable rank-``r`` update ``scaling * B @ A``.

    Args:
        base: ``nn.Linear`` (weight (out, in)), GPT-2 ``Conv1D`` (weight (in, out), handled like
            PEFT's ``fan_in_fan_out=True``) or another linear layer (see :func:`base_shape`). Its
            parameters are frozen. A base that declares ``mergeable = False`` trains normally but
            refuses :meth:`merge` (see :func:`merge_refusal`).
        r: rank, >= 1.
        alpha: scaling numerator, > 0; ``scaling = alpha / r`` (``alpha / sqrt(r)`` if ``use_rslora``).
        dropout: probability in [0, 1) applied to the input of the LoRA path only.
        use_rslora: rank-stabilised scaling (Kalajdzievski, 2023).
    """

    def __init__(self, base: nn.Module, r: int, alpha: float, dropout: float = 0.0, use_rslora: bool = False):
        super().__init__()
        if isinstance(base, LoRALinear):
            raise ValueError("base is already a LoRALinear; wrapping a layer twice would stack two adapters")
        in_features, out_features, self.fan_in_fan_out = base_shape(base)
        self.r = check_int(r, "r", 1)
        if self.r > min(in_features, out_features):  # allowed (PEFT allows it) but wasteful: say so
            warnings.warn(
                f"r={self.r} exceeds min(in_features, out_features)={min(in_features, out_features)}: B @ A cannot "
                "have rank above that, so the extra parameters are wasted",
                stacklevel=2,
            )
        self.alpha = check_float(alpha, "alpha", 0.0, lo_open=True)
        dropout = check_float(dropout, "dropout", 0.0, 1.0, hi_open=True)
        self.scaling = self.alpha / (math.sqrt(self.r) if use_rslora else self.r)
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(self.r, in_features, dtype=w.dtype, device=w.device))
        self.lora_B = nn.Parameter(torch.zeros(out_features, self.r, dtype=w.dtype, device=w.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear, loralib and PEFT
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    @property
    def in_features(self) -> int:
        return self.lora_A.shape[1]

    @property
    def out_features(self) -> int:
        return self.lora_B.shape[0]

    def delta_weight(self) -> torch.Tensor:
        """``scaling * B @ A``, shape (out_features, in_features) (nn.Linear layout)."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base(x)
        if self.merged:  # the update is already inside base.weight
            return result
        return result + (self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling

    def _signed_update(self, sign: float) -> None:
        refusal = merge_refusal(self.base)
        if refusal is not None:
            raise TypeError(f"cannot merge into this {type(self.base).__name__}: {refusal}")
        delta = self.delta_weight().detach()
        if not torch.isfinite(delta).all():
            raise ValueError("the LoRA update contains NaN or inf; refusing to write it into the base weight")
        with torch.no_grad():
            self.base.weight += sign * (delta.T if self.fan_in_fan_out else delta)

    def merge(self) -> None:
        """Add the update into ``base.weight`` (W0 + scaling B A): no extra matmuls at inference.

        Raises ``TypeError`` if the base refuses (``mergeable = False``) and ``ValueError`` if the
        update holds NaN or inf; in both cases nothing is written.
        """
        if self.merged:
            warnings.warn("merge(): this LoRALinear is already merged; nothing done", stacklevel=2)
            return
        self._signed_update(+1.0)
        self.merged = True

    def unmerge(self) -> None:
        """Subtract the update from ``base.weight`` again, restoring W0 (up to float rounding)."""
        if not self.merged:
            warnings.warn("unmerge(): this LoRALinear is not merged; nothing done", stacklevel=2)
            return
        self._signed_update(-1.0)
        self.merged = False

    def extra_repr(self) -> str:
        return (
            f"r={self.r}, alpha={self.alpha:g}, scaling={self.scaling:g}, "
            f"A={tuple(self.lora_A.shape)}, B={tuple(self.lora_B.shape)}, merged={self.merged}"
        )


def matches(name: str, target_modules: str | Iterable[str]) -> bool:
    """PEFT's rule: a string is a regex that must match the whole name; a list entry matches a module
    whose name equals it or ends with ``"." + entry``."""
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, name) is not None
    return any(name == t or name.endswith("." + t) for t in target_modules)


def add_lora(
    model: nn.Module,
    target_modules: str | Iterable[str],
    r: int,
    alpha: float,
    dropout: float = 0.0,
    use_rslora: bool = False,
) -> nn.Module:
    """Wrap every module of ``model`` whose name matches ``target_modules`` in a :class:`LoRALinear`.

    In place; returns ``model``. Raises ``ValueError`` if nothing matches (with the names that
    could) or if a matched module already is a LoRALinear (e.g. the cell was run twice), and
    ``TypeError`` if a matched module is neither ``nn.Linear`` nor GPT-2 ``Conv1D``.
    """
    if not isinstance(target_modules, str):
        target_modules = list(target_modules)
        if not target_modules or not all(isinstance(t, str) and t for t in target_modules):
            raise ValueError("target_modules must be a regex string or a non-empty list of module names")
    found = [(n, m) for n, m in model.named_modules() if n and matches(n, target_modules)]
    if not found:
        candidates = sorted({n.split(".")[-1] for n, m in model.named_modules() if is_linear_like(m)})
        raise ValueError(
            f"target_modules {target_modules!r} matched no module; layers that could be targeted: {candidates}"
        )
    for name, module in found:
        if isinstance(module, LoRALinear):
            raise ValueError(f"module {name!r} already has LoRA (did you run the wrapping cell twice?)")
        if not is_linear_like(module):
            raise TypeError(f"module {name!r} is a {type(module).__name__}, not a linear layer LoRA can wrap "
                            "(torch.nn.Linear, GPT-2 Conv1D, or a module with in_features/out_features and a weight)")
    for name, module in found:
        replace_submodule(model, name, LoRALinear(module, r, alpha, dropout, use_rslora))
    return model


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """All LoRALinear modules of ``model`` by name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def mark_only_lora_as_trainable(model: nn.Module, bias: str = "none") -> nn.Module:
    """Freeze everything except ``lora_A``/``lora_B`` (and biases per ``bias``, as loralib/PEFT).

    ``bias``: ``"none"`` (no bias trains), ``"all"`` (every bias trains), ``"lora_only"`` (only the
    biases of layers that have LoRA).
    """
    if bias not in ("none", "all", "lora_only"):
        raise ValueError(f"bias must be 'none', 'all' or 'lora_only', got {bias!r}")
    if not lora_layers(model):
        raise ValueError("model has no LoRALinear layers; call add_lora first")
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name.rsplit(".", 1)[-1])
    if bias == "all":
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.requires_grad_(True)
    elif bias == "lora_only":
        for layer in lora_layers(model).values():
            if getattr(layer.base, "bias", None) is not None:
                layer.base.bias.requires_grad_(True)
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Merge every LoRALinear and replace it by its (updated) base layer; in place, returns ``model``.

    If any layer's base refuses a merge (see :func:`merge_refusal`), raises ``TypeError`` before
    changing anything.
    """
    layers = lora_layers(model)
    if not layers:
        raise ValueError("model has no LoRALinear layers to merge")
    refusals = {name: merge_refusal(layer.base) for name, layer in layers.items()}
    refusals = {name: why for name, why in refusals.items() if why is not None}
    if refusals:  # checked before anything is written: a refused merge leaves the model as it was
        name, why = next(iter(refusals.items()))
        raise TypeError(f"cannot merge {len(refusals)} of {len(layers)} LoRA layers, e.g. {name!r}: {why}")
    for name, layer in layers.items():
        if not layer.merged:
            layer.merge()
        replace_submodule(model, name, layer.base)
    return model


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter tensors (``...lora_A``, ``...lora_B``), detached copies."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items() if k.rsplit(".", 1)[-1] in ("lora_A", "lora_B")}
    if not sd:
        raise ValueError("model has no LoRA parameters; call add_lora first")
    return sd


def save_lora(model: nn.Module, path: str | Path, *, overwrite: bool = False) -> Path:
    """Save the adapter alone (safetensors) with its r/alpha/scaling in the file's metadata.

    Refuses to replace an existing file unless ``overwrite=True``.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    layers = lora_layers(model)
    meta = {n: {"r": m.r, "alpha": m.alpha, "scaling": m.scaling} for n, m in layers.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in lora_state_dict(model).items()}, str(path),
              metadata={"format": "pt", "lora_edu": json.dumps(meta)})
    return path


def load_lora(model: nn.Module, path: str | Path) -> nn.Module:
    """Load an adapter saved by :func:`save_lora` into ``model`` (which must already have LoRA layers
    with the same names, ranks and shapes). Every mismatch is reported by name before anything is
    written, so a failed load leaves the model unchanged."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no adapter file at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            meta = json.loads((f.metadata() or {}).get("lora_edu", "{}"))
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise ValueError(f"{path} is not a readable safetensors adapter ({exc})") from exc
    own = dict(model.named_parameters())
    problems = []
    for k, t in tensors.items():
        if k not in own:
            problems.append(f"{k}: not in the model (different target_modules?)")
        elif own[k].shape != t.shape:
            problems.append(f"{k}: file has shape {tuple(t.shape)}, model has {tuple(own[k].shape)}")
    missing = [k for k in lora_state_dict(model) if k not in tensors] if lora_layers(model) else []
    problems += [f"{k}: in the model but not in the file" for k in missing]
    for name, info in meta.items():
        layer = lora_layers(model).get(name)
        if layer is not None and not math.isclose(layer.scaling, info["scaling"]):
            problems.append(f"{name}: file was trained with scaling {info['scaling']:g}, model has {layer.scaling:g}")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... ({len(problems)} problems)" if len(problems) > 5 else "")
        raise ValueError(f"adapter {path.name} does not fit this model: {shown}")
    with torch.no_grad():
        for k, t in tensors.items():
            own[k].copy_(t)
    return model


# --- analysis of learned updates (LoRA paper, section 7) ------------------------------------------


def lora_from_update(delta_W: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The best rank-``r`` factors of an update: ``B`` (d x r), ``A`` (r x k) with ``B @ A`` the truncated SVD.

    By Eckart-Young no rank-r product is closer to ``delta_W`` in Frobenius (or spectral) norm.
    Sigma_r is split evenly, ``B = U_r sqrt(Sigma_r)`` and ``A = sqrt(Sigma_r) V_r^T``, so both
    factors have the same scale (as a trained adapter would).
    """
    if not torch.is_tensor(delta_W) or delta_W.ndim != 2:
        raise TypeError(f"delta_W must be a 2-D tensor (d x k), got {type(delta_W).__name__}")
    r = check_int(r, "r", 1, min(delta_W.shape))
    U, S, Vh = torch.linalg.svd(delta_W, full_matrices=False)
    root = S[:r].sqrt()
    return U[:, :r] * root, root[:, None] * Vh[:r]


def amplification_factor(delta_W: torch.Tensor, W: torch.Tensor, r: int) -> float:
    """``||delta_W||_F / ||U_r^T W V_r||_F``, with U_r, V_r the top-r singular vectors of ``delta_W``.

    The LoRA paper's section 7.3 measure: the denominator is how strongly the pretrained ``W``
    already acts in the directions the update uses. A large factor means the update amplifies
    directions that ``W`` barely used. Both matrices are (d x k), in the same layout.
    """
    if delta_W.shape != W.shape or delta_W.ndim != 2:
        raise ValueError(f"delta_W and W must be matrices of one shape, got {tuple(delta_W.shape)} "
                         f"and {tuple(W.shape)}")
    r = check_int(r, "r", 1, min(W.shape))
    U, _, Vh = torch.linalg.svd(delta_W, full_matrices=False)
    projected = U[:, :r].T @ W @ Vh[:r].T  # (r x r): W seen through the update's own directions
    return float(torch.linalg.norm(delta_W) / torch.linalg.norm(projected))
