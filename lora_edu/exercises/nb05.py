"""Exercises of notebook 05 (quantization to QLoRA).

How to use them, and how they are written: :mod:`lora_edu.exercises`.

* :data:`bfloat16_bits` - the sign, exponent and mantissa bits of -2.75 in bfloat16;
* :data:`absmax_codes` - int8 absmax codes of a short vector, by hand;
* :data:`nf4_codes` - the NF4 codes (0..15) of one block of 8 weights;
* :data:`nf4_storage_bytes` - exact bytes of a LLaMA-7B MLP weight in NF4 with double quantization;
* :data:`merge_target` - the merged weight of a QLoRA adapter that keeps the function it was trained for.

The notebook's open task (NF4's block size against a budget of bits per parameter) has no checker.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from lora_edu.exercises._core import as_number, exercise, is_whole_number

__all__ = ["bfloat16_bits", "absmax_codes", "nf4_codes", "nf4_storage_bytes", "merge_target"]


def _read_int_list(answer: object, n: int, what: str) -> tuple[np.ndarray | None, str]:
    """``answer`` as n integers; otherwise (None, the reason). Whole floats (31.0) are *not* integers here."""
    if isinstance(answer, torch.Tensor):
        answer = answer.tolist()
    if isinstance(answer, np.ndarray):
        answer = answer.tolist()
    if not isinstance(answer, (list, tuple)):
        return None, f"give a list of {n} {what}, got {type(answer).__name__}"
    if len(answer) != n:
        return None, f"give one code per value: {n} {what}, got {len(answer)}"
    if any(isinstance(a, bool) or not isinstance(a, numbers.Real) for a in answer):
        return None, f"every entry must be a number; got {answer!r}"
    values = np.array([float(a) for a in answer])
    if not np.all(np.isfinite(values)):
        return None, "the answer contains NaN or inf"
    return values, ""


# --- 1. the bits of -2.75 in bfloat16 ---------------------------------------------------------------


def _float_bits(x: float, dtype: str) -> tuple[str, str, str]:
    from lora_edu.quant import float_bits

    return float_bits(x, dtype)


@exercise("05.1", answer_format="a tuple of three strings of 0s and 1s: (sign, exponent, mantissa)",
          data={"x": -2.75, "dtype": "bfloat16"})
def bfloat16_bits(answer: object, x: float, dtype: str) -> tuple[bool, str]:
    """Write the bits of -2.75 in bfloat16 as (sign, exponent, mantissa) strings."""
    from lora_edu.quant import FLOAT_FORMATS

    right = _float_bits(x, dtype)
    if not (isinstance(answer, (tuple, list)) and len(answer) == 3 and all(isinstance(a, str) for a in answer)):
        return False, "give a tuple of three bit strings: (sign, exponent, mantissa), e.g. ('0', '10000001', '1110000')"
    sign, exponent, mantissa = (a.strip() for a in answer)
    if any(set(part) - {"0", "1"} for part in (sign, exponent, mantissa)) or not all((sign, exponent, mantissa)):
        return False, "each part must be a non-empty string of 0s and 1s"
    _, e_bits, m_bits = FLOAT_FORMATS[dtype]
    if (sign, exponent, mantissa) == right:
        return True, (f"{x} = -1.011 (binary) x 2^1: sign {right[0]} (negative), exponent 1 + 127 = 128 = "
                      f"{right[1]}, mantissa {right[2]} (the bits after the leading 1, which is not stored)")
    problems = []
    if len(sign) != 1:
        problems.append("the sign is a single bit")
    if len(exponent) != e_bits:
        hint = " (5 is float16's width; bfloat16 keeps float32's 8)" if len(exponent) == 5 else ""
        problems.append(f"{dtype} has {e_bits} exponent bits, you gave {len(exponent)}{hint}")
    if len(mantissa) != m_bits:
        hint = {23: " (23 is float32's; bfloat16 is float32 with the last 16 bits cut)", 10: " (10 is float16's)"}
        problems.append(f"{dtype} has {m_bits} mantissa bits, you gave {len(mantissa)}{hint.get(len(mantissa), '')}")
    if problems:
        return False, "; ".join(problems)
    parts = zip(("sign", "exponent", "mantissa"), (sign, exponent, mantissa), right, strict=True)
    wrong = [name for name, a, b in parts if a != b]
    if wrong == ["sign"]:
        return False, (f"exponent and mantissa are right, the sign bit is not: it is 1 for a negative number "
                       f"({x} < 0), 0 for a positive one")
    if "exponent" in wrong:
        e = int(exponent, 2)
        if e == 1:
            return False, "you wrote the true exponent 1; it is stored with a bias of 127: 1 + 127 = 128"
        if e == 128 - 1 or e == 128 + 1:
            return False, (f"exponent {e} is off by one: 2.75 = 1.375 x 2^1, so the true exponent is 1 "
                           "and the stored one 1 + 127 = 128")
        return False, "the stored exponent is (true exponent) + 127, with 2.75 = 1.375 x 2^1"
    if mantissa == "1" + right[2][:-1]:
        return False, ("the mantissa stores the bits *after* the leading 1 of 1.011 (binary); "
                       "that 1 is implicit and not stored")
    return False, ("the mantissa is the binary fraction of 1.375 = 1.011 (binary) without its leading 1, "
                   "padded with zeros to 7 bits")


# --- 2. absmax int8 codes by hand ----------------------------------------------------------------------


@exercise("05.2", data={"x": (0.5, -1.2, 0.25, 2.0, 0.03), "bits": 8}, answer_format="a list of 5 ints")
def absmax_codes(answer: object, x: tuple[float, ...], bits: int) -> tuple[bool, str]:
    """Quantize x to signed int8 with absmax (one scale for the whole vector): give the integer codes."""
    xs = np.array(x, dtype=np.float32)
    qmax = 2 ** (bits - 1) - 1
    scale = np.float32(np.abs(xs).max()) / np.float32(qmax)
    exact = xs / scale                                    # x / scale before rounding
    right = np.round(exact)
    values, why = _read_int_list(answer, len(xs), "integer codes")
    if values is None:
        return False, why
    if np.array_equal(values, right):
        return True, (f"scale = max|x| / {qmax} = {float(scale):.6f}; codes = round(x / scale), "
                      "so the largest value gets exactly +127")
    if np.allclose(values, right * scale, atol=1e-4):
        return False, "these are the dequantized values (code x scale); the answer is the integer codes"
    if np.allclose(values, exact, atol=1e-3):
        return False, ("these are x / scale before rounding: a code is an integer, round each one to the nearest "
                       "integer (31.75 -> 32)")
    if not np.all(values == np.round(values)):
        return False, "codes are integers: round(x / scale) for each value"
    if np.array_equal(values, np.trunc(exact)):
        return False, "you truncated toward zero (31.75 -> 31); quantization rounds to the nearest integer (-> 32)"
    if np.array_equal(values, np.floor(exact)):
        return False, "you rounded down (floor); quantization rounds to the nearest integer"
    if np.array_equal(values, np.ceil(exact)):
        return False, "you rounded up (ceil); quantization rounds to the nearest integer"
    for wrong_max, name in ((128, "128"), (255, "255")):
        if np.array_equal(values, np.round(xs * wrong_max / np.abs(xs).max())):
            return False, (f"you scaled to {name}; signed int8 absmax uses [-127, 127] so that +x and -x stay "
                           "symmetric (and 255 belongs to unsigned zero-point quantization)")
    if np.abs(values).max() > qmax:
        return False, f"int8 absmax codes lie in [-{qmax}, {qmax}]; some of yours do not"
    if np.array_equal(np.abs(values), np.abs(right)):
        return False, "the magnitudes are right but some signs are not: a negative value keeps its sign"
    return False, f"not round(x * {qmax} / max|x|); compute the scale from the largest |x| first"


# --- 3. NF4 codes of one block ------------------------------------------------------------------------


def _nf4_right(w: tuple[float, ...]) -> np.ndarray:
    from lora_edu.quant import NF4_CODE, nearest_code

    t = torch.tensor(w, dtype=torch.float32)
    return nearest_code(t / t.abs().max(), NF4_CODE).numpy().astype(float)


@exercise("05.3", answer_format="a list of 8 ints in 0..15",
          data={"block": (0.12, -0.40, 0.03, 0.80, -0.05, 0.26, -0.80, 0.0)})
def nf4_codes(answer: object, block: tuple[float, ...]) -> tuple[bool, str]:
    """NF4-quantize one block of 8 weights (blocksize 8): give the 4-bit code (0..15) of each weight."""
    from lora_edu.quant import NF4_CODE, nearest_code

    right = _nf4_right(block)
    values, why = _read_int_list(answer, len(block), "codes (ints 0..15)")
    if values is None:
        return False, why
    if np.array_equal(values, right):
        return True, ("divide the block by its absmax (0.8), then take the index of the nearest of the 16 NF4 "
                      "levels: the largest |value| always gets code 0 or 15")
    t = torch.tensor(block, dtype=torch.float32)
    levels = NF4_CODE.numpy()
    if not np.all(values == np.round(values)):
        if np.allclose(values, levels[right.astype(int)] * float(t.abs().max()), atol=1e-3):
            return False, "these are the dequantized values; the answer is the codes, the indices 0..15 of the levels"
        if np.allclose(values, levels[right.astype(int)], atol=1e-3):
            return False, "these are the NF4 levels; the answer is their indices 0..15 (NF4_CODE[code] = level)"
        return False, "codes are integers 0..15 (indices into the table of 16 levels)"
    if np.array_equal(values, nearest_code(t, NF4_CODE).numpy()):
        return False, ("you looked up the raw weights; first divide the block by its absmax so that it spans "
                       "[-1, 1] like the levels")
    if np.array_equal(values, np.round(t.numpy() / float(t.abs().max()) * 7) + 7):
        return False, ("these are evenly spaced (Int4-style) levels, round(7 x) + 7; NF4's 16 levels are the table "
                       "NF4_CODE, denser near 0: take the index of the nearest entry of NF4_CODE")
    if np.array_equal(values, right + 1):
        return False, "every code is one too high: codes count from 0 (NF4_CODE[0] = -1.0)"
    if np.array_equal(values, right - 8):
        return False, "codes are unsigned indices 0..15, not -8..7"
    if values.min() < 0 or values.max() > 15:
        return False, "a 4-bit code is an integer 0..15"
    wrong = int((values != right).sum())
    return False, (f"{wrong} of {len(block)} codes differ: scale by 1/absmax, then pick the *nearest* level "
                   "(compare with the midpoints between neighbouring levels)")


# --- 4. exact bytes of an NF4 weight with double quantization ------------------------------------------


@exercise("05.4", data={"shape": (4096, 11008), "blocksize": 64, "dq_blocksize": 256}, answer_format="an int (bytes)")
def nf4_storage_bytes(answer: object, shape: tuple[int, int], blocksize: int,
                             dq_blocksize: int) -> tuple[bool, str]:
    """How many bytes does a 4096 x 11008 weight (one of LLaMA-7B's MLP matrices) take in NF4 with blocks of 64 and
    double quantization (blocks of 256 constants), everything included?"""
    from lora_edu.quant import blockwise_4bit_bytes

    n = shape[0] * shape[1]
    parts = blockwise_4bit_bytes(n, blocksize, double_quant=True, dq_blocksize=dq_blocksize)
    right = parts["total"]
    if isinstance(answer, bool) or not (is_whole_number(answer) or as_number(answer) is not None):
        return False, f"give a number of bytes, got {answer!r}"
    val = float(answer)
    n_blocks = -(-n // blocksize)
    scale_bytes = 4 * -(-n_blocks // dq_blocksize)
    if val == right:
        return True, (f"{parts['codes']:,} bytes of codes (n / 2) + {n_blocks:,} one-byte constants + "
                      f"{scale_bytes:,} bytes of fp32 second-level scales + a 4-byte offset "
                      f"= {right:,} bytes, {8 * right / n:.4f} bits per weight")
    if abs(val - right) <= 4:
        return True, f"{val:,.0f} is within the 4-byte offset of the exact {right:,}: right"
    fp32_constants = blockwise_4bit_bytes(n, blocksize, double_quant=False)["total"]
    if val == parts["codes"]:
        return False, "that is the codes alone (n / 2 bytes); add the block constants"
    if val == fp32_constants:
        return False, ("that counts one fp32 absmax per block (4.5 bits per weight); with double quantization each is "
                       "1 byte")
    if val == 8 * right or val == 8 * parts["codes"]:
        return False, "that is a number of bits (4 per weight is half a byte, not 4 bytes); divide by 8 for bytes"
    if val == parts["codes"] + n_blocks:
        return False, ("codes and 8-bit constants are counted; the fp32 scale per 256 blocks (and the offset) are "
                       "missing")
    if abs(val - (parts["codes"] + n_blocks + 4 * -(-n // dq_blocksize))) <= 4:
        return False, ("that has one fp32 scale per 256 *weights*; double quantization groups the constants: one "
                       "scale per 256 blocks of 64 weights")
    if abs(val - right) <= 0.002 * right:
        return False, (f"close ({val:,.0f} against the exact count): 4.127 bits per weight is a rounded rate, so "
                       "n x 4.127 / 8 is not a byte count; add up the bytes of each part exactly")
    return False, "bytes = n / 2 (codes) + one byte per block of 64 + 4 bytes per 256 blocks + 4 bytes of offset"


# --- 5. where to merge a QLoRA adapter -----------------------------------------------------------------


def _merge_problem():
    from lora_edu.quant import nf4_dequantize, nf4_quantize

    g = torch.Generator().manual_seed(5)
    W = torch.randn(4, 8, generator=g) * 0.5
    B = torch.randn(4, 2, generator=g) * 0.1
    A = torch.randn(2, 8, generator=g) * 0.1
    Wq = nf4_dequantize(*nf4_quantize(W, 8), W.shape, 8)
    return W, B, A, Wq


_W5, _B5, _A5, _ = _merge_problem()


@exercise("05.5", answer_format="a (4, 8) tensor or array",
          data={"W": _W5, "B": _B5, "A": _A5, "alpha": 4.0, "r": 2, "blocksize": 8})
def merge_target(answer: object, W: torch.Tensor, B: torch.Tensor, A: torch.Tensor, alpha: float, r: int,
                        blocksize: int) -> tuple[bool, str]:
    """A QLoRA adapter (B, A, alpha, r) was trained on the NF4 weight Q(W) of W (blocks of 8). Give the merged fp32
    weight that computes exactly what the QLoRA layer computed."""
    from lora_edu.quant import nf4_dequantize, nf4_quantize

    try:
        ans = torch.as_tensor(np.asarray(answer, dtype=np.float64)).float()
    except (TypeError, ValueError) as exc:
        raise ValueError("the answer is not a matrix of numbers") from exc
    pristine = _merge_problem()
    if not all(torch.equal(a, b) for a, b in zip((W, B, A), pristine[:3], strict=True)):
        return False, ("the problem's W, B or A was changed in place (an in-place operation on data['W'] ...); "
                       "restart the kernel (the problem is built when nb05 is first imported) and work on copies "
                       "(.clone())")
    s = alpha / r
    Wq = nf4_dequantize(*nf4_quantize(W, blocksize), W.shape, blocksize)
    right = Wq + s * B @ A
    if ans.shape != right.shape:
        if ans.shape == right.T.shape:
            return False, "transposed: the weight is (out, in) = (4, 8), like W"
        return False, f"shape {tuple(ans.shape)}; the merged weight has W's shape {tuple(W.shape)}"
    if torch.allclose(ans, right, atol=1e-5):
        return True, ("Q(W) + (alpha / r) B A: the adapter was trained on top of the dequantized Q(W), so only this "
                      "sum computes what the QLoRA model computed")
    if torch.allclose(ans, W + s * B @ A, atol=1e-5):
        return False, ("that merges into the original W; the adapter learned to work with Q(W), and W - Q(W) is "
                       "an error it never saw (the merge mismatch): use Q(W)")
    if torch.allclose(ans, Wq + B @ A, atol=1e-5) or torch.allclose(ans, W + B @ A, atol=1e-5):
        return False, f"the update is scaled: (alpha / r) B A with alpha / r = {s:g}"
    if torch.allclose(ans, Wq + B @ A / s, atol=1e-5) or torch.allclose(ans, W + B @ A / s, atol=1e-5):
        return False, f"the scaling is alpha / r = {alpha:g} / {r} = {s:g}, not r / alpha"
    requantized = [nf4_dequantize(*nf4_quantize(m, blocksize), W.shape, blocksize) for m in (right, W + s * B @ A)]
    if any(torch.allclose(ans, m, atol=1e-5) for m in requantized):
        return False, ("that quantizes the merged weight back to NF4: the rounding moves it away from "
                       "Q(W) + (alpha / r) B A again; the merged weight stays in float32")
    for other in (64, 4, 16, 32):
        Wq_other = nf4_dequantize(*nf4_quantize(W, other), W.shape, other)
        if other != blocksize and torch.allclose(ans, Wq_other + s * B @ A, atol=1e-5):
            return False, (f"that is Q(W) with blocks of {other}; the adapter was trained on Q(W) with blocks of "
                           f"{blocksize}, and a different block size gives a different Q(W)")
    if torch.allclose(ans, Wq, atol=1e-5):
        return False, "that is Q(W) alone; add the adapter's update (alpha / r) B A"
    if torch.allclose(ans, W, atol=1e-5):
        return False, "that is W unchanged; the task is to merge the adapter"
    return False, "not Q(W) + (alpha / r) B A, with Q(W) the NF4 round trip of W in blocks of 8"
