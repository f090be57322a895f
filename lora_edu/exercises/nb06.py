"""Exercises of notebook 06 (fine-tuning GPT-2 with PEFT).

How to use them, and how they are written: :mod:`lora_edu.exercises`.

* 06.1 :data:`lora_params_gpt2` - trainable parameters of LoRA on three module names of gpt2
  (``"c_proj"`` names two modules in every block);
* 06.2 :data:`adam_state_bytes` - bytes of AdamW state for full fine-tuning and for LoRA;
* 06.3 :data:`majority_and_chance` - the majority-class and chance baselines of an unbalanced held-out set;
* 06.4 :data:`forgetting_nats` - a change of perplexity as nats per token;
* 06.5 :data:`underfitting_fixes` - which changes help an adapter that underfits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from lora_edu.exercises._core import as_number, exercise, is_whole_number, named_mistake, params_verdict

__all__ = ["adam_state_bytes", "forgetting_nats", "lora_params_gpt2", "majority_and_chance", "underfitting_fixes"]

# gpt2 (small): 12 blocks of width 768; each block's four projections, (in, out) as Conv1D stores them
GPT2 = dict(n_layer=12, n_embd=768, n_params=124_439_808)


def _projections(n_embd: int) -> dict[str, tuple[int, int]]:
    d = n_embd
    return {"attn.c_attn": (d, 3 * d), "attn.c_proj": (d, d), "mlp.c_fc": (d, 4 * d), "mlp.c_proj": (4 * d, d)}


def _lora_count(n_layer: int, n_embd: int, r: int, names: Iterable[str]) -> int:
    """Trainable LoRA parameters: r (in + out) for every projection whose name ends with a target."""
    return n_layer * sum(r * (k + d) for full, (k, d) in _projections(n_embd).items()
                         if any(full == t or full.endswith("." + t) for t in names))


# --- 06.1: LoRA on c_attn, c_proj and c_fc of gpt2 ------------------------------------------------


@exercise("06.1", answer_format="an int",
          data=dict(n_layer=GPT2["n_layer"], n_embd=GPT2["n_embd"], r=16, target_modules=("c_attn", "c_proj", "c_fc")))
def lora_params_gpt2(answer, n_layer: int, n_embd: int, r: int, target_modules: tuple[str, ...]):
    """LoraConfig(r=16, target_modules=['c_attn', 'c_proj', 'c_fc']) on gpt2 (small): how many trainable parameters does
    it add?"""
    right = _lora_count(n_layer, n_embd, r, target_modules)
    d = n_embd
    why_right = (f"{right:,}: per block r (in + out) for c_attn ({d} -> {3 * d}), attn.c_proj ({d} -> {d}), "
                 f"c_fc ({d} -> {4 * d}) and mlp.c_proj ({4 * d} -> {d}): 'c_proj' matches both")
    one_c_proj = _lora_count(n_layer, n_embd, r, ("c_attn", "attn.c_proj", "c_fc"))
    mlp_only_c_proj = _lora_count(n_layer, n_embd, r, ("c_attn", "mlp.c_proj", "c_fc"))
    square_c_attn = right - n_layer * r * (d + 3 * d) + n_layer * r * (d + d)
    known = {
        one_c_proj: "'c_proj' matches two modules in every block, attn.c_proj and mlp.c_proj; you counted only "
                    "the attention one",
        mlp_only_c_proj: "'c_proj' matches two modules in every block; you counted only mlp.c_proj",
        square_c_attn: f"you took c_attn as {d} x {d}; it computes Q, K and V at once, so it maps {d} -> {3 * d}",
        right // n_layer: f"that is one block; gpt2 has {n_layer}",
        right // 2: f"half the right count: did you count only A (r x in) or only B (out x r), or use r = {r // 2}?",
        GPT2["n_params"]: "that is the whole of gpt2; LoRA trains only the small A and B matrices",
        0: "LoRA does add parameters: A and B of every targeted module",
    }
    hint = (f"list the modules whose names end with {list(target_modules)} in one block "
            "(print(model.transformer.h[0]) shows them), add r (in + out) for each, times the blocks")
    return params_verdict(answer, right, why_right, known, hint)


# --- 06.2: AdamW state, full fine-tuning vs LoRA --------------------------------------------------


@exercise("06.2", answer_format="a tuple of two ints (full, lora)",
          data=dict(n_params=GPT2["n_params"], lora_r=8, lora_targets=("c_attn",), bytes_per_number=4))
def adam_state_bytes(answer, n_params: int, lora_r: int, lora_targets: tuple[str, ...], bytes_per_number: int):
    """How many bytes of AdamW state (fp32) do (a) full fine-tuning of gpt2 and (b) LoRA r = 8 on c_attn need? Answer
    (full, lora)."""
    try:
        full, lora = answer
    except (TypeError, ValueError):
        return False, "give two ints, (bytes for full fine-tuning, bytes for LoRA)"
    if not (is_whole_number(full) and is_whole_number(lora)):
        return False, f"give two whole numbers of bytes, got {answer!r}"
    trainable = _lora_count(GPT2["n_layer"], GPT2["n_embd"], lora_r, lora_targets)
    right = (2 * bytes_per_number * n_params, 2 * bytes_per_number * trainable)
    if (full, lora) == right:
        return True, (f"AdamW keeps two fp32 moments per trainable parameter: 8 x {n_params:,} = {right[0]:,} bytes "
                      f"against 8 x {trainable:,} = {right[1]:,}, {right[1] / right[0]:.2%} of it")
    for got, params, which in ((full, n_params, "full fine-tuning"), (lora, trainable, "LoRA")):
        per = got / params if params else 0
        if got == 0:
            return False, f"{which}: AdamW's state is not empty; it holds two moments for every trainable parameter"
        if got == params:
            return False, f"{which}: that is the number of trainable parameters; the question asks for bytes"
        if per == bytes_per_number:
            return False, (f"{which}: that is {bytes_per_number} bytes per parameter, one fp32 moment; AdamW keeps "
                           "two (m and v), both in fp32 in PyTorch")
        if per in (3 * bytes_per_number, 4 * bytes_per_number):
            return False, (f"{which}: that adds the weights and/or the gradients; the question asks for the "
                           "optimizer's state alone")
    if full == 2 * bytes_per_number * trainable and lora == 2 * bytes_per_number * n_params:
        return False, "you swapped them: full fine-tuning trains every parameter"
    if lora == full:
        return False, "LoRA's optimizer state covers only the trainable A and B matrices, not the frozen model"
    return False, "not yet: how many parameters train in each case, and how many bytes does AdamW keep per parameter?"


# --- 06.3: chance and the majority class on an unbalanced held-out set --------------------------

#: Label counts of a fine-tuning set and of an unbalanced held-out set (notebook 06's own are balanced).
_TRAIN_COUNTS = {"fruit": 140, "vegetable": 100, "animal": 100, "tool": 90, "furniture": 90, "vehicle": 100,
                 "instrument": 90, "clothing": 90}
_TEST_COUNTS = {"fruit": 20, "vegetable": 30, "animal": 40, "tool": 25, "furniture": 25, "vehicle": 20,
                "instrument": 20, "clothing": 20}


def _baselines(train: dict[str, int], test: dict[str, int]) -> tuple[float, float]:
    """(exact match of always answering train's most frequent label, of guessing uniformly) on test."""
    majority = max(train, key=train.get)
    return test[majority] / sum(test.values()), 1 / len(test)


@exercise("06.3", answer_format="a tuple of two floats (majority, chance)",
          data=dict(train_counts=_TRAIN_COUNTS, test_counts=_TEST_COUNTS))
def majority_and_chance(answer, train_counts: dict[str, int], test_counts: dict[str, int]):
    """A fine-tuning set and an unbalanced held-out set have the label counts below. What held-out exact match do (a)
    always answering the training set's most frequent label and (b) guessing one of the 8 labels uniformly at random
    get? Answer (majority, chance)."""
    try:
        majority, chance = answer
    except (TypeError, ValueError):
        return False, "give two numbers, (majority-class exact match, chance exact match)"
    majority, chance = as_number(majority), as_number(chance)
    if majority is None or chance is None:
        return False, f"give two numbers between 0 and 1, got {answer!r}"
    right_majority, right_chance = _baselines(train_counts, test_counts)
    n_train, n_test = sum(train_counts.values()), sum(test_counts.values())
    label = max(train_counts, key=train_counts.get)

    def close(x, y):
        return math.isclose(x, y, rel_tol=1e-3, abs_tol=1e-6)

    if close(majority, right_majority) and close(chance, right_chance):
        return True, (f"({right_majority:.3f}, {right_chance:.3f}): the majority class is chosen on the training set "
                      f"({label!r}) and scored on the held-out set, where it is rarer: here the 'majority' baseline is "
                      f"below chance, so print both")
    if close(majority, 100 * right_majority) or close(chance, 100 * right_chance):
        return False, "those are percentages; give fractions between 0 and 1"
    if not close(chance, right_chance):
        weighted = sum(train_counts[k] / n_train * test_counts[k] / n_test for k in test_counts)
        if close(chance, weighted):
            return False, ("that is guessing with the training set's label frequencies; chance here means guessing "
                           "the 8 labels uniformly")
        if close(chance, sum((c / n_test) ** 2 for c in test_counts.values())):
            return False, "that is guessing with the held-out set's frequencies; guess the 8 labels uniformly"
        return False, "chance: a uniform guess among the labels is right with probability 1 / (number of labels)"
    test_best = max(test_counts, key=test_counts.get)
    if close(majority, test_counts[test_best] / n_test):
        return False, (f"that picks the majority class on the held-out set ({test_best!r}), which a baseline may "
                       "not look at; choose it on the training set")
    if close(majority, train_counts[label] / n_train):
        return False, (f"that is how often {label!r} occurs in the *training* set; score it on the held-out set")
    return False, "majority class: find the training set's most frequent label, then its share of the held-out set"


# --- 06.4: forgetting in nats ---------------------------------------------------------------------


@exercise("06.4", data=dict(ppl_before=4.0, ppl_after=5.0), answer_format="a float (nats per token)")
def forgetting_nats(answer, ppl_before: float, ppl_after: float):
    """Fine-tuning raised a model's perplexity on held-out pretraining text from ppl_before to ppl_after. By how many
    nats per token did its mean loss on that text go up?"""
    x = as_number(answer)
    if x is None:
        return False, f"give a number (nats per token), got {answer!r}"
    right = math.log(ppl_after / ppl_before)
    if math.isclose(x, right, rel_tol=1e-3, abs_tol=1e-4):
        return True, (f"ln({ppl_after:g} / {ppl_before:g}) = {right:.4f} nats per token: perplexity is exp(mean loss), "
                      "so a ratio of perplexities is a difference of losses")
    known = [
        (ppl_after - ppl_before, "that is the difference of perplexities; the loss is the log of the perplexity"),
        (ppl_after / ppl_before - 1, "that is the relative change of perplexity, not a change of loss"),
        (math.log10(ppl_after / ppl_before), "that is log base 10; nats are natural logarithms"),
        (math.log2(ppl_after / ppl_before), "that is in bits (log base 2); nats are natural logarithms"),
        (-right, "wrong sign: forgetting raised the perplexity, so the loss went up"),
        (math.log(ppl_after) , "that is the loss after; the question asks how much it changed"),
    ]
    if why := named_mistake(x, known, lambda a, b: math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-4)):
        return False, why
    return False, "not yet: write both perplexities as exp(loss) and subtract the losses"


