"""Build the offline fallback GPT-2 shipped in ``lora_edu/assets/tiny_gpt2`` (``make fallback-model``).

    python -m lora_edu.tools.fallback_model                 # rebuild in place (~10 CPU-minutes)
    python -m lora_edu.tools.fallback_model --out DIR --steps 300

The fallback is a real ``GPT2LMHeadModel`` (gpt2's module names, GPT-2's real tokenizer) with
:data:`CONFIG`'s depth and width, pretrained on :func:`lora_edu.corpus.course_corpus`. Two things
make it cheap to build and still honest:

* **The corpus uses a few hundred of GPT-2's 50,257 tokens.** Pretraining runs on a compact
  vocabulary: every token the corpus uses, plus one class ``OTHER`` that stands for all the
  others, with its logit raised by log(number of other tokens). Saving copies ``OTHER``'s
  embedding into every unused row, so the full 50,257-way softmax of the saved model gives
  exactly the probabilities the compact one was trained to give (checked after the build).
* **Copying is learned, then probed.** The corpus restates each story's facts in prose, so the
  model learns to look back and copy the name, noun, place or number; :func:`lora_edu.finetune.reading_accuracy`
  measures it on held-out stories, and the build fails if it is not there. The test suite checks
  the shipped model the same way.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from lora_edu._checks import check_int
from lora_edu._utils import progress

#: Depth, width and context of the fallback (gpt2 itself: 12 layers, width 768, 12 heads, 1,024).
CONFIG = dict(n_layer=4, n_embd=128, n_head=4, n_positions=256)
#: Pretraining settings (AdamW, one-cycle schedule); see :func:`build`.
SETTINGS = dict(steps=4000, batch=8, block=128, lr=3e-3, seed=0, corpus_paragraphs=60_000)
#: The least knowledge-probe accuracy (greedy, :func:`lora_edu.corpus.knowledge_probe`) a build must reach.
MIN_KNOWLEDGE = 0.9


def corpus_ids(tokenizer, n_paragraphs: int, seed: int):
    """The pretraining stream, tokenized, and where each paragraph starts in it.

    :func:`course_corpus` paragraphs are separated by a newline or, as GPT-2's own pretraining
    separated documents, by the end-of-text token (so the model learns where a text ends: the
    fine-tune's answers end with that token). Returns ``(ids, starts)``.
    """
    import random

    import torch

    from lora_edu.corpus import course_corpus

    rng = random.Random(seed)
    pieces = []
    for paragraph in course_corpus(n_paragraphs, seed=seed):
        pieces.append(paragraph + (tokenizer.eos_token if rng.random() < 0.5 else "\n"))
    encoded = tokenizer(pieces)["input_ids"]
    lengths = torch.tensor([len(e) for e in encoded])
    starts = torch.cumsum(lengths, 0) - lengths
    return torch.tensor([t for e in encoded for t in e]), starts


def build(out_dir: Path, *, steps: int = SETTINGS["steps"], batch: int = SETTINGS["batch"],
          block: int = SETTINGS["block"], lr: float = SETTINGS["lr"], seed: int = SETTINGS["seed"],
          corpus_paragraphs: int = SETTINGS["corpus_paragraphs"], config: dict | None = None,
          show_progress: bool = True, eval_every: int = 0) -> dict:
    """Pretrain the fallback and save it (fp16) with ``training.json``; return that record.

    Deterministic for a given seed, thread count and torch build.
    """
    import torch
    import torch.nn.functional as F
    from transformers import GPT2Config, GPT2LMHeadModel

    from lora_edu.gpt2 import gpt2_tokenizer

    steps = check_int(steps, "steps", 1)
    config = {**CONFIG, **(config or {})}
    tok = gpt2_tokenizer()
    ids, starts = corpus_ids(tok, corpus_paragraphs, seed + 1)  # seed + 1: held_out_text uses another seed
    starts = starts[starts < len(ids) - block - 1]
    used = torch.unique(ids)                       # sorted GPT-2 ids the corpus uses
    compact = torch.searchsorted(used, ids)        # the stream in compact ids 0 .. len(used) - 1
    n_other = len(tok) - len(used)
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(used) + 1, bos_token_id=None, eos_token_id=None,
                                       **config))  # + 1: OTHER
    log_other = torch.zeros(len(used) + 1)
    log_other[-1] = math.log(n_other)              # OTHER's logit counts all n_other tokens
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=max(0.05, 2 / steps))
    gen = torch.Generator().manual_seed(seed)
    losses, curve = [], []
    start = time.perf_counter()
    model.train()
    for step in progress(range(steps), desc="pretraining the fallback GPT-2", disable=not show_progress):
        if eval_every and step % eval_every == 0 and step:
            curve.append(_checkpoint(model, used, len(tok), tok, step, losses))
            print({**curve[-1], "seconds": round(time.perf_counter() - start)}, flush=True)
        # windows start where a paragraph starts, as a prompt does: a story is read from its first word
        offsets = starts[torch.randint(0, len(starts), (batch,), generator=gen)]
        x = torch.stack([compact[o : o + block + 1] for o in offsets])
        logits = model(x[:, :-1]).logits + log_other
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    full = expand_vocabulary(model, used, len(tok))
    record = {"config": config, "steps": steps, "batch": batch, "block": block, "lr": lr, "seed": seed,
              "corpus_tokens": len(ids), "vocabulary_used": len(used),
              "final_loss": sum(losses[-50:]) / len(losses[-50:]),
              "seconds": round(time.perf_counter() - start, 1), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "curve": curve}
    record.update(check(full, tok))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    full.half().save_pretrained(str(out_dir))
    (out_dir / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    if record["knowledge_probe"] < MIN_KNOWLEDGE:
        raise RuntimeError(f"the fallback does not know the kinds: knowledge probe {record['knowledge_probe']:.2f} "
                           f"< {MIN_KNOWLEDGE} (saved anyway in {out_dir} for inspection)")
    return record


def _checkpoint(model, used, vocab_size, tok, step, losses) -> dict:
    """Reading accuracy on 40 probes and the recent loss, during pretraining."""
    from lora_edu.corpus import knowledge_probe
    from lora_edu.finetune import task_metrics

    model.eval()
    m = task_metrics(expand_vocabulary(model, used, vocab_size), tok, knowledge_probe(64), probe=True)
    model.train()
    return {"step": step, "loss": round(sum(losses[-50:]) / 50, 4), "knowledge": m["exact_match"],
            "ranked": m["ranked"]}


def expand_vocabulary(compact_model, used, vocab_size: int):
    """A ``GPT2LMHeadModel`` over all ``vocab_size`` tokens from one trained on ``used`` + OTHER.

    Rows ``used`` of the token embedding get the trained rows; every other row gets OTHER's.
    Since OTHER was trained with a logit offset of log(number of other tokens), the full softmax
    gives every used token the probability the compact model gives it.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = compact_model.config.to_dict()
    cfg.update(vocab_size=vocab_size, bos_token_id=vocab_size - 1, eos_token_id=vocab_size - 1)  # <|endoftext|>
    full = GPT2LMHeadModel(GPT2Config(**cfg))
    state = compact_model.state_dict()
    trained = state.pop("transformer.wte.weight")
    state.pop("lm_head.weight", None)  # tied to wte
    wte = trained[-1].repeat(vocab_size, 1)
    wte[used] = trained[:-1]
    state["transformer.wte.weight"] = wte
    missing, unexpected = full.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise RuntimeError(f"vocabulary expansion lost weights: missing {missing}, unexpected {unexpected}")
    full.tie_weights()
    full.eval()
    with torch.no_grad():  # the full softmax reproduces the compact one on the used tokens
        x = used[torch.arange(0, len(used), max(1, len(used) // 48))][None]
        compact_logits = compact_model(torch.searchsorted(used, x)).logits[0]
        compact_logits[:, -1] += math.log(vocab_size - len(used))
        compact_logp = torch.log_softmax(compact_logits, -1)[:, :-1]
        full_logp = torch.log_softmax(full(x).logits[0], -1)[:, used]
        gap = (compact_logp - full_logp).abs().max().item()
    if not gap < 1e-3:
        raise RuntimeError(f"vocabulary expansion changed the probabilities (max log-prob gap {gap:.2e})")
    return full


def check(model, tokenizer) -> dict:
    """What the build record states about a model: held-out perplexity and reading accuracy."""
    from lora_edu.corpus import held_out_text, knowledge_probe
    from lora_edu.finetune import task_metrics
    from lora_edu.gpt2 import perplexity

    probe = task_metrics(model, tokenizer, knowledge_probe(), probe=True)
    return {"held_out_perplexity": round(perplexity(model, tokenizer, held_out_text(100)), 3),
            "knowledge_probe": probe["exact_match"], "knowledge_ranked": probe["ranked"],
            "knowledge_by_kind": {k: v["exact_match"] for k, v in probe["by_kind"].items()}}


def main(argv: list[str] | None = None) -> int:
    from lora_edu.gpt2 import FALLBACK_DIR

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=FALLBACK_DIR)
    for name, value in SETTINGS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--n-layer", type=int, default=CONFIG["n_layer"])
    parser.add_argument("--n-embd", type=int, default=CONFIG["n_embd"])
    parser.add_argument("--eval-every", type=int, default=0, help="probe reading accuracy every N steps")
    args = parser.parse_args(argv)
    settings = {k: getattr(args, k) for k in SETTINGS}
    record = build(args.out, config=dict(n_layer=args.n_layer, n_embd=args.n_embd), eval_every=args.eval_every,
                   **settings)
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
