"""Notebook 07's exercises: pitfall answers are never right, the feedback names the mistake, right
answers pass (trivial answers: tests/test_exercises_common.py)."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import printed_verdict

from lora_edu.exercises import nb07

verdict = printed_verdict


def test_problem_arrays_are_read_only():
    with pytest.raises(ValueError):
        nb07.dora_merge.data["W0"][0, 0] = 1.0


# --- 07.1 DoRA parameters on GPT-2's c_attn -------------------------------------------------------

def test_dora_params(capsys):
    k, d, r, n = 768, 2304, 8, 12
    assert verdict(nb07.dora_params, n * (r * (k + d) + d), capsys)
    for wrong, words in [(n * r * (k + d), "plain LoRA"), (n * (r * (k + d) + k), "input"),
                         (r * (k + d) + d, "one block")]:
        fb = verdict(nb07.dora_params, wrong, capsys)
        assert not fb and words in fb.message, fb.message


# --- 07.2 DoRA merge --------------------------------------------------------------------------------

def test_dora_merge(capsys):
    p = nb07.dora_merge.data
    s = p["alpha"] / p["r"]
    V = p["W0"] + s * p["B"] @ p["A"]
    right = (p["m"] / np.linalg.norm(V, axis=1))[:, None] * V
    assert verdict(nb07.dora_merge, right, capsys)
    columns = p["m"][:, None] * V / np.linalg.norm(V, axis=0)[None, :]
    fb = verdict(nb07.dora_merge, columns, capsys)
    assert not fb and "columns" in fb.message
    fb = verdict(nb07.dora_merge, V, capsys)
    assert not fb and "LoRA" in fb.message


# --- 07.3 PiSSA factors -----------------------------------------------------------------------------

def test_pissa_factors(capsys):
    p = nb07.pissa_factors.data
    r, s = p["r"], p["alpha"] / p["r"]
    U, S, Vt = np.linalg.svd(p["W0"], full_matrices=False)
    root = np.sqrt(S[:r] / s)
    B, A = U[:, :r] * root, root[:, None] * Vt[:r]
    assert verdict(nb07.pissa_factors, (B, A, p["W0"] - s * B @ A), capsys)
    assert verdict(nb07.pissa_factors, (-B, -A, p["W0"] - s * B @ A), capsys)          # a joint sign flip
    fb = verdict(nb07.pissa_factors, (B, A, p["W0"]), capsys)
    assert not fb and "W_res" in fb.message
    B2, A2 = U[:, :r] * np.sqrt(S[:r]), np.sqrt(S[:r])[:, None] * Vt[:r]                 # forgot s
    fb = verdict(nb07.pissa_factors, (B2, A2, p["W0"] - B2 @ A2), capsys)
    assert not fb and "s B A" in fb.message


# --- 07.4 combining adapters ----------------------------------------------------------------------

def test_combine_adapters(capsys):
    p = nb07.combine_adapters.data
    B = np.hstack([p["B1"], p["B2"]])
    A = np.vstack([p["w1"] * p["s1"] * p["A1"], p["w2"] * p["s2"] * p["A2"]])
    assert verdict(nb07.combine_adapters, (B, A), capsys)
    c1, c2 = np.sqrt(p["w1"] * p["s1"]), np.sqrt(p["w2"] * p["s2"])
    fb = verdict(nb07.combine_adapters, (c1 * p["B1"] + c2 * p["B2"], c1 * p["A1"] + c2 * p["A2"]), capsys)
    assert not fb and "linear" in fb.message
    fb = verdict(nb07.combine_adapters, (p["B1"] + p["B2"], p["A1"] + p["A2"]), capsys)
    assert not fb and "cross terms" in fb.message
    fb = verdict(nb07.combine_adapters, (p["B1"], p["w1"] * p["s1"] * p["A1"]), capsys)
    assert not fb and "first adapter" in fb.message


# --- 07.5 PiSSA adapter as a plain LoRA -----------------------------------------------------------

def test_pissa_as_lora(capsys):
    p = nb07.pissa_as_lora.data
    right = (np.hstack([p["B"], -p["B0"]]), np.vstack([p["A"], p["A0"]]))
    assert verdict(nb07.pissa_as_lora, right, capsys)
    fb = verdict(nb07.pissa_as_lora, (p["B"], p["A"]), capsys)
    assert not fb and "subtracted" in fb.message
    fb = verdict(nb07.pissa_as_lora, (p["B0"], p["A0"]), capsys)
    assert not fb and "B A - B0 A0" in fb.message


def test_dora_merge_rejects_the_frozen_weight(capsys):
    fb = verdict(nb07.dora_merge, nb07.dora_merge.data["W0"], capsys)
    assert not fb and "W0 itself" in fb.message


# The worked solutions and the answer cells: tests/test_worked_solutions.py (every notebook).
