import copy
import json
import os
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

from lora_edu import corpus as C
from lora_edu import finetune as F
from lora_edu import gpt2 as G


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny") / "model"
    GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, n_positions=64)).save_pretrained(folder)
    G.gpt2_tokenizer().save_pretrained(folder)
    return folder


def peft_model(folder, r=4, dropout=0.0, targets=("c_attn",)):
    model, tok, _ = G.load_gpt2(str(folder))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return F.add_peft_lora(model, r=r, alpha=2 * r, dropout=dropout, target_modules=targets), tok


def test_encode_left_pads_and_masks_the_prompt():
    tok = G.gpt2_tokenizer()
    short = C.category_example("Ada", 7, "cats", "yard")
    long = C.category_example("Grace", 347, "pomegranates", "lecture hall", story=2)
    batch = F.encode([short, long], tok)
    n_short = len(tok(short.text)["input_ids"]) + 1  # + end-of-text
    width = batch["input_ids"].shape[1]
    assert width == len(tok(long.text)["input_ids"]) + 1 > n_short
    assert batch["attention_mask"][0].tolist() == [0] * (width - n_short) + [1] * n_short   # padding on the left
    answer = tok(" animal")["input_ids"] + [tok.eos_token_id]
    assert batch["labels"][0, -2:].tolist() == answer and (batch["labels"][0, :-2] == -100).all()
    assert batch["position_ids"][0, width - n_short:].tolist() == list(range(n_short))      # from the first real token


def test_answer_loss_is_the_models_loss_and_ignores_padding(tiny):
    model, tok, _ = G.load_gpt2(str(tiny))
    task = C.category_task(n_train=8, n_test=4)
    batch = F.encode(task["train"], tok)
    with torch.no_grad():
        assert F.answer_loss(model, batch).item() == pytest.approx(model(**batch).loss.item(), rel=1e-5)
        alone = [F.answer_loss(model, F.encode([ex], tok), reduction="sum").item() for ex in task["train"]]
        together = F.answer_loss(model, batch, reduction="sum").item()
    assert together == pytest.approx(sum(alone), rel=1e-4)   # padding changes nothing


def test_training_reduces_heldout_loss_and_reports_its_cost(tiny):
    model, tok = peft_model(tiny)
    task = C.category_task(n_train=64, n_test=16)
    before = F.heldout_loss(model, tok, task["test"])
    hist = F.train(model, tok, task["train"], steps=25, batch_size=8, lr=1e-2, progress_bar=False)
    assert hist["stopped"] is None and hist["steps"] == len(hist["loss"]) == 25
    assert F.heldout_loss(model, tok, task["test"]) < before
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert hist["trainable"] == trainable
    assert hist["optimizer_state_bytes"] == 2 * 4 * trainable  # AdamW: two fp32 moments per parameter
    assert hist["tokens"] > 25 * 8 * 10 and hist["seconds"] > 0 and hist["device"] == "cpu"
    assert hist["gradient_bytes"] == 4 * trainable  # one fp32 gradient per trainable parameter
    receipt = F.cost_receipt(hist, "LoRA r=4")
    state = 12 * trainable / 2**20  # gradient + two moments, 4 bytes each
    for words in ("25 steps", "tokens/s", f"trainable {trainable:,}", f"gradients + AdamW state {state:,.2f} MiB",
                  "resident memory +", "cpu"):
        assert words in receipt


