"""Notebook 06's fine-tune as a script: PEFT LoRA on GPT-2 for the category task
(:func:`lora_edu.corpus.category_task`: "What kind of thing was counted?").

    python -m lora_edu.finetune --out runs/r8                       # the model LORA_EDU_MODEL names
    python -m lora_edu.finetune --model lora-edu/tiny-gpt2 --out runs/r8 --r 8
    torchrun --standalone --nproc_per_node 2 -m lora_edu.finetune --out runs/ddp --lora-r 8   # DDP, gloo on CPU
    torchrun --standalone --nproc_per_node 8 -m lora_edu.finetune --out runs/ddp --lora-r 8   # 8 GPUs, nccl

(Under torchrun spell the rank ``--lora-r``: torchrun takes ``--r`` for an abbreviation of its own options.)

Under torchrun every process trains on its own slice of each global batch, DDP averages the
gradients, so all processes hold identical LoRA weights after every step. Process 0 alone saves
``adapter_model.safetensors`` + ``adapter_config.json`` and writes ``metrics.json``: held-out exact
match before and after training, by kind, next to the chance level (1/8). If the loss becomes NaN or
inf, training stops and the last good adapter (from before that step) is kept and saved.

The defaults (learning rate, steps, batch) are the notebook's, from :func:`default_hparams`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from lora_edu._checks import check_float, check_int
from lora_edu._utils import count_parameters, optimizer_state_bytes, progress
from lora_edu.corpus import LABELS, TaskExample, category_task, chance_level


def pick_device() -> torch.device:
    """CUDA if present, then Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# ------------------------------------------------------------------------------------------------
# Batches and the objective
# ------------------------------------------------------------------------------------------------


def encode(examples: list[TaskExample], tokenizer, device=None) -> dict[str, torch.Tensor]:
    """A left-padded batch: ``input_ids``, ``attention_mask``, ``position_ids`` and ``labels``.

    Shapes ``(batch, width)``. ``labels`` is -100 except on the target and the end-of-text token
    after it, so the loss is the log-likelihood of the answer only. Left padding puts every answer
    at the end of its row, so the answers of a whole batch sit in the last few columns (see
    :func:`answer_loss`); ``position_ids`` count from each row's first real token, so a padded row
    is computed exactly as the same row alone.
    """
    eos = tokenizer.eos_token_id
    rows, labels = [], []
    for ex in examples:
        p = tokenizer(ex.prompt)["input_ids"]
        t = tokenizer(ex.target)["input_ids"] + [eos]
        rows.append(p + t)
        labels.append([-100] * len(p) + t)
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), eos, dtype=torch.long)
    lab = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, lb) in enumerate(zip(rows, labels, strict=True)):
        start = width - len(r)
        ids[i, start:], lab[i, start:], mask[i, start:] = torch.tensor(r), torch.tensor(lb), 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    batch = {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "labels": lab}
    return {k: v.to(device) for k, v in batch.items()} if device is not None else batch


