import copy

import pytest
import torch

from lora_edu import lora as L
from lora_edu.tasks import BottleneckAdapter, DigitsMLP, accuracy, digits_shift_task, train_classifier


@pytest.fixture(scope="module")
def task():
    return digits_shift_task()


def test_split_is_disjoint_and_labelled(task):
    assert set(task.source_train.y.tolist()) == set(range(5)) == set(task.target_test.y.tolist())
    parts = (task.source_train, task.source_test, task.target_train, task.target_test)
    assert sum(len(p.y) for p in parts) == 1797
    assert task.source_train.X.shape[1] == 64 and task.source_train.X.max() <= 1.0


def test_pretrain_then_lora_adapts(task):
    base = DigitsMLP(hidden=32)
    train_classifier(base, task.source_train, epochs=15, lr=3e-3)
    assert accuracy(base, task.source_test) > 0.9
    before = accuracy(base, task.target_test)
    m = L.add_lora(copy.deepcopy(base), ["fc1", "fc2"], r=4, alpha=8)
    L.mark_only_lora_as_trainable(m)
    m.head.requires_grad_(True)
    hist = train_classifier(m, task.target_train, epochs=15, lr=3e-3)
    assert hist["loss"][-1] < hist["loss"][0]
    assert accuracy(m, task.target_test) > before + 0.4
    assert torch.equal(m.fc1.base.weight, base.fc1.weight)  # the base stayed frozen


def test_adapter_starts_as_identity():
    a = BottleneckAdapter(8, 2)
    x = torch.randn(3, 8)
    assert torch.equal(a(x), x)


def test_digits_mlp_leaves_the_global_rng_alone_and_keeps_its_weights():
    from torch import nn

    torch.manual_seed(0)
    old = [nn.Linear(64, 32), nn.Linear(32, 32), nn.Linear(32, 5)]  # what the seed-0 model used to be
    state = torch.get_rng_state()
    model = DigitsMLP(hidden=32, seed=0)
    assert torch.equal(state, torch.get_rng_state())
    for a, b in zip(old, (model.fc1, model.fc2, model.head), strict=True):
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert not torch.equal(DigitsMLP(hidden=32, seed=1).fc1.weight, model.fc1.weight)


def test_train_classifier_seeds_dropout_and_restores_the_global_rng(task):
    def run():
        torch.manual_seed(123)
        m = L.add_lora(DigitsMLP(hidden=16), ["fc2"], r=2, alpha=4, dropout=0.5)
        L.mark_only_lora_as_trainable(m)
        state = torch.get_rng_state()
        hist = train_classifier(m, task.target_train, epochs=2, lr=1e-2, seed=3)
        assert torch.equal(state, torch.get_rng_state())
        return hist["loss"]

    assert run() == run()


def test_full_batch_and_sgd(task):
    m = DigitsMLP(hidden=16)
    hist = train_classifier(m, task.source_train, epochs=30, lr=1.0, batch_size=None, optimizer="sgd")
    assert len(hist["loss"]) == 30 and hist["loss"][-1] < hist["loss"][0] - 0.3
    again = train_classifier(DigitsMLP(hidden=16), task.source_train, epochs=30, lr=1.0, batch_size=None,
                             optimizer="sgd")
    assert again["loss"] == hist["loss"]  # full batch: no shuffling, the same run twice
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train_classifier(m, task.source_train, epochs=1, lr=1e-3, optimizer="adamw")


def test_train_classifier_errors(task):
    frozen = DigitsMLP(hidden=8).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train_classifier(frozen, task.source_train, epochs=1, lr=1e-3)
    with pytest.raises(ValueError, match="epochs must be in"):
        train_classifier(DigitsMLP(hidden=8), task.source_train, epochs=0, lr=1e-3)
