"""Notebook 04's exercises: right answers pass, trivial and pitfall answers fail with the right
diagnosis. (The worked solutions are run by tests/test_worked_solutions.py, for every notebook.)"""

import math

import numpy as np
import pytest
import torch
from _helpers import assert_mistakes_named
from _helpers import quiet_verdict as verdict

from lora_edu.exercises import nb04


def test_every_exercise_runs_as_given():
    for ex in (nb04.gpt2_medium_params, nb04.merge_conv1d, nb04.gradients_at_init, nb04.rslora_alpha,
               nb04.extract_lora):
        fb = verdict(ex, None)
        assert not fb and "no answer yet" in fb.message
        assert not verdict(ex, "something")  # unreadable answers are judged, not raised


def test_gpt2_medium_params():
    ex = nb04.gpt2_medium_params
    right = 24 * 16 * (1024 + 3072)
    assert verdict(ex, right) and verdict(ex, np.int64(right))
    cases = {
        24 * 16 * (1024 + 1024): "1024 x 1024",      # the pitfall: c_attn taken as square
        24 * 16 * 1024: "only A",
        24 * 16 * 3072: "only B",
        16 * (1024 + 3072): "one block",
        24 * 1024 * 3072: "frozen",
        0: "is not it",
    }
    assert_mistakes_named(ex, cases)
    assert not verdict(ex, float(right)) and not verdict(ex, True)


def test_merge_conv1d():
    ex = nb04.merge_conv1d
    W, A, B, alpha, r = (ex.data[k] for k in ("W_stored", "A", "B", "alpha", "r"))
    assert np.any(B), "B must be non-zero, or W itself would be right"
    s = alpha / r
    right = W + s * (B @ A).T
    assert verdict(ex, right) and verdict(ex, torch.tensor(right)) and verdict(ex, right.tolist())
    cases = [
        (W, "unchanged"),
        (W + (B @ A).T, "forgot the scaling"),
        (W + alpha / math.sqrt(r) * (B @ A).T, "rsLoRA"),
        (W - s * (B @ A).T, "unmerge"),
        (s * (B @ A).T, "update alone"),
        (W.T + s * B @ A, "(out, in) layout"),            # nn.Linear's layout: the pitfall
        (np.zeros((2, 2)), "shape"),
        (right + 0.1, "not W + (alpha / r)"),
    ]
    assert_mistakes_named(ex, cases)
    with pytest.raises(ValueError, match="read-only"):
        ex.data["W_stored"][0, 0] = 1.0                    # the problem cannot be edited by accident


def test_gradients_at_init():
    ex = nb04.gradients_at_init
    X, A, G, alpha, r = (ex.data[k] for k in ("X", "A", "G", "alpha", "r"))
    s = alpha / r
    right_B = s * G.T @ X @ A.T
    zero_A = np.zeros_like(A)
    assert verdict(ex, (zero_A, right_B)) and verdict(ex, [torch.zeros(2, 5), torch.tensor(right_B)])
    # the right answer agrees with autograd
    Xt, At, Gt = (torch.tensor(t) for t in (X, A, G))
    At.requires_grad_(True)
    Bt = torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)
    ((Xt @ At.T @ Bt.T) * s * Gt).sum().backward()
    assert torch.equal(At.grad, torch.zeros_like(At)) and np.allclose(Bt.grad.numpy(), right_B)
    cases = [
        ((zero_A, np.zeros_like(right_B)), "grad_B is not zero"),          # trivial
        ((np.ones_like(A), right_B), "grad_A is not zero"),
        ((zero_A, right_B / s), "forgot the scaling"),
        ((zero_A, -right_B), "wrong sign"),
        ((zero_A, right_B.T), "transposed"),
        ((zero_A, G.T @ X), "B's shape"),                                  # dL/dW, not dL/dB
        ((zero_A, right_B + 1), "differentiate"),
        (right_B, "pair"),
    ]
    assert_mistakes_named(ex, cases)


def test_rslora_alpha():
    ex = nb04.rslora_alpha
    right = 16 / 32 * math.sqrt(32)                      # s = 16 / 32 at r = 32, times sqrt(32)
    assert verdict(ex, right) and verdict(ex, 2.828) and verdict(ex, 2.83)
    # the right answer really gives standard LoRA's scaling at r = 32
    from torch import nn

    from lora_edu.lora import LoRALinear
    rs = LoRALinear(nn.Linear(64, 64), r=32, alpha=right, use_rslora=True)
    assert rs.scaling == pytest.approx(LoRALinear(nn.Linear(64, 64), r=32, alpha=16).scaling)
    cases = {
        16: "keeping lora_alpha",
        2 * math.sqrt(32): "keeps the old s",           # the pitfall: same s as at r = 8
        64: "standard-LoRA lora_alpha",
        0.5: "scaling s itself",
        32: "rsLoRA too",
        5: "gives s",
    }
    assert_mistakes_named(ex, cases)
    assert not verdict(ex, "2.83")


def test_extract_lora():
    ex = nb04.extract_lora
    dW, r = ex.data["delta_W"], ex.data["r"]
    U, S, Vt = np.linalg.svd(dW, full_matrices=False)
    assert verdict(ex, (U[:, :r] * S[:r], Vt[:r]))                          # Sigma on B's side
    root = np.sqrt(S[:r])
    assert verdict(ex, (torch.tensor(U[:, :r] * root), torch.tensor(root[:, None] * Vt[:r])))  # split
    cases = [
        ((U[:, :r], Vt[:r]), "dropped Sigma_r"),
        ((U[:, :r] * S[:r], S[:r, None] * Vt[:r]), "twice"),
        ((U[:, -r:] * S[-r:], Vt[-r:]), "smallest"),
        ((np.zeros((12, 3)), np.zeros((3, 10))), "keeps none"),
        (((U[:, :r] * S[:r]).T, Vt[:r].T), "study notes' shapes"),
        ((np.zeros((12, 4)), np.zeros((4, 10))), "must be (d, r)"),
        ((U[:, :r] * S[:r] * 1.1, Vt[:r]), "best rank-3"),
        ((U[:, :r] * S[:r], Vt[:r], 0), "pair"),
    ]
    assert_mistakes_named(ex, cases)
