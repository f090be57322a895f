"""Notebook 06's fine-tune as a script: PEFT LoRA on GPT-2 for the counting-questions task.

    python -m lora_edu.finetune --model gpt2 --out runs/r8 --r 8 --steps 200
    torchrun --nproc_per_node 2 -m lora_edu.finetune --model gpt2 --out runs/ddp --lora-r 8   # DDP, gloo on CPU
    torchrun --nproc_per_node 8 -m lora_edu.finetune --model gpt2 --out runs/ddp --lora-r 8   # 8 GPUs, nccl

(Under torchrun spell the rank ``--lora-r``: torchrun takes ``--r`` for an abbreviation of its own options.)

Under torchrun every process trains on its own slice of each global batch, DDP averages the
gradients, so all ranks hold identical LoRA weights after every step. Rank 0 alone saves
``adapter_model.safetensors`` + ``adapter_config.json`` and prints the metrics. If the loss becomes
NaN or inf, training stops and the last good adapter (from before that step) is kept and saved.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from pathlib import Path

import torch

from lora_edu._checks import check_float, check_int
from lora_edu.corpus import TaskExample, counting_qa_task


def pick_device() -> torch.device:
    """CUDA if present, then Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def encode(examples: list[TaskExample], tokenizer, device=None) -> dict[str, torch.Tensor]:
    """Right-padded batch: input_ids, attention_mask, and labels that are -100 except on the target
    (and the end-of-text token after it), so the loss is the log-likelihood of the answer only."""
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
        ids[i, : len(r)], lab[i, : len(lb)], mask[i, : len(r)] = torch.tensor(r), torch.tensor(lb), 1
    batch = {"input_ids": ids, "attention_mask": mask, "labels": lab}
    return {k: v.to(device) for k, v in batch.items()} if device is not None else batch