def test_task_metrics_score_answers_ranking_and_chance(monkeypatch):
    task = C.category_task(n_train=8, n_test=40)["test"]
    right_ranking = torch.stack([torch.eye(8)[C.LABELS.index(ex.kind)] for ex in task]).log()
    monkeypatch.setattr(F, "label_logprobs", lambda m, t, exs: right_ranking)
    monkeypatch.setattr(F, "generate_answers", lambda m, t, exs: [ex.answer for ex in exs])
    right = F.task_metrics(None, None, task)
    assert right["exact_match"] == right["ranked"] == right["label_rate"] == 1.0 and right["chance"] == 1 / 8
    assert set(right["by_kind"]) == set(C.LABELS) and all(v["n"] == 5 for v in right["by_kind"].values())
    # a collapsed model: one fixed label for every question, the right one ranked last
    monkeypatch.setattr(F, "label_logprobs", lambda m, t, exs: -right_ranking.exp())
    monkeypatch.setattr(F, "generate_answers", lambda m, t, exs: ["fruit"] * len(exs))
    fruit = F.task_metrics(None, None, task)
    assert fruit["exact_match"] == pytest.approx(1 / 8) and fruit["label_rate"] == 1.0 and fruit["ranked"] == 0.0
    assert fruit["by_kind"]["fruit"]["exact_match"] == 1.0 and fruit["by_kind"]["tool"]["exact_match"] == 0.0
    text = F.format_metrics(fruit, "collapsed")
    assert "chance 12.5%" in text and "instrument" in text
    # the probe compares the first word only: "fruit. The" is right, "fruits" is not
    monkeypatch.setattr(F, "generate_answers", lambda m, t, exs: [ex.answer + ". The" for ex in exs])
    assert F.task_metrics(None, None, task, probe=True)["exact_match"] == 1.0
    assert F.task_metrics(None, None, task)["exact_match"] == 0.0
    monkeypatch.setattr(F, "generate_answers", lambda m, t, exs: [ex.answer + "s and more" for ex in exs])
    assert F.task_metrics(None, None, task, probe=True)["exact_match"] == 0.0


def test_label_logprobs_read_the_next_token_after_the_prompt(tiny):
    model, tok, _ = G.load_gpt2(str(tiny))
    examples = C.category_task(n_train=4, n_test=4)["test"]      # different prompt lengths: left padding
    got = F.label_logprobs(model, tok, examples)
    ids = F.label_token_ids(tok)
    with torch.no_grad():
        for row, ex in zip(got, examples, strict=True):
            alone = torch.log_softmax(model(**tok(ex.prompt, return_tensors="pt")).logits[0, -1], -1)[ids]
            assert torch.allclose(row, alone, atol=1e-4)
    assert F.majority_baseline(examples[:1], examples) == (examples[0].answer, 1 / 4)


def test_default_hparams_follow_the_width():
    from transformers import GPT2Config

    gpt2 = F.default_hparams(GPT2Config())
    assert gpt2.lora_lr == pytest.approx(8e-4) and gpt2.full_lr == pytest.approx(8e-5)
    assert F.default_hparams(GPT2Config(n_embd=128)).lora_lr == pytest.approx(8e-4 * 6)
    assert "Hu et al." in gpt2.source
    assert F.plan_steps(2.0, 100, at_least=10, at_most=500) == 50
    assert F.plan_steps(2.0, 1, at_least=10, at_most=500) == 10
    assert F.plan_steps(0.01, 100, at_least=10, at_most=500) == 500
    with pytest.raises(ValueError, match="seconds_per_step"):
        F.plan_steps(0, 100, at_least=1, at_most=2)


def test_all_linear_targets_every_projection(tiny):
    model, _ = peft_model(tiny, r=2, targets="all-linear")
    names = {n.split(".lora_")[0].split(".h.0.")[-1] for n in F.lora_params(model) if ".h.0." in n}
    assert names == {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}
    assert not any("lm_head" in n for n in F.lora_params(model))


class NaNAtStep(nn.Module):
    """Wraps a model and makes its outputs NaN on the n-th call."""

    def __init__(self, model, n):
        super().__init__()
        self.model, self.n, self.calls = model, n, 0

    def get_output_embeddings(self):
        return self.model.get_output_embeddings()

    def forward(self, **batch):
        self.calls += 1
        out = self.model(**batch)
        if self.calls == self.n:
            out.hidden_states = tuple(h * float("nan") for h in out.hidden_states)
        return out


