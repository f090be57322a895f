import json
import os
import sys
from collections import Counter

import pytest
import torch

from lora_edu import corpus as C
from lora_edu import gpt2 as G


def test_number_words():
    assert C.number_to_words(0) == "zero"
    assert C.number_to_words(13) == "thirteen"
    assert C.number_to_words(40) == "forty"
    assert C.number_to_words(47) == "forty-seven"
    assert C.number_to_words(100) == "one hundred"
    assert C.number_to_words(347) == "three hundred forty-seven"
    with pytest.raises(ValueError, match=r"n must be in \[0, 999\]"):
        C.number_to_words(1000)


def test_categories_are_disjoint_and_labels_are_one_token():
    assert len(C.LABELS) == 8 and all(len(nouns) == 24 for nouns in C.CATEGORIES.values())
    assert len(C.KIND) == 192 == len(set(C.NOUNS))   # no noun in two kinds
    tok = G.gpt2_tokenizer()
    assert all(len(tok(" " + label)["input_ids"]) == 1 for label in C.LABELS)
    held = [n for n in C.NOUNS if C.is_held_out(n)]
    assert len(held) == 64 and Counter(C.KIND[n] for n in held) == {k: 8 for k in C.LABELS}
    with pytest.raises(ValueError, match="noun must be one of the 192 nouns"):
        C.is_held_out("students")
    assert C.chance_level() == 1 / 8


def test_corpus_is_seeded_and_teaches_every_kind():
    assert C.course_corpus(50, seed=1) == C.course_corpus(50, seed=1)
    assert C.course_corpus(50, seed=1) != C.course_corpus(50, seed=2)
    paragraphs = C.course_corpus(20_000, seed=1)
    corpus = "\n".join(paragraphs)
    assert "Question:" not in corpus and "Answer:" not in corpus  # the task's format is new to the base model
    assert C.QUESTION not in corpus
    said = Counter(noun for p in paragraphs for noun in C.NOUNS
                   if f"{noun} " in f"{p.lower()} " and f"kind of {C.KIND[noun]}" in p)
    assert set(said) == set(C.NOUNS) and min(said.values()) >= 20   # every noun's kind, held-out nouns too


def test_task_holds_out_nouns_and_is_balanced():
    task = C.category_task(n_train=800, n_test=200, seed=0)
    assert len(task["train"]) == 800 and len(task["test"]) == 200
    assert not any(C.is_held_out(ex.noun) for ex in task["train"])
    assert all(C.is_held_out(ex.noun) for ex in task["test"])
    for part in task.values():
        kinds = Counter(ex.kind for ex in part)
        assert set(kinds) == set(C.LABELS) and max(kinds.values()) - min(kinds.values()) <= 1
        assert set(Counter(ex.story for ex in part)) == set(range(len(C.STORIES)))
        for ex in part:
            story, question, answer = ex.text.split("\n")
            assert f" {ex.noun}" in story and question == f"Question: {C.QUESTION}" and answer == f"Answer: {ex.kind}"
            assert C.KIND[ex.noun] == ex.answer == ex.kind
    assert len({ex.noun for ex in task["test"]}) >= 56   # nearly every held-out noun is asked
    assert C.category_task(n_test=48)["train"] == task["train"]  # the notebook shrinks n_test on a slow machine
    ex = C.category_example("Ada", 47, "pears", "garden")
    assert ex.text == ("Ada counted forty-seven pears in the garden.\n"
                       "Question: What kind of thing was counted?\nAnswer: fruit")
    with pytest.raises(ValueError, match="noun must be one of"):
        C.category_example("Ada", 1, "students", "yard")
    with pytest.raises(ValueError, match="story must be in"):
        C.category_example("Ada", 1, "cats", "yard", story=len(C.STORIES))


def test_the_task_uses_only_tokens_the_pretraining_saw():
    """The fallback's embedding gives tokens its corpus never used one shared row (OTHER): a prompt
    token outside the corpus would be invisible to the model."""
    tok = G.gpt2_tokenizer()
    seen = set(tok("\n".join(C.course_corpus(20_000, seed=1)))["input_ids"])
    task = C.category_task(n_train=160, n_test=64)
    for ex in task["train"] + task["test"] + C.knowledge_probe(40):
        assert set(tok(ex.text)["input_ids"]) <= seen, ex.text


def test_knowledge_probe_asks_in_the_pretraining_words():
    probes = C.knowledge_probe(40)
    assert Counter(p.kind for p in probes) == {k: 5 for k in C.LABELS}
    for p in probes:
        assert p.prompt.endswith(". " + C.PROBE) and f" {p.noun}" in p.prompt and C.is_held_out(p.noun)
        assert "Question" not in p.prompt and p.target == " " + C.KIND[p.noun]
    assert C.knowledge_probe(5, seed=1) != C.knowledge_probe(5, seed=2)