def answer_loss(model, batch: dict[str, torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """The fine-tuning objective: negative log-likelihood of the answer tokens (mean or sum).

    The same number as ``model(**batch).loss``, computed without the output layer's logits for the
    prompt: the model returns its last hidden states and no logits (``logits_to_keep`` selects
    none), and the output layer is applied to the few positions that predict an answer token.
    GPT-2's output layer is 50,257 wide, so this saves most of the compute of a small model and
    about a third of gpt2's.
    """
    labels = batch["labels"][:, 1:]  # the token at t + 1 is predicted from position t
    none = torch.zeros(0, dtype=torch.long, device=labels.device)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                position_ids=batch["position_ids"], logits_to_keep=none, output_hidden_states=True)
    where = labels != -100
    hidden = out.hidden_states[-1][:, :-1][where]  # (answer tokens, n_embd), after the final layer norm
    logits = _unwrap(model).get_output_embeddings()(hidden)
    return torch.nn.functional.cross_entropy(logits.float(), labels[where], reduction=reduction)


def _unwrap(model):
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


@torch.no_grad()
def heldout_loss(model, tokenizer, examples: list[TaskExample], batch_size: int = 64) -> float:
    """Mean negative log-likelihood per answer token on ``examples`` (perplexity = exp of it)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        batch = encode(examples[i : i + batch_size], tokenizer, device)
        total += answer_loss(model, batch, reduction="sum").item()
        count += int((batch["labels"] != -100).sum())
    return total / count


# ------------------------------------------------------------------------------------------------
# The task metric: greedy answers, exact match by kind, next to chance
# ------------------------------------------------------------------------------------------------


@torch.no_grad()
def generate_answers(model, tokenizer, examples: list[TaskExample], max_new_tokens: int = 4,
                     batch_size: int = 64) -> list[str]:
    """Greedy answers (left-padded batches), cut at the first newline or end-of-text, stripped."""
    model.eval()
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    answers = []
    try:
        for i in range(0, len(examples), batch_size):
            prompts = [ex.prompt for ex in examples[i : i + batch_size]]
            enc = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.eos_token_id)
            for row in out[:, enc["input_ids"].shape[1]:]:
                answers.append(tokenizer.decode(row, skip_special_tokens=True).split("\n")[0].strip())
    finally:
        tokenizer.padding_side = side
    return answers


def label_token_ids(tokenizer) -> list[int]:
    """The GPT-2 token of each label word of :data:`lora_edu.corpus.LABELS` (" fruit", ...)."""
    ids = [tokenizer(" " + label)["input_ids"] for label in LABELS]
    if any(len(i) != 1 for i in ids):
        raise ValueError(f"every label must be one token; got {dict(zip(LABELS, ids, strict=True))}")
    return [i[0] for i in ids]


@torch.no_grad()
def label_logprobs(model, tokenizer, examples: list[TaskExample], batch_size: int = 64) -> torch.Tensor:
    """log P(label word | prompt) for every example and label: shape ``(len(examples), len(LABELS))``.

    The probabilities of the next token over GPT-2's whole vocabulary, read at the 8 label tokens:
    the model's ranking of the labels, whatever it would have generated.
    """
    model.eval()
    device = next(model.parameters()).device
    ids = torch.tensor(label_token_ids(tokenizer), device=device)
    rows = []
    for i in range(0, len(examples), batch_size):
        batch = encode(examples[i : i + batch_size], tokenizer, device)
        prompt_len = torch.tensor([len(tokenizer(ex.prompt)["input_ids"]) for ex in examples[i : i + batch_size]],
                                  device=device)
        none = torch.zeros(0, dtype=torch.long, device=device)  # no logits: the output layer is applied below
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    position_ids=batch["position_ids"], logits_to_keep=none, output_hidden_states=True)
        # left padding: the answer's first token sits len(target) + 1 (eos) columns before the end
        n_after = batch["attention_mask"].sum(-1) - prompt_len
        last_prompt = batch["input_ids"].shape[1] - n_after - 1
        hidden = out.hidden_states[-1][torch.arange(len(last_prompt), device=device), last_prompt]
        logits = _unwrap(model).get_output_embeddings()(hidden).float()
        rows.append(torch.log_softmax(logits, -1)[:, ids])
    return torch.cat(rows).cpu()


def majority_baseline(train: list[TaskExample], test: list[TaskExample]) -> tuple[str, float]:
    """The label most frequent in ``train`` and the exact match of always answering it on ``test``."""
    from collections import Counter

    label = Counter(ex.answer for ex in train).most_common(1)[0][0]
    return label, sum(ex.answer == label for ex in test) / len(test)


def task_metrics(model, tokenizer, examples: list[TaskExample], *, probe: bool = False) -> dict:
    """Greedy answers and the ranking of the labels, scored overall and by kind, next to chance.

    Returns ``exact_match`` (the greedy answer is the right label word and nothing else),
    ``label_rate`` (the answer is one of the 8 label words, right or wrong), ``ranked`` (the right
    label has the highest probability of the 8, the answer generated or not), ``chance`` (1/8),
    ``by_kind`` ({kind: {"exact_match", "ranked", "n"}}) and the ``answers``. With ``probe=True``
    (:func:`lora_edu.corpus.knowledge_probe`, prose that goes on after the label) only the first
    word of the answer is compared.
    """
    answers = generate_answers(model, tokenizer, examples)
    if probe:
        answers = [a.split(".")[0].split(" ")[0].strip() for a in answers]
    right = [a == ex.answer for a, ex in zip(answers, examples, strict=True)]
    best = label_logprobs(model, tokenizer, examples).argmax(-1).tolist()
    ranked = [LABELS[b] == ex.answer for b, ex in zip(best, examples, strict=True)]
    by_kind = {}
    for kind in LABELS:
        idx = [i for i, ex in enumerate(examples) if ex.kind == kind]
        if idx:
            by_kind[kind] = {"exact_match": sum(right[i] for i in idx) / len(idx),
                             "ranked": sum(ranked[i] for i in idx) / len(idx), "n": len(idx)}
    return {
        "exact_match": sum(right) / len(examples),
        "label_rate": sum(a in LABELS for a in answers) / len(examples),
        "ranked": sum(ranked) / len(examples),
        "chance": chance_level(),
        "by_kind": by_kind,
        "answers": answers,
    }


def format_metrics(metrics: dict, label: str) -> str:
    """The overall line (exact match and label ranking next to chance), then one line per kind."""
    lines = [f"{label}: exact match {metrics['exact_match']:6.1%}, best-ranked label {metrics['ranked']:6.1%} "
             f"(chance {metrics['chance']:.1%}); answers that are a label word {metrics['label_rate']:6.1%}"]
    for kind, m in metrics["by_kind"].items():
        lines.append(f"    {kind:10s} exact match {m['exact_match']:6.1%}, ranked {m['ranked']:6.1%} of {m['n']:3d}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Training and its cost
# ------------------------------------------------------------------------------------------------


def lora_params(model) -> dict[str, torch.Tensor]:
    """The trainable LoRA tensors of a PEFT (or DDP-wrapped PEFT) model."""
    return {n: p for n, p in model.named_parameters() if "lora_" in n}


class _PeakMemory:
    """Peak memory while the ``with`` block runs: on a GPU ``torch.cuda.max_memory_allocated``
    (above what was allocated before); on a CPU the peak rise of the process's resident memory,
    sampled every ``interval`` seconds by a background thread."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak = interval, 0

    def __enter__(self):
        self.cuda = torch.cuda.is_available()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        import psutil

        proc = psutil.Process()
        self.base = proc.memory_info().rss
        self._max = self.base
        self._done = threading.Event()

        def sample():
            while not self._done.is_set():
                self._max = max(self._max, proc.memory_info().rss)
                self._done.wait(self.interval)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self._done.set()
            self._thread.join()
            self.peak = max(0, self._max - self.base)
        return False


def measure_peak_memory(fn, interval: float = 0.002):
    """Run ``fn()`` and return ``(result, peak_bytes)``; see :class:`_PeakMemory`."""
    with _PeakMemory(interval) as mem:
        result = fn()
    return result, mem.peak


def train(
    model,
    tokenizer,
    train_examples: list[TaskExample],
    *,
    steps: int,
    batch_size: int = 16,
    lr: float = 2e-3,
    seed: int = 0,
    progress_bar: bool = True,
    process_index: int = 0,
    world_size: int = 1,
    label: str = "fine-tuning",
) -> dict:
    """Plain PyTorch loop (AdamW, linear warm-up then cosine decay) over the trainable parameters.

    ``batch_size`` is the *global* batch: with ``world_size`` processes, process
    ``process_index`` takes its own ``batch_size // world_size`` examples of it. Stops at the
    first non-finite loss and restores the trainable parameters from before that step.

    Returns the history: ``loss`` and ``step_seconds`` per step, ``stopped`` (None or the reason),
    and the cost of the run for :func:`cost_receipt`: ``steps``, ``seconds``, ``tokens`` (real
    tokens this process read, padding excluded), ``peak_memory_bytes``, ``trainable``,
    ``optimizer_state_bytes`` (AdamW's two moments), ``gradient_bytes`` (one gradient per
    trainable parameter) and ``device``.
    """
    steps = check_int(steps, "steps", 1)
    world_size = check_int(world_size, "world_size", 1)
    process_index = check_int(process_index, "process_index", 0, world_size - 1)
    batch_size = check_int(batch_size, "batch_size", world_size)
    lr = check_float(lr, "lr", 0.0, lo_open=True)
    if batch_size % world_size:
        raise ValueError(f"batch_size ({batch_size}) must be divisible by the number of processes ({world_size})")
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warm = max(1, steps // 10)

    def schedule(s: int) -> float:  # linear warm-up, then cosine decay to 0
        return (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed + process_index)  # dropout masks differ per process, as they should
    history = {"loss": [], "step_seconds": [], "stopped": None, "tokens": 0}
    share = batch_size // world_size
    model.train()
    start = time.perf_counter()
    with _PeakMemory() as mem:
        for step in progress(range(steps), desc=label, disable=not progress_bar or process_index != 0):
            t0 = time.perf_counter()
            idx = torch.randint(0, len(train_examples), (batch_size,), generator=gen)
            idx = idx[process_index * share:(process_index + 1) * share]
            batch = encode([train_examples[i] for i in idx], tokenizer, device)
            good = [p.detach().clone() for p in params]
            loss = answer_loss(model, batch)
            if not torch.isfinite(loss):
                _restore(params, good)
                history["stopped"] = (f"non-finite loss ({loss.item()}) at step {step}; "
                                      f"kept the weights from step {step - 1}")
                break
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            if not all(torch.isfinite(p).all() for p in params):
                _restore(params, good)
                history["stopped"] = f"non-finite weights after step {step}; kept the weights from before it"
                break
            history["loss"].append(loss.item())
            history["tokens"] += int(batch["attention_mask"].sum())
            history["step_seconds"].append(time.perf_counter() - t0)
    model.eval()
    history.update(steps=len(history["loss"]), seconds=time.perf_counter() - start, peak_memory_bytes=mem.peak,
                   trainable=count_parameters(model)[0], optimizer_state_bytes=optimizer_state_bytes(opt),
                   gradient_bytes=sum(p.numel() * p.element_size() for p in params), device=str(device))
    return history


def _restore(params, saved) -> None:
    with torch.no_grad():
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)


def cost_receipt(history: dict, label: str = "") -> str:
    """What a training run cost, on one line: steps, seconds, tokens/s, trainable parameters, the
    memory that training adds for them (gradients + AdamW's two moments, computed), the measured
    peak memory and the device (from :func:`train`'s history).

    The measured figure is the GPU's peak allocation on a GPU. On a CPU it is the peak rise of the
    process's resident memory: only pages newly taken from the system count, so a small run that
    reuses memory the process already holds can show +0 MiB; the computed figure does not depend
    on that.
    """
    secs = history["seconds"]
    mem = history["peak_memory_bytes"] / 2**20
    state = (history.get("gradient_bytes", 0) + history["optimizer_state_bytes"]) / 2**20
    measured = (f"peak GPU memory {mem:,.0f} MiB" if history["device"].startswith("cuda")
                else f"resident memory +{mem:,.0f} MiB")
    return (f"cost{' of ' + label if label else ''}: {history['steps']} steps in {secs:.1f} s "
            f"({history['tokens'] / max(secs, 1e-9):,.0f} tokens/s) | trainable {history['trainable']:,} | "
            f"gradients + AdamW state {state:,.2f} MiB | {measured} | {history['device']}")


# ------------------------------------------------------------------------------------------------
# Hyper-parameters and the time budget
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HParams:
    """Learning rates, steps and batch for notebook 06 and the CLI, and where they come from."""

    lora_lr: float
    full_lr: float
    batch_size: int
    steps: int
    source: str


def default_hparams(config) -> HParams:
    """Notebook 06's settings for a GPT-2 of this width (``config.n_embd``).

    The LoRA paper fine-tunes GPT-2 M on E2E with lr 2e-4, batch 8, r=4, alpha=32 (alpha/r = 8)
    for 5 epochs (Hu et al. 2021, Table 11). With AdamW each step moves B and A by about lr, so
    the update (alpha/r) B A moves by about (alpha/r) * lr: the paper's 2e-4 at alpha/r = 8 is
    8e-4 at the course's alpha/r = 2 (r=8, alpha=16). That is the rate for gpt2's width 768;
    narrower models take proportionally larger steps (Adam's update of a width-n matrix grows
    with n), so lr = 8e-4 * 768 / n_embd. Full fine-tuning uses a tenth of the LoRA rate, the
    usual ratio (LoRA works best at a higher rate than full fine-tuning).
    On the offline model (width 128: LoRA 4.8e-3, full 4.8e-4) this is a rate at which the task is
    learned but not a tuned optimum: measured with 150 steps, r=8 on c_attn reaches held-out exact
    match 0.99 at 4.8e-3 and about 1.0 at 3e-3 but only 0.4 to 0.9 at 2e-3, and forgetting (held-out
    text perplexity 2.8 before) grows steeply with the rate: about 5-7 at 2e-3, 23 at 3e-3, 47 at 4.8e-3.
    Notebook 06 discusses it in section 8; its exercise 6 measures it.
    """
    width = check_int(getattr(config, "n_embd", None), "config.n_embd", 1)
    scale = 768 / width
    return HParams(lora_lr=8e-4 * scale, full_lr=8e-5 * scale, batch_size=16, steps=150,
                   source="Hu et al. 2021 Table 11 (GPT-2 M: lr 2e-4 at alpha/r = 8), rescaled to alpha/r = 2 "
                          f"and width {width}")


def plan_steps(seconds_per_step: float, budget_seconds: float, *, at_least: int, at_most: int) -> int:
    """How many steps fit in ``budget_seconds`` at ``seconds_per_step``, clipped to
    ``[at_least, at_most]``."""
    seconds_per_step = check_float(seconds_per_step, "seconds_per_step", 0.0, lo_open=True)
    budget_seconds = check_float(budget_seconds, "budget_seconds", 0.0)
    return int(min(at_most, max(at_least, budget_seconds // seconds_per_step)))


def time_steps(model, tokenizer, examples: list[TaskExample], *, batch_size: int = 16, n: int = 3) -> float:
    """Median seconds of one training step (forward, backward, no optimizer update) on ``model``;
    the gradients are discarded, so the model is unchanged."""
    device = next(model.parameters()).device
    times = []
    model.train()
    for i in range(n + 1):
        batch = encode(examples[i * batch_size:(i + 1) * batch_size] or examples[:batch_size], tokenizer, device)
        t0 = time.perf_counter()
        answer_loss(model, batch).backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    model.zero_grad(set_to_none=True)
    model.eval()
    return sorted(times[1:])[len(times[1:]) // 2]  # the first call warms up


@dataclass(frozen=True)
class NotebookPlan:
    """How much notebook 06 trains and evaluates on this model and machine.

    ``steps`` for the main LoRA run, ``sweep_steps`` for each variant of the rank sweep (LoRA and
    full fine-tuning at equal steps), ``second_steps`` for the second adapter, ``ddp_steps`` for the
    torchrun cell, ``n_test`` held-out questions, ``text_paragraphs`` of pretraining text for
    perplexity, and the estimate the plan was sized by (None when the steps are fixed).
    """

    steps: int
    sweep_steps: int
    second_steps: int
    ddp_steps: int
    n_test: int
    text_paragraphs: int
    lora_step_seconds: float | None
    full_step_ratio: float
    budget_seconds: float | None
    why: str

    def estimate(self, lora_runs: int = 1, full_runs: int = 0, steps: int | None = None) -> str:
        """ "about N s" for that many runs (or "fixed steps" when the plan is not timed)."""
        if self.lora_step_seconds is None:
            return "fixed steps (the offline model; the same on every machine)"
        n = self.steps if steps is None else steps
        secs = n * self.lora_step_seconds * (lora_runs + self.full_step_ratio * full_runs)
        return f"about {secs:.0f} s ({n} steps x {self.lora_step_seconds:.2f} s per LoRA step)"


#: The offline model's plan: fixed, so that the notebook's results are deterministic under test.
FALLBACK_PLAN = NotebookPlan(steps=150, sweep_steps=150, second_steps=40, ddp_steps=10, n_test=200,
                             text_paragraphs=100,
                             lora_step_seconds=None, full_step_ratio=2.0, budget_seconds=None,
                             why="the offline model: fixed step counts")


def plan_notebook(model, tokenizer, examples: list[TaskExample], *, fixed: bool,
                  budget_seconds: float | None = None, batch_size: int = 16) -> NotebookPlan:
    """Size notebook 06's training to a time budget, from a measured LoRA step.

    ``fixed=True`` (the offline model) returns :data:`FALLBACK_PLAN` without timing anything.
    Otherwise one throw-away LoRA adapter is timed (:func:`time_steps`), full fine-tuning is
    taken as ``full_step_ratio`` LoRA steps (measured on gpt2 on a 2-core CPU: 1.9 s per LoRA step
    against 3.5 to 4.3 s per full step, batch 16), and the steps are those that fit
    ``budget_seconds`` of training: by default 270 s on a CPU (so that the whole notebook stays
    within about 10 minutes on a 2-core machine) and 600 s on a GPU, where the step caps bind.
    The notebook trains 1 + 5 LoRA variants (the sweep reuses the main run as its r=8), one full
    fine-tune, a second adapter and a short 2-process run; evaluation shrinks with the model's cost
    on a CPU.
    """
    if fixed:
        return FALLBACK_PLAN
    import copy

    device = next(model.parameters()).device
    gpu = device.type in ("cuda", "mps")
    budget = float(budget_seconds if budget_seconds is not None else (600 if gpu else 270))
    probe = add_peft_lora(copy.deepcopy(model), 8, 16, 0.0)
    seconds = time_steps(probe, tokenizer, examples, batch_size=batch_size)
    del probe
    ratio = FALLBACK_PLAN.full_step_ratio
    # 6 LoRA runs of `steps` + one full run (ratio x) + the second adapter (steps / 4) + DDP (steps / 10)
    units = 6 + ratio + 0.25 + 0.1
    steps = plan_steps(seconds * units, budget, at_least=20, at_most=400)
    cheap = gpu or seconds < 0.5
    return NotebookPlan(steps=steps, sweep_steps=steps, second_steps=max(10, steps // 4), ddp_steps=max(4, steps // 10),
                        n_test=200 if cheap else 48, text_paragraphs=100 if cheap else 30,
                        lora_step_seconds=seconds, full_step_ratio=ratio, budget_seconds=budget,
                        why=f"measured {seconds:.2f} s per LoRA step (batch {batch_size}) on {device.type}; "
                            f"{budget:.0f} s of training in all")


# ------------------------------------------------------------------------------------------------
# Adapters
# ------------------------------------------------------------------------------------------------


def add_peft_lora(model, r: int = 8, alpha: float = 16, dropout: float = 0.05, target_modules=("c_attn",)):
    """``get_peft_model`` with the course's LoraConfig for GPT-2 (``Conv1D``, so ``fan_in_fan_out=True``).

    ``target_modules`` is a list of module names or ``"all-linear"`` (every projection of every
    block, not the output layer).
    """
    from peft import LoraConfig, get_peft_model

    targets = target_modules if isinstance(target_modules, str) else list(target_modules)
    config = LoraConfig(task_type="CAUSAL_LM", r=check_int(r, "r", 1), lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=targets, fan_in_fan_out=True, bias="none")
    return get_peft_model(model, config)


def load_peft_adapter(base, folder: str | Path, adapter_name: str = "default"):
    """Load a PEFT adapter saved with ``save_pretrained`` onto ``base``, or raise a clear error.

    ``ValueError`` when the folder is not an adapter, the file is corrupt, or its shapes do not fit
    this base model (e.g. an adapter trained on gpt2 loaded onto a smaller model).
    """
    from peft import PeftModel

    folder = Path(folder)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        if not (folder / name).is_file():
            raise ValueError(f"{folder} is not a saved adapter: {name} is missing")
    try:
        return PeftModel.from_pretrained(base, str(folder), adapter_name=adapter_name)
    except Exception as exc:  # safetensors, peft and torch each raise their own types here
        msg = str(exc).split("\n")[0][:300]
        raise ValueError(f"adapter in {folder} cannot be loaded onto this {type(base).__name__}: "
                         f"{type(exc).__name__}: {msg}") from exc


def checksum(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 of the tensors' bytes in name order: equal iff the weights are bit-identical."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------
# The command line
# ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", default=None,
                        help="hub name, local folder, 'fallback' or lora-edu/tiny-gpt2 "
                             "(default: lora_edu.gpt2.course_model(), i.e. $LORA_EDU_MODEL, else gpt2)")
    parser.add_argument("--out", required=True, type=Path, help="folder for the adapter (must not hold one already)")
    # torchrun reads an abbreviated "--r" as one of its own options (--rdzv-..., --role, ...), so the
    # same option is also spelled --lora-r, which is what to write after `torchrun ... -m lora_edu.finetune`.
    parser.add_argument("--r", "--lora-r", dest="r", type=int, default=8, help="LoRA rank (under torchrun: --lora-r)")
    parser.add_argument("--alpha", type=float, default=16.0)
    parser.add_argument("--dropout", type=float, default=0.05)
    parser.add_argument("--target-modules", nargs="+", default=["c_attn"], help='module names, or "all-linear"')
    parser.add_argument("--steps", type=int, default=None, help="default: the notebook's (default_hparams)")
    parser.add_argument("--batch-size", type=int, default=None, help="global batch, split across processes")
    parser.add_argument("--lr", type=float, default=None, help="default: default_hparams for the model's width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--overwrite", action="store_true", help="replace an adapter already in --out")
    args = parser.parse_args(argv)

    world_size = int(os.environ.get("WORLD_SIZE", 1))
    process_index = int(os.environ.get("RANK", 0))
    device = pick_device()
    if (args.out / "adapter_model.safetensors").exists() and not args.overwrite:
        parser.error(f"{args.out} already holds an adapter; pass --overwrite to replace it")
    if world_size > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)

    from lora_edu._utils import quiet_libraries
    from lora_edu.gpt2 import load_gpt2

    quiet_libraries()
    base, tokenizer, source = (load_gpt2(args.model, verbose=process_index == 0) if args.model
                               else load_gpt2(verbose=process_index == 0))
    hp = default_hparams(base.config)
    steps, lr = args.steps or hp.steps, args.lr or hp.lora_lr
    batch_size = args.batch_size or hp.batch_size
    targets = args.target_modules[0] if args.target_modules == ["all-linear"] else args.target_modules
    task = category_task(n_test=args.n_test, seed=args.seed)
    base.to(device)
    before = task_metrics(base, tokenizer, task["test"]) if process_index == 0 else None
    torch.manual_seed(args.seed)  # identical LoRA initialisation in every process
    model = add_peft_lora(base, args.r, args.alpha, args.dropout, targets)
    train_model = model
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    history = train(train_model, tokenizer, task["train"], steps=steps, batch_size=batch_size, lr=lr,
                    seed=args.seed, process_index=process_index, world_size=world_size,
                    progress_bar=process_index == 0)

    sums = [checksum(lora_params(model))]
    if world_size > 1:
        import torch.distributed as dist

        gathered = [None] * world_size
        dist.all_gather_object(gathered, sums[0])
        sums = gathered
    if process_index == 0:
        args.out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(args.out))
        after = task_metrics(model, tokenizer, task["test"])
        metrics = {
            "model": str(source), "world_size": world_size, "device": str(device),
            "r": args.r, "target_modules": targets, "lr": lr, "batch_size": batch_size,
            "steps_done": history["steps"], "stopped": history["stopped"],
            "final_train_loss": history["loss"][-1] if history["loss"] else None,
            "heldout_loss": heldout_loss(model, tokenizer, task["test"]),
            "exact_match": after["exact_match"], "ranked": after["ranked"], "label_rate": after["label_rate"],
            "chance": after["chance"], "by_kind": after["by_kind"],
            "baseline": {k: before[k] for k in ("exact_match", "ranked", "label_rate", "chance", "by_kind")},
            "hparams_source": hp.source,
            "cost": {k: history[k] for k in ("steps", "seconds", "tokens", "peak_memory_bytes", "trainable",
                                             "optimizer_state_bytes", "device")},
            "rank_checksums": sums, "ranks_identical": len(set(sums)) == 1,
        }
        (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        print(format_metrics(before, "before"))
        print(format_metrics(after, "after "))
        print(cost_receipt(history, f"LoRA r={args.r}"))
        print(f"wrote {args.out / 'metrics.json'}")
    if world_size > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return 0


__all__ = ["HParams", "NotebookPlan", "add_peft_lora", "answer_loss", "checksum", "cost_receipt", "default_hparams",
           "encode", "format_metrics", "generate_answers", "heldout_loss", "load_peft_adapter", "lora_params",
           "measure_peak_memory", "pick_device", "plan_steps", "task_metrics", "time_steps", "train"]

if __name__ == "__main__":
    raise SystemExit(main())
