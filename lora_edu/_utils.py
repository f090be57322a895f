"""Small utilities shared by the teaching modules (private: notebooks use the public modules).

* :func:`progress` - the one progress bar of the course (plain text, so a committed notebook stores
  the finished bar, never a frozen "0%" widget);
* :func:`quiet_libraries` - silence, once and at their source, library messages that are known to
  be harmless here, so they neither alarm a learner nor clutter committed notebooks.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

# (logger name, text that identifies the harmless message, why it is harmless)
HARMLESS_MESSAGES: tuple[tuple[str, str, str], ...] = (
    ("bitsandbytes.backends.cpu.ops", "kernels-community",
     "bitsandbytes looks for an optional faster CPU kernel on the hub; its own CPU code is used instead"),
    ("transformers.modeling_utils", "loss_type=",
     "GPT-2's config carries no loss_type; transformers picks the causal-LM loss, which is what we use"),
)


# (warning category, start of the message, why it is harmless): Python warnings, not log records
HARMLESS_WARNINGS: tuple[tuple[type[Warning], str, str], ...] = (
    (FutureWarning, "`is_gradient_checkpointing` is deprecated",
     "peft's get_peft_model reads a transformers attribute that transformers renamed; nothing changes for us"),
)


class _DropMatching(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


_quieted = False


def quiet_libraries() -> None:
    """Drop the messages in :data:`HARMLESS_MESSAGES`, the warnings in :data:`HARMLESS_WARNINGS` and
    transformers' weight-loading bars.

    Idempotent. Only exactly these messages are dropped: every other warning still shows.
    """
    global _quieted
    if _quieted:
        return
    for name, text, _why in HARMLESS_MESSAGES:
        logging.getLogger(name).addFilter(_DropMatching(text))
    for category, text, _why in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=re.escape(text), category=category)
    if "transformers" in sys.modules or _importable("transformers"):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights: 0%| 0/52" would be stored in notebooks
    _quieted = True


def _importable(name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(name) is not None


def progress(iterable: Iterable[T], desc: str, total: int | None = None, disable: bool = False) -> Iterator[T]:
    """A plain-text progress bar on stdout (tqdm), for loops that take more than a second.

    Text rather than a widget: a notebook saved after the loop then shows the finished bar
    ("100%| 40/40"), where a widget bar would be stored as its first frame ("0%| 0/40").
    """
    from tqdm.std import tqdm

    bar = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}]"
    return iter(tqdm(iterable, desc=desc, total=total, disable=disable, file=sys.stdout, ncols=90,
                     mininterval=0.5, delay=0.5, bar_format=bar))


# --- idioms shared by the torch modules (lora, quant, finetune, variants, bench) --------------------


def is_conv1d(module) -> bool:
    """transformers' GPT-2 ``Conv1D`` (weight stored (in, out)), detected without importing transformers."""
    return type(module).__name__ == "Conv1D" and type(module).__module__.startswith("transformers")


def linear_shape(module) -> tuple[int, int, bool]:
    """``(in_features, out_features, fan_in_fan_out)`` of a linear-like layer.

    Accepts ``nn.Linear`` (weight (out, in)), GPT-2's ``Conv1D`` (weight (in, out):
    ``fan_in_fan_out=True``), and any module that declares integer ``in_features`` and
    ``out_features`` and computes ``x @ W.T + b`` (e.g. ``lora_edu.quant.QuantizedLinear``).
    """
    from torch import nn

    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features, False
    if is_conv1d(module):
        in_features, out_features = module.weight.shape
        return in_features, out_features, True
    in_f, out_f = getattr(module, "in_features", None), getattr(module, "out_features", None)
    if isinstance(in_f, int) and isinstance(out_f, int) and hasattr(module, "weight"):
        return in_f, out_f, False
    raise TypeError(
        "expected a linear layer (torch.nn.Linear, a transformers GPT-2 Conv1D, or a module with integer "
        f"in_features/out_features and a weight), got {type(module).__name__}"
    )


def is_linear_like(module) -> bool:
    """True for the layers :func:`linear_shape` accepts."""
    try:
        linear_shape(module)
    except TypeError:
        return False
    return True


def replace_submodule(model, name: str, new) -> None:
    """Put ``new`` at the dotted path ``name`` inside ``model`` (e.g. "transformer.h.0.attn.c_attn")."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def unique_tensors(tensors):
    """The tensors of an iterable, each once (tied weights, e.g. GPT-2's wte and lm_head, count once)."""
    seen = set()
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            yield t


def count_parameters(model) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts of ``model``, each tensor counted once."""
    trainable = total = 0
    for p in unique_tensors(model.parameters()):
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


def tensor_bytes(tensors) -> int:
    """Bytes held by the given tensors, each counted once."""
    return sum(t.numel() * t.element_size() for t in unique_tensors(tensors))


def optimizer_state_bytes(optimizer) -> int:
    """Bytes of an optimizer's per-parameter state tensors (Adam: the two moments), without the step counters."""
    import torch

    return sum(t.numel() * t.element_size() for state in optimizer.state.values()
               for key, t in state.items() if torch.is_tensor(t) and key != "step")
