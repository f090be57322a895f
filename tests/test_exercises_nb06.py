"""Notebook 06's exercises: right answers pass, trivial and pitfall answers fail with the right
diagnosis, and the notebook's hidden worked solutions print RIGHT."""

import contextlib
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from lora_edu import corpus as C
from lora_edu.exercises import nb06

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "06_gpt2_peft_finetune.ipynb"
KEYS = ["lora_params_gpt2", "adam_state_bytes", "majority_and_chance", "forgetting_nats", "underfitting_fixes"]


def verdict(ex, answer):
    with contextlib.redirect_stdout(io.StringIO()):
        return ex.check(answer)


def test_every_exercise_runs_as_given():
    for key in KEYS:
        ex = getattr(nb06, key)
        fb = verdict(ex, None)
        assert not fb and "no answer yet" in fb.message
        assert not verdict(ex, "something")
        assert not verdict(ex, 0)


def test_lora_params_gpt2():
    ex = nb06.lora_params_gpt2
    d, r = 768, 16
    block = r * ((d + 3 * d) + (d + d) + (4 * d + d) + (d + 4 * d))
    right = 12 * block
    assert right == 2_359_296 and verdict(ex, right) and verdict(ex, np.int64(right))
    cases = {
        12 * r * ((d + 3 * d) + (d + d) + (d + 4 * d)): "counted only the attention one",   # the pitfall
        12 * r * ((d + 3 * d) + (4 * d + d) + (d + 4 * d)): "only mlp.c_proj",
        12 * r * ((d + d) + (d + d) + (4 * d + d) + (d + 4 * d)): "768 x 768",           # c_attn taken square
        block: "one block",
        right // 2: "half",
        124_439_808: "whole of gpt2",
        0: "does add parameters",
        right + 1: "is not it",
    }
    for answer, words in cases.items():
        fb = verdict(ex, answer)
        assert not fb and words in fb.message, (answer, fb.message)
    assert not verdict(ex, float(right)) and not verdict(ex, True)


def test_adam_state_bytes():
    ex = nb06.adam_state_bytes
    full, lora = 8 * 124_439_808, 8 * 294_912
    assert verdict(ex, (full, lora)) and verdict(ex, [full, lora])
    cases = [
        ((0, 0), "not empty"),                                  # the trivial answer the old checker took
        ((124_439_808, 294_912), "number of trainable parameters"),
        ((4 * 124_439_808, 4 * 294_912), "one fp32 moment"),
        ((16 * 124_439_808, lora), "weights and/or the gradients"),
        ((full, 16 * 294_912), "weights and/or the gradients"),
        ((4 * 124_439_808, lora), "one fp32 moment"),
        ((lora, full), "swapped"),
        ((full, full), "only the trainable"),
        ((2 * 2 * 124_439_808, 2 * 2 * 294_912), "both in fp32"),      # two fp16 moments
        ((full, lora + 8), "not yet"),
        (full, "two ints"),
    ]
    for answer, words in cases:
        fb = verdict(ex, answer)
        assert not fb and words in fb.message, (answer, fb.message)


def test_majority_and_chance():
    ex = nb06.majority_and_chance
    train, test = ex.data["train_counts"], ex.data["test_counts"]
    assert set(train) == set(test) == set(C.LABELS)
    assert sum(train.values()) == 800 and sum(test.values()) == 200
    right = (20 / 200, 1 / 8)            # 'fruit' is the training majority; it is rare in the held-out set
    assert verdict(ex, right) and verdict(ex, [0.1, 0.125]) and "below chance" in verdict(ex, right).message
    cases = [
        ((10.0, 12.5), "percentages"),
        ((0.2, 0.125), "held-out set ('animal')"),           # majority chosen on the test set
        ((140 / 800, 0.125), "training* set"),
        ((0.1, sum(train[k] / 800 * test[k] / 200 for k in test)), "training set's label frequencies"),
        ((0.1, sum((c / 200) ** 2 for c in test.values())), "held-out set's frequencies"),
        ((0.1, 0.2), "uniform guess"),
        ((0.3, 0.125), "majority class:"),
        (0.1, "two numbers"),
    ]
    for answer, words in cases:
        fb = verdict(ex, answer)
        assert not fb and words in fb.message, (answer, fb.message)


def test_forgetting_nats():
    ex = nb06.forgetting_nats
    right = math.log(5 / 4)
    assert verdict(ex, right) and verdict(ex, 0.2231)
    cases = [(1.0, "difference of perplexities"), (0.25, "relative change"), (math.log10(1.25), "base 10"),
             (math.log2(1.25), "bits"), (-right, "wrong sign"), (math.log(5), "loss after"), (0.5, "not yet")]
    for answer, words in cases:
        fb = verdict(ex, answer)
        assert not fb and words in fb.message, (answer, fb.message)


def test_underfitting_fixes():
    ex = nb06.underfitting_fixes
    right = {"raise r", "target more modules", "train longer", "raise the learning rate"}
    assert verdict(ex, right) and verdict(ex, list(right)) and verdict(ex, {s.upper() for s in right})
    assert "more modules" in verdict(ex, right).message          # notebook 06 recommends it: it is right
    cases = [
        ({"raise r", "more dropout"}, "fight"),
        (set(ex.data["options"]), "fight"),
        ({"raise r"}, "3 more options"),
        ("target more modules", "3 more options"),
        (set(), "at least one"),
        ({"use a bigger GPU"}, "not among the options"),
    ]
    for answer, words in cases:
        fb = verdict(ex, answer)
        assert not fb and words in fb.message, (answer, fb.message)


def worked_solutions() -> list[str]:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    blocks = []
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and "<summary>Worked solution</summary>" in text:
            (block,) = re.findall(r"```python\n(.*?)```", text, re.S)
            blocks.append(block)
    return blocks


def test_notebook_has_a_worked_solution_after_each_exercise():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    cells = nb["cells"]
    for key in KEYS:
        i = next(i for i, c in enumerate(cells) if c["cell_type"] == "code" and f"nb06.{key}.check(answer)" in
                 "".join(c["source"]))
        assert "answer = None" in "".join(cells[i]["source"]), f"{key}: the answer cell must run as given"
        assert any("no answer yet" in "".join(o.get("text", "")) for o in cells[i]["outputs"])
        nxt = "".join(cells[i + 1]["source"])
        assert cells[i + 1]["cell_type"] == "markdown" and "<summary>Worked solution</summary>" in nxt, key
        assert f"nb06.{key}.check(answer)" in nxt
    assert len(worked_solutions()) == len(KEYS)
    md = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert "(open)" in md.split("## Exercises")[1], "every notebook has an open, exploratory task"


@pytest.mark.parametrize("index", range(len(KEYS)))
def test_worked_solution_prints_right(index):
    block = worked_solutions()[index]
    assert block.rstrip().splitlines()[-1].strip().endswith(".check(answer)")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, f"worked-solution-{index}", "exec"), {})
    assert out.getvalue().strip().splitlines()[-1].startswith("RIGHT"), out.getvalue()