@torch.no_grad()
def heldout_loss(model, tokenizer, examples: list[TaskExample], batch_size: int = 64) -> float:
    """Mean negative log-likelihood per target token on ``examples`` (perplexity = exp of it)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        batch = encode(examples[i : i + batch_size], tokenizer, device)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        shift_logits, shift_labels = logits[:, :-1].float(), batch["labels"][:, 1:]
        nll = torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]),
                                                shift_labels.reshape(-1), ignore_index=-100, reduction="sum")
        total += nll.item()
        count += int((shift_labels != -100).sum())
    return total / count


@torch.no_grad()
def generate_answers(model, tokenizer, examples: list[TaskExample], max_new_tokens: int = 10,
                     batch_size: int = 64) -> list[str]:
    """Greedy answers (left-padded batches), cut at the first newline or end-of-text."""
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
                answers.append(tokenizer.decode(row, skip_special_tokens=True).split("\n")[0])
    finally:
        tokenizer.padding_side = side
    return answers


def exact_match(model, tokenizer, examples: list[TaskExample]) -> float:
    """Fraction of examples whose greedy answer equals the target exactly (after stripping spaces)."""
    return task_metrics(model, tokenizer, examples)["exact_match"]


def task_metrics(model, tokenizer, examples: list[TaskExample]) -> dict[str, float]:
    """``exact_match`` (the answer is right) and ``right_type`` (the answer is the right kind of
    thing: a name for "who", ...; see :func:`lora_edu.corpus.answer_has_right_type`)."""
    from lora_edu.corpus import answer_has_right_type

    answers = generate_answers(model, tokenizer, examples)
    pairs = list(zip(answers, examples, strict=True))
    return {
        "exact_match": sum(a.strip() == ex.target.strip() for a, ex in pairs) / len(pairs),
        "right_type": sum(answer_has_right_type(a, ex) for a, ex in pairs) / len(pairs),
    }


def lora_params(model) -> dict[str, torch.Tensor]:
    """The trainable LoRA tensors of a PEFT (or DDP-wrapped PEFT) model."""
    return {n: p for n, p in model.named_parameters() if "lora_" in n}


def train(
    model,
    tokenizer,
    train_examples: list[TaskExample],
    *,
    steps: int,
    batch_size: int = 16,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = True,
    rank: int = 0,
    world_size: int = 1,
) -> dict:
    """Plain PyTorch loop (AdamW, linear warm-up then cosine decay) over the trainable parameters.

    ``batch_size`` is the *global* batch: with ``world_size`` processes each takes its own
    ``batch_size // world_size`` examples of it. Stops at the first non-finite loss and restores
    the trainable parameters from before that step.

    Returns ``{"loss": [...], "step_seconds": [...], "stopped": None or reason,
    "optimizer_state_bytes": bytes of AdamW's moment estimates}``.
    """
    steps = check_int(steps, "steps", 1)
    batch_size = check_int(batch_size, "batch_size", world_size)
    lr = check_float(lr, "lr", 0.0, lo_open=True)
    if batch_size % world_size:
        raise ValueError(f"batch_size ({batch_size}) must be divisible by the number of processes ({world_size})")
    from tqdm.auto import trange

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
    torch.manual_seed(seed + rank)  # dropout masks differ per rank, as they should
    history = {"loss": [], "step_seconds": [], "stopped": None}
    per_rank = batch_size // world_size
    model.train()
    for step in trange(steps, desc="fine-tuning", disable=not progress or rank != 0):
        start = time.perf_counter()
        idx = torch.randint(0, len(train_examples), (batch_size,), generator=gen)[rank * per_rank:(rank + 1) * per_rank]
        batch = encode([train_examples[i] for i in idx], tokenizer, device)
        good = [p.detach().clone() for p in params]
        loss = model(**batch).loss
        if not torch.isfinite(loss):
            with torch.no_grad():
                for p, g in zip(params, good, strict=True):
                    p.copy_(g)
            history["stopped"] = (f"non-finite loss ({loss.item()}) at step {step}; "
                                  f"kept the adapter from step {step - 1}")
            break
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if not all(torch.isfinite(p).all() for p in params):
            with torch.no_grad():
                for p, g in zip(params, good, strict=True):
                    p.copy_(g)
            history["stopped"] = f"non-finite weights after step {step}; kept the adapter from before it"
            break
        history["loss"].append(loss.item())
        history["step_seconds"].append(time.perf_counter() - start)
    model.eval()
    history["optimizer_state_bytes"] = sum(t.numel() * t.element_size() for state in opt.state.values()
                                           for key, t in state.items() if torch.is_tensor(t) and key != "step")
    return history


def measure_peak_memory(fn, interval: float = 0.002):
    """Run ``fn()`` and return ``(result, peak_bytes)``: on a GPU the peak of
    ``torch.cuda.max_memory_allocated`` during the call; on a CPU the peak rise of the process's
    resident memory (RSS), sampled every ``interval`` seconds by a background thread."""
    import threading

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        result = fn()
        return result, torch.cuda.max_memory_allocated() - before
    import psutil

    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            done.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        result = fn()
    finally:
        done.set()
        thread.join()
    return result, max(0, peak[0] - base)


def add_peft_lora(model, r: int = 8, alpha: float = 16, dropout: float = 0.05, target_modules=("c_attn",)):
    """``get_peft_model`` with the course's LoraConfig for GPT-2 (Conv1D, so fan_in_fan_out=True)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(task_type="CAUSAL_LM", r=check_int(r, "r", 1), lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=list(target_modules), fan_in_fan_out=True, bias="none")
    return get_peft_model(model, config)


def checksum(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 of the tensors' bytes in name order: equal iff the weights are bit-identical."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", default="gpt2", help="hub name, local folder, or lora-edu/tiny-gpt2")
    parser.add_argument("--out", required=True, type=Path, help="folder for the adapter (must not hold one already)")
    # torchrun reads an abbreviated "--r" as one of its own options (--rdzv-..., --role, ...), so the
    # same option is also spelled --lora-r, which is what to write after `torchrun ... -m lora_edu.finetune`.
    parser.add_argument("--r", "--lora-r", dest="r", type=int, default=8, help="LoRA rank (under torchrun: --lora-r)")
    parser.add_argument("--alpha", type=float, default=16.0)
    parser.add_argument("--dropout", type=float, default=0.05)
    parser.add_argument("--target-modules", nargs="+", default=["c_attn"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16, help="global batch, split across processes")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--overwrite", action="store_true", help="replace an adapter already in --out")
    args = parser.parse_args(argv)

    world_size = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    device = pick_device()
    if (args.out / "adapter_model.safetensors").exists() and not args.overwrite:
        parser.error(f"{args.out} already holds an adapter; pass --overwrite to replace it")
    if world_size > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)

    from lora_edu.gpt2 import load_gpt2

    base, tokenizer, source = load_gpt2(args.model, verbose=rank == 0)
    torch.manual_seed(args.seed)  # identical LoRA initialisation on every rank
    model = add_peft_lora(base, args.r, args.alpha, args.dropout, args.target_modules).to(device)
    task = counting_qa_task(n_test=args.n_test, seed=args.seed)
    train_model = model
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    history = train(train_model, tokenizer, task["train"], steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                    seed=args.seed, rank=rank, world_size=world_size, progress=rank == 0)

    sums = [checksum(lora_params(model))]
    if world_size > 1:
        import torch.distributed as dist

        gathered = [None] * world_size
        dist.all_gather_object(gathered, sums[0])
        sums = gathered
    if rank == 0:
        args.out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(args.out))
        metrics = {
            "model": str(source), "world_size": world_size, "device": str(device), "steps_done": len(history["loss"]),
            "stopped": history["stopped"], "final_train_loss": history["loss"][-1] if history["loss"] else None,
            "heldout_loss": heldout_loss(model, tokenizer, task["test"]),
            **task_metrics(model, tokenizer, task["test"]),
            "rank_checksums": sums, "ranks_identical": len(set(sums)) == 1,
            "seconds_per_step": sum(history["step_seconds"]) / max(1, len(history["step_seconds"])),
        }
        (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        print(json.dumps(metrics, indent=2))
    if world_size > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


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