def test_tokenizer_is_real_gpt2():
    tok = G.gpt2_tokenizer()
    assert tok("Hello world")["input_ids"] == [15496, 995]
    assert len(tok) == 50257 and tok.eos_token_id == 50256


@pytest.fixture
def tiny_folder(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, n_positions=64))
    model.save_pretrained(tmp_path / "m")
    G.gpt2_tokenizer().save_pretrained(tmp_path / "m")
    return tmp_path / "m", model


def test_load_gpt2_from_a_local_folder(tiny_folder):
    folder, original = tiny_folder
    model, tok, source = G.load_gpt2(str(folder))
    assert source.kind == "local" and not source.is_fallback
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), original.state_dict().items(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2)
    assert tok("Hello world")["input_ids"] == [15496, 995]


def test_unknown_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model folder"):
        G.load_gpt2(str(tmp_path / "does" / "not" / "exist"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="is a file"):
        G.load_gpt2(str(tmp_path / "file.txt"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OSError, match="no loadable GPT-2 in folder"):
        G.load_gpt2(str(empty))
    with pytest.raises(TypeError, match="non-empty string"):
        G.load_gpt2(5)


def test_offline_hub_name_falls_back_loudly(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")   # as the probe would set it with no network
    model, tok, source = G.load_gpt2("gpt2")
    assert source.is_fallback and "'gpt2' was requested" in str(source)
    assert "OFFLINE MODE" in capsys.readouterr().out
    assert type(model).__name__ == "GPT2LMHeadModel"
    names = {n.split(".", 3)[-1] for n, _ in model.named_modules() if n.startswith("transformer.h.0.")}
    assert {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"} <= names
    record = json.loads((G.FALLBACK_DIR / "training.json").read_text())
    assert record["steps"] >= 100 and record["final_loss"] < 3.0


def test_fallback_is_good_enough_to_teach_with():
    model, tok, source = G.load_gpt2(G.FALLBACK, verbose=False)
    assert source.kind == "fallback"
    ppl = G.perplexity(model, tok, C.held_out_text(60))
    assert ppl < 20  # uniform guessing over 50,257 tokens would be 50,257
    from lora_edu.finetune import generate_answers

    (text,) = generate_answers(model, tok, [C.TaskExample("There are", "", "", "")], max_new_tokens=6)
    assert text.strip()


def test_fallback_knows_the_kinds():
    """The ability notebook 06's task needs: after a story about a held-out noun, the base model says
    its kind in the pretraining's words. A rebuild of the fallback that loses it fails here (chance 1/8)."""
    from lora_edu.finetune import task_metrics

    model, tok, _ = G.load_gpt2(G.FALLBACK, verbose=False)
    probe = task_metrics(model, tok, C.knowledge_probe(160, seed=777), probe=True)
    assert probe["exact_match"] >= 0.85, probe
    assert all(m["exact_match"] >= 0.6 for m in probe["by_kind"].values()), probe
    record = json.loads((G.FALLBACK_DIR / "training.json").read_text())
    assert record["knowledge_probe"] >= 0.9


def test_fallback_vocabulary_expansion_is_exact():
    """Tokens the corpus never uses share one embedding row, trained as one class (OTHER)."""
    model, tok, _ = G.load_gpt2(G.FALLBACK, verbose=False)
    wte = model.transformer.wte.weight.detach()
    n_used = json.loads((G.FALLBACK_DIR / "training.json").read_text())["vocabulary_used"]
    rows, counts = torch.unique(wte, dim=0, return_counts=True)
    assert len(rows) == n_used + 1                       # every used token its own row, plus OTHER's
    assert int(counts.max()) == len(wte) - n_used        # OTHER's row, copied into every unused token
    used = sorted(set(tok("\n".join(C.course_corpus(400, seed=1)))["input_ids"]))   # the build's corpus seed
    other = rows[counts.argmax()]
    assert not any(torch.equal(wte[i], other) for i in used)


def test_probe_happens_before_transformers_import(tmp_path):
    import subprocess

    code = (
        "import os, sys; os.environ['HF_HUB_OFFLINE']='1'; from lora_edu import gpt2; "
        "assert 'transformers' not in sys.modules; m, t, s = gpt2.load_gpt2('gpt2', verbose=False); "
        "print(s.kind, os.environ['HF_HUB_OFFLINE'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "LORA_EDU_CACHE": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("fallback 1")


def test_perplexity_errors_and_determinism(tiny_folder):
    folder, _ = tiny_folder
    model, tok, _ = G.load_gpt2(str(folder))
    text = C.held_out_text(5)
    assert G.perplexity(model, tok, text) == G.perplexity(model, tok, text)
    with pytest.raises(ValueError, match="at least two tokens"):
        G.perplexity(model, tok, "a")