# --- 06.5: what helps an underfitting adapter -----------------------------------------------------

_UNDERFIT = {"raise r", "target more modules", "train longer", "raise the learning rate"}
_OVERFIT = {"lower r", "more dropout", "fewer modules", "stop earlier"}


@exercise("06.5", answer_format="a set of option strings",
          data=dict(options=("raise r", "lower r", "target more modules", "fewer modules", "more dropout",
                       "train longer", "stop earlier", "raise the learning rate")))
def underfitting_fixes(answer, options: tuple[str, ...]):
    """An adapter underfits: held-out loss is still falling and exact match is low. Which of the options help? Choose
    every one that does."""
    if isinstance(answer, str):
        answer = {answer}
    try:
        chosen = {str(a).strip().lower() for a in answer}
    except TypeError:
        return False, f"give a set of options, e.g. {{'{options[0]}'}}"
    unknown = chosen - set(options)
    if unknown:
        return False, f"{sorted(unknown)} {'is' if len(unknown) == 1 else 'are'} not among the options {list(options)}"
    if chosen == _UNDERFIT:
        return True, ("an underfitting adapter lacks capacity or training: more rank, more modules (as "
                      "'all-linear' does), more steps or a larger step size; the others fight overfitting")
    if not chosen:
        return False, "choose at least one option"
    wrong = chosen & _OVERFIT
    if wrong:
        return False, (f"{sorted(wrong)} fight{'s' if len(wrong) == 1 else ''} overfitting (training loss far below "
                       "held-out loss); an underfitting adapter needs the opposite")
    missing = len(_UNDERFIT - chosen)
    return False, (f"right so far, but {missing} more option{'s' if missing > 1 else ''} "
                   f"also help{'s' if missing == 1 else ''}")

