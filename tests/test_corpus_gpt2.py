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
    assert C.spaced_digits(347) == "3 4 7"
    with pytest.raises(ValueError, match=r"n must be in \[0, 999\]"):
        C.number_to_words(1000)


def test_corpus_is_seeded_and_task_disjoint():
    assert C.course_corpus(50, seed=1) == C.course_corpus(50, seed=1)
    assert C.course_corpus(50, seed=1) != C.course_corpus(50, seed=2)
    task = C.counting_qa_task(n_train=600, n_test=160, seed=0)
    train = {ex.prompt.split("\n")[0] for ex in task["train"]}
    test = {ex.prompt.split("\n")[0] for ex in task["test"]}
    assert len(task["train"]) == 600 and len(task["test"]) == 160 and not train & test
    ex = C.counting_qa_example("Ada", 47, "apples", "garden", "how many")
    assert ex.prompt == "Ada counted forty-seven apples in the garden.\nQuestion: How many?\nAnswer:"
    assert ex.target == " forty-seven" and ex.answer == "forty-seven"
    assert C.answer_has_right_type(" seven", ex) and not C.answer_has_right_type(" Ada", ex)
    corpus = "\n".join(C.course_corpus(3000))
    assert "Question:" not in corpus and "Answer:" not in corpus  # the task's format is new to the base model


def test_task_is_balanced_and_answers_are_spans():
    task = C.counting_qa_task(n_train=160, n_test=200)
    for part in task.values():
        kinds = Counter(ex.kind for ex in part)
        assert set(kinds) == set(C.QUESTIONS) and max(kinds.values()) - min(kinds.values()) <= 1
        assert set(Counter(ex.story for ex in part)) == set(range(len(C.STORIES)))
        for ex in part:
            words = " " + ex.prompt.split("\n")[0].replace(",", " ").replace(".", " ") + " "
            assert f" {ex.answer} " in words and C.answer_has_right_type(ex.answer, ex)
    assert C.counting_qa_task(n_test=48)["train"] == C.counting_qa_task()["train"]  # the notebook shrinks n_test
    assert C.counting_qa_task(n_test=48)["test"] != C.counting_qa_task()["test"][:48]
    with pytest.raises(ValueError, match="question must be one of"):
        C.counting_qa_example("Ada", 1, "cats", "box", "why")
    with pytest.raises(ValueError, match="story must be in"):
        C.counting_qa_example("Ada", 1, "cats", "box", "who", story=len(C.STORIES))


def test_chance_levels():
    assert C.chance_level("who") == 1 / 10 and C.chance_level("what") == 1 / 16
    assert C.chance_level("where") == 1 / 10 and C.chance_level("how many") == 1 / 1000
    assert len(C.number_words()) == 1000
    with pytest.raises(ValueError, match="kind must be one of"):
        C.chance_level("why")


def test_the_task_prompt_uses_only_tokens_the_pretraining_saw():
    """The fallback's embedding gives tokens its corpus never used one shared row (OTHER): a prompt
    token outside the corpus would be invisible to the model."""
    tok = G.gpt2_tokenizer()
    seen = set(tok("\n".join(C.course_corpus(4000, seed=1)))["input_ids"])
    for ex in C.counting_qa_task(n_train=40, n_test=40)["test"] + C.reading_probe(40):
        assert set(tok(ex.text)["input_ids"]) <= seen, ex.text


def test_reading_probe_asks_in_prose():
    probes = C.reading_probe(40)
    assert Counter(p.kind for p in probes) == {k: 10 for k in C.QUESTIONS}
    for p in probes:
        story, _, ask = p.prompt.rpartition(". ")
        assert ask in C.PROBES.values() and f" {p.answer}" in f" {story}"
    assert C.reading_probe(5, seed=1) != C.reading_probe(5, seed=2)


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

    (text,) = generate_answers(model, tok, [C.TaskExample("There are", "")], max_new_tokens=6)
    assert text.strip()


def test_fallback_can_read_and_copy():
    """The ability notebook 06's task needs: read a story, copy the right word. A rebuild of the
    fallback that loses it fails here (chance is about 7 %)."""
    from lora_edu.finetune import reading_accuracy

    model, tok, _ = G.load_gpt2(G.FALLBACK, verbose=False)
    probe = reading_accuracy(model, tok, C.reading_probe(120, seed=777))
    assert probe["chance"] < 0.07
    assert probe["accuracy"] >= 0.85, probe
    assert all(acc >= 0.7 for acc in probe["by_kind"].values()), probe
    record = json.loads((G.FALLBACK_DIR / "training.json").read_text())
    assert record["reading_accuracy"] >= 0.9


def test_fallback_vocabulary_expansion_is_exact():
    """Tokens the corpus never uses share one embedding row, trained as one class (OTHER)."""
    model, tok, _ = G.load_gpt2(G.FALLBACK, verbose=False)
    wte = model.transformer.wte.weight
    used = sorted(set(tok("\n".join(C.course_corpus(4000, seed=1)))["input_ids"]))
    unused = torch.ones(len(wte), dtype=torch.bool)
    unused[used] = False
    assert torch.equal(wte[unused], wte[unused][:1].expand(int(unused.sum()), -1))
    assert not torch.equal(wte[used[0]], wte[used[1]])


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