def test_nan_loss_stops_and_keeps_the_last_good_adapter(tiny):
    task = C.category_task(n_train=64, n_test=8)
    good, tok = peft_model(tiny)
    bad = copy.deepcopy(good)
    F.train(good, tok, task["train"], steps=2, batch_size=4, lr=1e-2, progress_bar=False)
    hist = F.train(NaNAtStep(bad, 3), tok, task["train"], steps=5, batch_size=4, lr=1e-2, progress_bar=False)
    assert hist["stopped"] and "step 2" in hist["stopped"] and len(hist["loss"]) == 2
    for (n1, p1), (n2, p2) in zip(F.lora_params(good).items(), F.lora_params(bad).items(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2)


def test_train_checks_its_arguments(tiny):
    model, tok = peft_model(tiny)
    task = C.category_task(n_train=8, n_test=4)
    with pytest.raises(ValueError, match="process_index"):
        F.train(model, tok, task["train"], steps=1, world_size=2, process_index=2)
    with pytest.raises(ValueError, match="divisible"):
        F.train(model, tok, task["train"], steps=1, batch_size=5, world_size=2)
    with pytest.raises(ValueError, match="no trainable parameters"):
        F.train(model.requires_grad_(False), tok, task["train"], steps=1)


def test_adapter_load_errors_are_clear(tiny, tmp_path):
    model, _ = peft_model(tiny)
    model.save_pretrained(tmp_path / "ok")
    base = G.load_gpt2(str(tiny))[0]
    loaded = F.load_peft_adapter(base, tmp_path / "ok")
    assert F.checksum(F.lora_params(loaded)) == F.checksum(F.lora_params(model))
    with pytest.raises(ValueError, match="adapter_config.json is missing"):
        F.load_peft_adapter(G.load_gpt2(str(tiny))[0], tmp_path)
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "adapter_config.json").write_text((tmp_path / "ok" / "adapter_config.json").read_text())
    (tmp_path / "corrupt" / "adapter_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot be loaded"):
        F.load_peft_adapter(G.load_gpt2(str(tiny))[0], tmp_path / "corrupt")
    other, _, _ = G.load_gpt2(G.FALLBACK, verbose=False)  # width 128, not 32: shapes do not fit
    with pytest.raises(ValueError, match="cannot be loaded"):
        F.load_peft_adapter(other, tmp_path / "ok")


def test_cli_two_processes_identical_ranks(tiny, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lora_edu.finetune", "--model", str(tiny), "--out", str(out), "--steps", "4",
           "--batch-size", "4", "--n-test", "8", "--lora-r", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LORA_EDU_CACHE": str(tmp_path / "cache")}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps_done"] == 4
    assert len(metrics["rank_checksums"]) == 2 and metrics["ranks_identical"]
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    saved = load_file(out / "adapter_model.safetensors")
    model = PeftModel.from_pretrained(G.load_gpt2(str(tiny))[0], str(out))
    assert F.checksum(F.lora_params(model)) == metrics["rank_checksums"][0]
    assert all(torch.any(v != 0) for k, v in saved.items() if "lora_B" in k)  # training moved B off zero
    again = subprocess.run([sys.executable, "-m", "lora_edu.finetune", "--model", str(tiny), "--out", str(out),
                            "--steps", "1"], capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode != 0 and "--overwrite" in again.stderr


@pytest.mark.slow
def test_cli_defaults_learn_the_task_on_the_fallback(tmp_path):
    """The issue's acceptance test: the notebook's default settings reach >= 80 % held-out exact match."""
    out = tmp_path / "r8"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LORA_EDU_CACHE": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-m", "lora_edu.finetune", "--model", G.FALLBACK, "--out", str(out)],
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["exact_match"] >= 0.8
    assert metrics["baseline"]["exact_match"] <= metrics["baseline"]["chance"] == 1 / 8
    assert all(v["exact_match"] >= 0.5 for v in metrics["by_kind"].values())
    assert "Warning" not in run.stderr and "loss_type" not in run.stderr
