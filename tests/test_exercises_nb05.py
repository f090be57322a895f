"""Notebook 05's exercises: pitfall answers are never right, the feedback names the mistake, right
answers pass. (Trivial answers: tests/test_exercises_common.py; the worked solutions and the answer
cells as given are run by tests/test_worked_solutions.py, for every notebook.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import printed_verdict

from lora_edu import quant as Q
from lora_edu.exercises import nb05

verdict = printed_verdict


# --- 05.1 bits of -2.75 in bfloat16 -----------------------------------------------------------------

RIGHT_BITS = ("1", "10000000", "0110000")


def test_bfloat16_bits_right(capsys):
    assert RIGHT_BITS == Q.float_bits(-2.75, "bfloat16")
    assert verdict(nb05.bfloat16_bits, RIGHT_BITS, capsys)
    assert verdict(nb05.bfloat16_bits, list(RIGHT_BITS), capsys)


@pytest.mark.parametrize("answer, words", [
    (("0", "10000000", "0110000"), "sign bit"),                        # the sign, and only the sign
    (("1", "00000001", "0110000"), "bias"),                            # true exponent without the bias
    (("1", "10000001", "0110000"), "off by one"),                      # 2.75 = 0.6875 x 2^2
    (("1", "10000000", "1011000"), "leading 1"),                       # the implicit 1 written out
    (("1", "10000000", "01100000000000000000000"), "23 is float32"),  # float32's mantissa width
    (("1", "10000", "0110000000"), "5 is float16"),                    # float16's layout
    (("1", "10000000", "0101000"), "binary fraction"),
    (("1", "1000000a", "0110000"), "0s and 1s"),
    (("1", "10000000"), "three bit strings"),
    ((1, 128, 48), "three bit strings"),
])
def test_bfloat16_bits_mistakes(answer, words, capsys):
    fb = verdict(nb05.bfloat16_bits, answer, capsys)
    assert not fb and words in fb.message, fb.message


def test_a_wrong_sign_is_not_reported_as_a_mantissa_problem(capsys):
    fb = verdict(nb05.bfloat16_bits, ("0", "10000000", "0110000"), capsys)
    assert "the sign bit is not" in fb.message and "leading 1" not in fb.message and "fraction" not in fb.message


# --- 05.2 absmax codes --------------------------------------------------------------------------------

RIGHT_CODES = [32, -76, 16, 127, 2]


def test_absmax_codes_right(capsys):
    q, _ = Q.absmax_quantize(torch.tensor(nb05.absmax_codes.data["x"]))
    assert q.tolist() == RIGHT_CODES
    for form in (RIGHT_CODES, tuple(RIGHT_CODES), np.array(RIGHT_CODES), torch.tensor(RIGHT_CODES),
                 [float(c) for c in RIGHT_CODES]):
        assert verdict(nb05.absmax_codes, form, capsys)


@pytest.mark.parametrize("answer, words", [
    ([31, -76, 15, 127, 1], "truncated"),
    ([31, -77, 15, 127, 1], "rounded down"),
    ([32, -76, 16, 127, 2.5], "integers"),
    ([31.75, -76.2, 15.875, 127.0, 1.905], "before rounding"),           # unrounded: not "truncated"
    ([0.5039, -1.1969, 0.252, 2.0, 0.0315], "dequantized"),
    ([32, -77, 16, 128, 2], "128"),
    ([64, -153, 32, 255, 4], "255"),
    ([32, 76, 16, 127, 2], "signs"),
    ([1, 2, 3, 4, 5], "compute the scale"),
    ([32, -76, 16, 127], "5 integer codes"),
])
def test_absmax_codes_mistakes(answer, words, capsys):
    fb = verdict(nb05.absmax_codes, answer, capsys)
    assert not fb and words in fb.message, fb.message


def test_unrounded_floats_are_not_called_truncation(capsys):
    fb = verdict(nb05.absmax_codes, [31.75, -76.2, 15.875, 127.0, 1.905], capsys)
    assert "truncat" not in fb.message


# --- 05.3 NF4 codes -------------------------------------------------------------------------------------

RIGHT_NF4 = [9, 2, 7, 15, 6, 11, 0, 7]


def test_nf4_codes_right(capsys):
    block = torch.tensor(nb05.nf4_codes.data["block"])
    packed, _ = Q.quantize_4bit(block, 8, "nf4")
    assert Q.unpack_4bit(packed).tolist() == RIGHT_NF4
    assert verdict(nb05.nf4_codes, RIGHT_NF4, capsys)


@pytest.mark.parametrize("answer, words", [
    ([8, 3, 7, 14, 6, 10, 1, 7], "raw weights"),                        # forgot to divide by the absmax
    ([c + 1 for c in RIGHT_NF4], "count from 0"),
    ([c - 8 for c in RIGHT_NF4], "not -8..7"),
    (Q.NF4_CODE[RIGHT_NF4].tolist(), "NF4 levels"),
    ((Q.NF4_CODE[RIGHT_NF4] * 0.8).tolist(), "dequantized"),
    ([9, 2, 7, 15, 6, 10, 0, 7], "1 of 8 codes differ"),
    ([8, 3, 7, 14, 7, 9, 0, 7], "evenly spaced"),                       # round(7 x) + 7: Int4's grid, not NF4's
    ([9, 2, 7, 15, 6, 11, 0, 16], "0..15"),
    ([9, 2, 7], "8 codes"),
])
def test_nf4_codes_mistakes(answer, words, capsys):
    fb = verdict(nb05.nf4_codes, answer, capsys)
    assert not fb and words in fb.message, fb.message


# --- 05.4 NF4 bytes ------------------------------------------------------------------------------------

N4 = 4096 * 11008
RIGHT_BYTES = N4 // 2 + N4 // 64 + 4 * (N4 // 64 // 256) + 4


def test_nf4_storage_bytes_right(capsys):
    assert RIGHT_BYTES == Q.blockwise_4bit_bytes(N4, 64, double_quant=True)["total"] == 23_259_908
    assert verdict(nb05.nf4_storage_bytes, RIGHT_BYTES, capsys)
    assert verdict(nb05.nf4_storage_bytes, float(RIGHT_BYTES), capsys)
    assert verdict(nb05.nf4_storage_bytes, RIGHT_BYTES - 4, capsys)       # without the one offset: accepted


@pytest.mark.parametrize("answer, words", [
    (N4 // 2, "codes alone"),
    (N4 // 2 + N4 // 16, "fp32 absmax"),
    (8 * RIGHT_BYTES, "bits"),
    (4 * N4, "bits"),                                   # 4 bits per weight counted as bytes
    (N4 // 2 + N4 // 64, "fp32 scale per 256"),
    (N4 // 2 + N4 // 64 + 4 * (N4 // 256) + 4, "256 *weights*"),      # second-level scale per 256 weights
    (round(N4 * 4.127 / 8), "rounded rate"),                          # the rate 4.127, not the byte count
    (N4, "bytes = n / 2"),
    ("23259908", "number of bytes"),
    (True, "number of bytes"),
])
def test_nf4_storage_bytes_mistakes(answer, words, capsys):
    fb = verdict(nb05.nf4_storage_bytes, answer, capsys)
    assert not fb and words in fb.message, fb.message


# --- 05.5 merge target ---------------------------------------------------------------------------------


def merge_parts():
    d = nb05.merge_target.data
    Wq = Q.nf4_dequantize(*Q.nf4_quantize(d["W"], d["blocksize"]), d["W"].shape, d["blocksize"])
    return d, Wq, d["alpha"] / d["r"]


def test_merge_target_right(capsys):
    d, Wq, s = merge_parts()
    right = Wq + s * d["B"] @ d["A"]
    assert verdict(nb05.merge_target, right, capsys)
    assert verdict(nb05.merge_target, right.numpy(), capsys)
    layer = Q.QuantizedLinear(d["W"], None, "nf4", blocksize=d["blocksize"])
    assert verdict(nb05.merge_target, layer.to_linear().weight.detach() + s * d["B"] @ d["A"], capsys)


def test_merge_target_mistakes(capsys):
    d, Wq, s = merge_parts()
    cases = [
        (d["W"] + s * d["B"] @ d["A"], "original W"),       # the merge mismatch itself
        (Wq + d["B"] @ d["A"], "scaled"),
        (Wq, "Q(W) alone"),
        (d["W"], "W unchanged"),
        ((Wq + s * d["B"] @ d["A"]).T, "transposed"),
        (torch.zeros(3, 3), "shape"),
        (Wq * 2, "not Q(W)"),
        (Wq + d["B"] @ d["A"] / s, "not r / alpha"),
        (Q.nf4_dequantize(*Q.nf4_quantize(Wq + s * d["B"] @ d["A"], 8), (4, 8), 8), "back to NF4"),
        (Q.nf4_dequantize(*Q.nf4_quantize(d["W"] + s * d["B"] @ d["A"], 8), (4, 8), 8), "back to NF4"),
        (Q.nf4_dequantize(*Q.nf4_quantize(d["W"], 64), (4, 8), 64) + s * d["B"] @ d["A"], "blocks of 64"),
    ]
    for answer, words in cases:
        fb = verdict(nb05.merge_target, answer, capsys)
        assert not fb and words in fb.message, fb.message


def test_merge_target_notices_a_problem_changed_in_place(capsys):
    d, Wq, s = merge_parts()
    right = Wq + s * d["B"] @ d["A"]
    W, saved = d["W"], d["W"].clone()
    W += 1.0                                   # a learner's in-place edit of the problem's own tensor
    try:
        fb = verdict(nb05.merge_target, right, capsys)
        assert not fb and "changed in place" in fb.message
    finally:
        W.copy_(saved)
    assert verdict(nb05.merge_target, right, capsys)


def test_the_notebook_has_an_open_task():
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).resolve().parent.parent / "notebooks" / "05_quantization.ipynb").read_text("utf-8"))
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "### Exercise 6 (open)" in markdown
