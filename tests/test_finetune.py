import copy
import json
import os
import subprocess
import sys
import types
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


def peft_model(folder, r=4, dropout=0.0):
    model, tok, _ = G.load_gpt2(str(folder))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return F.add_peft_lora(model, r=r, alpha=2 * r, dropout=dropout), tok


def test_encode_masks_the_prompt():
    tok = G.gpt2_tokenizer()
    ex = C.counting_qa_example("Ada", 47, "apples", "garden", "who")
    batch = F.encode([ex, C.counting_qa_example("Grace", 5, "cats", "box", "how many")], tok)
    n_prompt = len(tok(ex.prompt)["input_ids"])
    assert (batch["labels"][0, :n_prompt] == -100).all()
    assert batch["labels"][0, n_prompt:n_prompt + 2].tolist() == tok(" Ada")["input_ids"] + [tok.eos_token_id]
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()  # padding is never a target


def test_task_examples_are_spans_of_the_sentence():
    task = C.counting_qa_task(n_train=40, n_test=20)
    for ex in task["train"] + task["test"]:
        sentence = ex.prompt.split("\n")[0]
        assert ex.target.strip() in sentence
    assert {ex.kind for ex in task["train"]} == {"who", "what", "where", "how many"}
    with pytest.raises(ValueError, match="question must be one of"):
        C.counting_qa_example("Ada", 1, "cats", "box", "why")


def test_training_reduces_heldout_loss(tiny):
    model, tok = peft_model(tiny)
    task = C.counting_qa_task(n_train=64, n_test=16)
    before = F.heldout_loss(model, tok, task["test"])
    hist = F.train(model, tok, task["train"], steps=25, batch_size=8, lr=1e-2, progress=False)
    assert hist["stopped"] is None and len(hist["loss"]) == 25
    assert F.heldout_loss(model, tok, task["test"]) < before
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert hist["optimizer_state_bytes"] == 2 * 4 * trainable  # AdamW: two fp32 moments per parameter
    assert 0.0 <= F.exact_match(model, tok, task["test"]) <= 1.0


class NaNAtStep(nn.Module):
    """Wraps a model and makes its loss NaN on the n-th call."""

    def __init__(self, model, n):
        super().__init__()
        self.model, self.n, self.calls = model, n, 0

    def forward(self, **batch):
        self.calls += 1
        loss = self.model(**batch).loss
        return types.SimpleNamespace(loss=loss * float("nan") if self.calls == self.n else loss)


def test_nan_loss_stops_and_keeps_the_last_good_adapter(tiny):
    task = C.counting_qa_task(n_train=64, n_test=8)
    good, tok = peft_model(tiny)
    bad = copy.deepcopy(good)
    F.train(good, tok, task["train"], steps=2, batch_size=4, lr=1e-2, progress=False)
    hist = F.train(NaNAtStep(bad, 3), tok, task["train"], steps=5, batch_size=4, lr=1e-2, progress=False)
    assert hist["stopped"] and "step 2" in hist["stopped"] and len(hist["loss"]) == 2
    for (n1, p1), (n2, p2) in zip(F.lora_params(good).items(), F.lora_params(bad).items(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2)


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
