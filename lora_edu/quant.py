"""Notebook 05: number formats and quantization from scratch, up to QLoRA.

* :func:`float_bits` - the sign / exponent / mantissa bits of a float32, float16 or bfloat16 value.
* absmax (symmetric, signed) and zero-point (asymmetric, unsigned) integer quantization,
  per tensor (``dim=None``) or with one scale per slice along ``dim`` (per channel), and blockwise.
* 4-bit blockwise quantization with a 16-entry code: NF4 (QLoRA's NormalFloat), FP4 (1 sign, 2
  exponent, 1 mantissa bit) and Int4 (evenly spaced). :func:`quantize_4bit` follows
  bitsandbytes' CPU code step by step, so codes and block constants are *bit-identical* to
  ``bitsandbytes.functional.quantize_4bit``: scale each block of ``blocksize`` values by its absmax,
  pick the nearest code (a value exactly on a midpoint goes to the lower one), pack two 4-bit codes
  per byte with the first in the high nibble.
* double quantization of the per-block absmax constants (bitsandbytes' 8-bit dynamic code, blocks
  of 256), and the overhead in bits per parameter.
* :class:`QuantizedLinear`: a frozen 4-bit or int8 weight, dequantized on the fly in ``forward``
  *and again in backward* (the fp32 weight is never kept for the backward pass), computed in a
  chosen ``compute_dtype``; wrap it in :class:`lora_edu.lora.LoRALinear` and you have a QLoRA layer.
* :func:`token_scores` - per-token negative log-likelihoods and KL divergence from a reference model,
  to compare quantized models on the same tokens.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch
from torch import nn

from lora_edu._checks import check_int
from lora_edu._utils import is_conv1d, linear_shape, replace_submodule, tensor_bytes

#: (sign, exponent, mantissa) bit counts
FLOAT_FORMATS = {"float32": (1, 8, 23), "float16": (1, 5, 10), "bfloat16": (1, 8, 7)}
_TORCH_FLOAT = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
#: bytes per parameter for model-size arithmetic (4-bit formats without their block constants)
BYTES_PER_PARAM = {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0, "int8": 1.0, "int4": 0.5, "nf4": 0.5}

#: The 16 NF4 levels, exactly bitsandbytes' table (float32 values).
NF4_CODE = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
], dtype=torch.float32)
#: Decision thresholds: a scaled value goes to level i+1 when it is *above* midpoint i.
NF4_MIDPOINTS = (NF4_CODE[1:] + NF4_CODE[:-1]) / 2
#: The probability offset bitsandbytes uses for the extreme quantiles (QLoRA paper, appendix).
NF4_OFFSET = 0.9677083


def _fp4_code() -> torch.Tensor:
    """bitsandbytes' FP4 (E2M1): the value of each 4-bit pattern ``s ee m``, divided by the largest.

    Exponent bits 00 are subnormal (0 and 0.0625), otherwise ``2^(e) * (1 + m/2)`` with bitsandbytes'
    bias; listed in bit-pattern order 0b0000 ... 0b1111 (the sign is the high bit).
    """
    magnitudes = [0.0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0]          # patterns 000 ... 111
    values = magnitudes + [-m for m in magnitudes]                    # 0b1000 is -0, as in bnb's C kernel
    return torch.tensor(values, dtype=torch.float32) / 12.0


#: The 16 values of each 4-bit format, indexed by the 4-bit code (bitsandbytes' tables).
CODES_4BIT = {
    "nf4": NF4_CODE,
    "fp4": _fp4_code(),
    # Int4: absmax with 15 evenly spaced levels -7/7 ... 7/7 (and a second zero), as bitsandbytes' "int4"
    "int4": torch.tensor([7, 6, 5, 4, 3, 2, 1, 0, 0, -1, -2, -3, -4, -5, -6, -7], dtype=torch.float32) / 7,
}


def _check_dtype(dtype: str, allowed) -> str:
    if dtype not in allowed:
        raise ValueError(f"dtype must be one of {sorted(allowed)}, got {dtype!r}")
    return dtype


def float_bits(x: float, dtype: str = "float32") -> tuple[str, str, str]:
    """The (sign, exponent, mantissa) bit strings of ``x`` rounded to ``dtype``.

    >>> float_bits(7.5)
    ('0', '10000001', '11100000000000000000000')
    """
    dtype = _check_dtype(dtype, FLOAT_FORMATS)
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"x must be a real number, got {type(x).__name__}")
    s_bits, e_bits, m_bits = FLOAT_FORMATS[dtype]
    width = s_bits + e_bits + m_bits
    t = torch.tensor([float(x)], dtype=_TORCH_FLOAT[dtype])
    raw = t.view(torch.int32 if width == 32 else torch.int16).item() & ((1 << width) - 1)
    bits = format(raw, f"0{width}b")
    return bits[0], bits[1 : 1 + e_bits], bits[1 + e_bits :]


def float_from_bits(sign: str, exponent: str, mantissa: str) -> float:
    """Decode IEEE-style bits (any widths): (-1)^s * 1.m * 2^(e - bias), with subnormals, inf and NaN."""
    e_bits = len(exponent)
    bias = 2 ** (e_bits - 1) - 1
    e = int(exponent, 2)
    frac = int(mantissa, 2) / 2 ** len(mantissa) if mantissa else 0.0
    sgn = -1.0 if sign == "1" else 1.0
    if e == 2**e_bits - 1:
        return sgn * math.inf if frac == 0 else math.nan
    if e == 0:
        return sgn * frac * 2.0 ** (1 - bias)
    return sgn * (1 + frac) * 2.0 ** (e - bias)


def format_summary(dtype: str) -> dict[str, float]:
    """Largest value, smallest normal value and machine epsilon (spacing after 1.0) of ``dtype``."""
    dtype = _check_dtype(dtype, FLOAT_FORMATS)
    fi = torch.finfo(_TORCH_FLOAT[dtype])
    return {"max": float(fi.max), "min_normal": float(fi.tiny), "eps": float(fi.eps),
            "decimal_digits": -math.log10(float(fi.eps))}


def model_size_bytes(n_params: int, dtype: str) -> int:
    """Bytes to store ``n_params`` numbers in ``dtype`` (4-bit formats: half a byte, rounded up).

    For 4-bit formats this counts the codes only; :func:`blockwise_4bit_bytes` adds the block constants.
    """
    n_params = check_int(n_params, "n_params", 0)
    dtype = _check_dtype(dtype, BYTES_PER_PARAM)
    return math.ceil(n_params * BYTES_PER_PARAM[dtype])


def training_memory_bytes(n_params: int, trainable: int | None = None, weight_dtype: str = "float32") -> dict[str, int]:
    """Weights + gradients + Adam's two moment estimates (fp32), ignoring activations.

    Only trainable parameters need gradients and optimizer state: that is LoRA's memory saving.
    """
    n_params = check_int(n_params, "n_params", 0)
    trainable = n_params if trainable is None else check_int(trainable, "trainable", 0, n_params)
    parts = {
        "weights": model_size_bytes(n_params, weight_dtype),
        "gradients": model_size_bytes(trainable, "float32"),
        "adam_states": 2 * model_size_bytes(trainable, "float32"),
    }
    parts["total"] = sum(parts.values())
    return parts


def blockwise_4bit_bytes(n_params: int, blocksize: int = 64, double_quant: bool = False,
                         dq_blocksize: int = 256) -> dict[str, int]:
    """Exact bytes of one weight tensor of ``n_params`` values stored as bitsandbytes stores 4-bit.

    * ``codes``: two 4-bit codes per byte, ``ceil(n / 2)``;
    * ``constants``: one fp32 absmax per block of ``blocksize`` (4 bytes each); with double
      quantization instead one byte per block, plus one fp32 scale per ``dq_blocksize`` blocks and
      one fp32 offset (the mean of the absmax values) for the tensor.
    """
    n_params = check_int(n_params, "n_params", 1)
    blocksize = _check_blocksize(blocksize)
    n_blocks = math.ceil(n_params / blocksize)
    if double_quant:
        constants = n_blocks + 4 * math.ceil(n_blocks / _check_blocksize(dq_blocksize, "dq_blocksize")) + 4
    else:
        constants = 4 * n_blocks
    codes = math.ceil(n_params / 2)
    return {"codes": codes, "constants": constants, "total": codes + constants}


# ------------------------------------------------------------------------------------------------
# Integer quantization
# ------------------------------------------------------------------------------------------------


def _check_bits_dim(x: torch.Tensor, bits: int, dim: int | None) -> tuple[torch.Tensor, int, int | None]:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or inf; its scale would be undefined")
    bits = check_int(bits, "bits", 2, 8)
    if dim is not None:
        dim = check_int(dim, "dim", -x.ndim, x.ndim - 1) % x.ndim
    return x.float(), bits, dim


def _reduce(x: torch.Tensor, fn, dim: int | None) -> torch.Tensor:
    """``fn`` over everything (dim=None, a 0-d result) or over all dims but ``dim`` (keepdim)."""
    if dim is None:
        return fn(x)
    others = [d for d in range(x.ndim) if d != dim]
    return fn(x, dim=others, keepdim=True) if others else x.clone()


def absmax_quantize(x: torch.Tensor, bits: int = 8, dim: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric quantization: ``q = round(x / scale)`` with ``scale = absmax / (2^(bits-1) - 1)``.

    Returns ``(q, scale)``: ``q`` int8 in [-qmax, qmax] (|q| <= 127 at 8 bits), ``scale`` float32,
    a scalar (``dim=None``) or one per slice along ``dim`` (broadcastable). An all-zero tensor or
    slice gets scale 1, so it round-trips to exact zeros instead of NaN.
    """
    x, bits, dim = _check_bits_dim(x, bits, dim)
    qmax = 2 ** (bits - 1) - 1
    amax = _reduce(x.abs(), torch.amax, dim)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    q = torch.clamp(torch.round(x / scale), -qmax, qmax).to(torch.int8)
    return q, scale


def absmax_dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``q * scale`` as float32."""
    return q.float() * scale


def zeropoint_quantize(
    x: torch.Tensor, bits: int = 8, dim: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric quantization onto 0 .. 2^bits - 1: ``q = round(x / scale) + zero_point``.

    The range [min, max] is widened to include 0 so that zero (padding, ReLU outputs) is exact.
    Returns ``(q, scale, zero_point)``: q uint8, scale float32, zero_point int32-valued float tensor.
    """
    x, bits, dim = _check_bits_dim(x, bits, dim)
    qmax = 2**bits - 1
    lo = torch.clamp(_reduce(x, torch.amin, dim), max=0.0)
    hi = torch.clamp(_reduce(x, torch.amax, dim), min=0.0)
    span = hi - lo
    scale = torch.where(span > 0, span / qmax, torch.ones_like(span))
    zero_point = torch.clamp(torch.round(-lo / scale), 0, qmax)
    q = torch.clamp(torch.round(x / scale) + zero_point, 0, qmax).to(torch.uint8)
    return q, scale, zero_point


def zeropoint_dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """``(q - zero_point) * scale`` as float32."""
    return (q.float() - zero_point) * scale


def blockwise_absmax_roundtrip(x: torch.Tensor, bits: int = 4, blocksize: int = 64) -> torch.Tensor:
    """Quantize-dequantize with one absmax scale per block of ``blocksize`` consecutive values."""
    blocksize = check_int(blocksize, "blocksize", 1)
    flat, pad = _blocks(x, blocksize)
    q, scale = absmax_quantize(flat, bits, dim=0)
    return _unblock(absmax_dequantize(q, scale), pad, x.shape)


def _blocks(x: torch.Tensor, blocksize: int) -> tuple[torch.Tensor, int]:
    flat = x.detach().float().reshape(-1)
    pad = (-len(flat)) % blocksize
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return flat.view(-1, blocksize), pad


def _unblock(blocks: torch.Tensor, pad: int, shape) -> torch.Tensor:
    flat = blocks.reshape(-1)
    return (flat[: len(flat) - pad] if pad else flat).reshape(shape)


# ------------------------------------------------------------------------------------------------
# 4-bit blockwise quantization: NF4, FP4, Int4
# ------------------------------------------------------------------------------------------------


def nf4_levels_from_quantiles(offset: float = NF4_OFFSET) -> torch.Tensor:
    """Rebuild NF4 from standard-normal quantiles (bitsandbytes' ``create_normal_map``).

    8 positive levels from the quantiles at probabilities linspace(offset, 0.5, 9)[:-1], 7 negative
    ones from linspace(offset, 0.5, 8)[:-1], plus an exact 0 (asymmetric so that zero is
    representable with 4 bits); then everything is divided by the largest, giving [-1, 1].
    """
    nd = NormalDist()

    def linspace(a, b, n):
        return [a + (b - a) * i / (n - 1) for i in range(n)]

    pos = [nd.inv_cdf(p) for p in linspace(offset, 0.5, 9)[:-1]]
    neg = [-nd.inv_cdf(p) for p in linspace(offset, 0.5, 8)[:-1]]
    values = torch.tensor(sorted(pos + [0.0] + neg), dtype=torch.float64)
    return (values / values.abs().max()).float()


def _check_blocksize(blocksize: int, name: str = "blocksize") -> int:
    blocksize = check_int(blocksize, name, 2, 4096)
    if blocksize & (blocksize - 1):
        raise ValueError(f"{name} must be a power of two in [2, 4096], got {blocksize}")
    return blocksize


def _check_quant_type(quant_type: str) -> torch.Tensor:
    if quant_type not in CODES_4BIT:
        raise ValueError(f"quant_type must be one of {sorted(CODES_4BIT)}, got {quant_type!r}")
    return CODES_4BIT[quant_type]


def _check_float_tensor(x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
        raise TypeError(f"x must be a floating-point torch.Tensor, got {type(x).__name__}")
    if x.numel() == 0:
        raise ValueError("x is empty")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or inf; its block's absmax would be undefined")
    return x


def nearest_code(scaled: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """The index (uint8) of the nearest entry of ``code`` for each value of ``scaled``.

    The code is sorted, the decision thresholds are the midpoints between neighbours, and a value
    exactly *on* a midpoint goes to the lower neighbour (``torch.bucketize``'s ``right=False``), as
    in bitsandbytes. A code listed in bit-pattern order (FP4, Int4) is sorted first and the sorted
    position mapped back to its bit pattern.
    """
    code = code.to(scaled.device)  # the code tables live on the CPU; the tensor may be on a GPU
    order = torch.argsort(code, stable=True)  # identity for NF4; FP4 / Int4: a permutation (stable: their
    # two zeros, +0 and -0, keep their bit patterns on every device, as in bitsandbytes)
    ordered = code[order]
    midpoints = (ordered[:-1] + ordered[1:]) / 2
    return order[torch.bucketize(scaled, midpoints)].to(torch.uint8)


def quantize_4bit(x: torch.Tensor, blocksize: int = 64, quant_type: str = "nf4") -> tuple[torch.Tensor, torch.Tensor]:
    """Blockwise 4-bit quantization of ``x`` (any shape, flattened), bit-identical to bitsandbytes.

    Returns:
        ``(packed, absmax)``: packed uint8 of length ceil(numel / 2), two codes per byte with the
        first in the high nibble; absmax float32, one per block of ``blocksize`` consecutive values
        (the last block may be shorter).
    """
    x = _check_float_tensor(x)
    blocksize = _check_blocksize(blocksize)
    code = _check_quant_type(quant_type)
    flat = x.detach().reshape(-1).float()
    n = flat.numel()
    full = n - n % blocksize
    blocks = flat[:full].view(-1, blocksize)
    absmax = blocks.abs().amax(dim=1)
    # bitsandbytes multiplies whole blocks by 1/absmax (1e-38 guards an all-zero block) and clamps;
    # x * (1/a) can differ from x / a in the last bit, which decides values that sit on a midpoint.
    scaled = torch.clamp(blocks * (1.0 / absmax.clamp(min=1e-38))[:, None], -1, 1).reshape(-1)
    if full < n:  # the last, shorter block: bitsandbytes divides here
        tail = flat[full:]
        tail_max = tail.abs().max().clamp(min=1e-38)  # stored clamped (an all-zero tail keeps 1e-38)
        absmax = torch.cat([absmax, tail_max[None]])
        scaled = torch.cat([scaled, torch.clamp(tail / tail_max, -1, 1)])
    if n % 2:  # an odd count: one padding value 0 completes the last byte
        scaled = torch.cat([scaled, scaled.new_zeros(1)])
    codes = nearest_code(scaled, code)
    packed = (codes[0::2] << 4) | codes[1::2]
    return packed, absmax


def unpack_4bit(packed: torch.Tensor) -> torch.Tensor:
    """The 4-bit codes (0..15) in order: high nibble first."""
    return torch.stack([packed >> 4, packed & 0x0F], dim=1).reshape(-1)


def dequantize_4bit(packed: torch.Tensor, absmax: torch.Tensor, shape, blocksize: int = 64,
                    quant_type: str = "nf4") -> torch.Tensor:
    """Inverse of :func:`quantize_4bit`: each code's value times its block's absmax, reshaped."""
    blocksize = _check_blocksize(blocksize)
    code = _check_quant_type(quant_type)
    shape = torch.Size(shape)
    n = shape.numel()
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8:
        got = getattr(packed, "dtype", type(packed).__name__)
        raise TypeError(f"packed must be a uint8 tensor (two 4-bit codes per byte), got {got}")
    if packed.numel() != math.ceil(n / 2):
        raise ValueError(f"packed holds {2 * packed.numel()} codes but shape {tuple(shape)} needs {n}")
    if absmax.numel() != math.ceil(n / blocksize):
        raise ValueError(f"absmax has {absmax.numel()} blocks; {n} values in blocks of {blocksize} need "
                         f"{math.ceil(n / blocksize)}")
    # One lookup per byte: row b of the table holds the values of b's high and low nibble (the
    # unpacked codes are never materialised; this is what makes dequantizing cheap enough to repeat).
    values = _byte_table(code).to(packed.device).index_select(0, packed.reshape(-1).long()).reshape(-1)[:n]
    absmax = absmax.float().to(packed.device)
    full = n - n % blocksize
    out = torch.empty(n, dtype=torch.float32, device=packed.device)
    out[:full] = (values[:full].view(-1, blocksize) * absmax[: full // blocksize, None]).reshape(-1)
    if full < n:
        out[full:] = values[full:] * absmax[-1]
    return out.reshape(shape)


def _byte_table(code: torch.Tensor) -> torch.Tensor:
    """(256, 2): the values of the high and the low 4-bit code of every byte value."""
    byte = torch.arange(256)
    return torch.stack([code[byte >> 4], code[byte & 0x0F]], dim=1)


def nf4_quantize(x: torch.Tensor, blocksize: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """NF4 quantization: :func:`quantize_4bit` with ``quant_type="nf4"``."""
    return quantize_4bit(x, blocksize, "nf4")


def nf4_dequantize(packed: torch.Tensor, absmax: torch.Tensor, shape, blocksize: int = 64) -> torch.Tensor:
    """Inverse of :func:`nf4_quantize`."""
    return dequantize_4bit(packed, absmax, shape, blocksize, "nf4")


def nf4_unpack(packed: torch.Tensor) -> torch.Tensor:
    """The 4-bit codes in order (high nibble first); same as :func:`unpack_4bit`."""
    return unpack_4bit(packed)


def import_bitsandbytes():
    """``(bitsandbytes.functional, "")`` where bitsandbytes imports here, else ``(None, the reason)``.

    bitsandbytes' CPU backend logs that an optional faster kernel could not be fetched from the hub;
    :func:`lora_edu._utils.quiet_libraries` drops exactly that message before the import.
    """
    from lora_edu._utils import quiet_libraries

    quiet_libraries()
    try:
        import bitsandbytes.functional as bnb_functional
    except Exception as exc:  # not installed, or no backend for this machine
        return None, f"{type(exc).__name__}: {exc}"
    return bnb_functional, ""


# ------------------------------------------------------------------------------------------------
# Double quantization of the block constants
# ------------------------------------------------------------------------------------------------


def dynamic_map_8bit() -> torch.Tensor:
    """bitsandbytes' signed 8-bit *dynamic* code (``create_dynamic_map(signed=True)``), 256 sorted values.

    For i = 0..6 it holds 2^i evenly spaced fractions in (0.1, 1) times 10^(i-6), with both signs,
    plus 0 and 1: fine steps near zero, coarse ones near 1 (a float-like code for 8 bits).
    """
    data: list[float] = []
    for i in range(7):
        edges = torch.linspace(0.1, 1, 2**i + 1, dtype=torch.float32)
        means = (edges[:-1] + edges[1:]) / 2.0
        data += ((10 ** (i - 6)) * means).tolist()
        data += (-(10 ** (i - 6)) * means).tolist()
    data += [0.0, 1.0]
    return torch.tensor(sorted(data), dtype=torch.float32)


DYNAMIC_MAP_8BIT = dynamic_map_8bit()


def double_quantize(absmax: torch.Tensor, blocksize: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quantize the fp32 block constants themselves (QLoRA's double quantization), as bitsandbytes does.

    The mean is subtracted (the absmax values are all positive; centring uses the signed code
    better), then blocks of ``blocksize`` constants are scaled by their own absmax and each goes to
    the nearest of the 256 values of :data:`DYNAMIC_MAP_8BIT`.

    Returns ``(codes, scales, offset)``: uint8 codes (one per constant), fp32 scale per block of
    ``blocksize`` constants, the fp32 mean.
    """
    blocksize = _check_blocksize(blocksize)
    absmax = _check_float_tensor(absmax).float().reshape(-1)
    offset = absmax.mean()
    centred = absmax - offset
    blocks, pad = _blocks(centred, blocksize)
    scales = blocks.abs().amax(dim=1)
    scaled = torch.clamp(blocks * (1.0 / scales.clamp(min=1e-38))[:, None], -1, 1)
    codes = nearest_code(_unblock(scaled, pad, centred.shape), DYNAMIC_MAP_8BIT)
    return codes, scales, offset


def double_dequantize(codes: torch.Tensor, scales: torch.Tensor, offset: torch.Tensor,
                      blocksize: int = 256) -> torch.Tensor:
    """Recover the absmax constants from :func:`double_quantize`'s output."""
    blocksize = _check_blocksize(blocksize)
    values = DYNAMIC_MAP_8BIT.to(codes.device)[codes.long()]
    blocks, pad = _blocks(values, blocksize)
    return _unblock(blocks * scales[:, None], pad, values.shape) + offset


def overhead_bits(blocksize: int = 64, double_quant: bool = False, dq_blocksize: int = 256) -> float:
    """Extra bits per parameter for the block constants (large tensors; the one offset is ignored).

    One fp32 absmax per block: 32 / blocksize (0.5 at 64). With double quantization: an 8-bit
    absmax per block plus one fp32 scale per ``dq_blocksize`` blocks: 8/64 + 32/(64*256) = 0.127.
    """
    blocksize = _check_blocksize(blocksize)
    if not double_quant:
        return 32 / blocksize
    return 8 / blocksize + 32 / (blocksize * _check_blocksize(dq_blocksize, "dq_blocksize"))


# ------------------------------------------------------------------------------------------------
# Quantized layers and QLoRA
# ------------------------------------------------------------------------------------------------


#: "nf4", "fp4", "int4" (blockwise 4-bit, packed two per byte); "int8" / "int4-channel" (absmax, one
#: scale per output channel); "int8-tensor" / "int4-tensor" (absmax, one scale for the whole weight).
#: The int4 per-channel / per-tensor codes are kept unpacked (one byte each): they exist to measure error.
QUANT_METHODS = ("nf4", "fp4", "int4", "int8", "int8-tensor", "int4-channel", "int4-tensor")
_INT_METHODS = {"int8": (8, 0), "int8-tensor": (8, None), "int4-channel": (4, 0), "int4-tensor": (4, None)}
_COMPUTE_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


class _DequantizeMatmul(torch.autograd.Function):
    """``x @ W.T`` with ``W`` dequantized in forward and *again* in backward (bitsandbytes' MatMul4Bit).

    Autograd would otherwise keep the dequantized fp32 weight alive until backward, which is the
    memory QLoRA exists to save. W is frozen, so backward only needs ``grad_x = grad_out @ W``, and
    only when something before this layer needs a gradient.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, layer: QuantizedLinear) -> torch.Tensor:
        ctx.layer = layer
        return x @ layer._dequantize_counted("forward", x.dtype).T

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        if not ctx.needs_input_grad[0]:
            return None, None
        return grad_out @ ctx.layer._dequantize_counted("backward", grad_out.dtype), None


class QuantizedLinear(nn.Module):
    """A frozen linear layer whose weight is stored in 4 bits (NF4 / FP4 / Int4, blockwise) or int8.

    ``forward`` dequantizes the weight, casts input and weight to ``compute_dtype`` (QLoRA: bfloat16),
    computes ``x @ W.T + b`` and returns the input's dtype. The backward pass dequantizes again
    instead of storing the weight (see :class:`_DequantizeMatmul`); ``dequantize_calls`` counts both.
    There are no trainable parameters; wrap it in :class:`lora_edu.lora.LoRALinear` to train a QLoRA
    adapter on top. LoRA cannot be *merged* into it (``mergeable = False``, and
    :attr:`mergeable_reason` says why for this layer's format): writing ``W0 + s B A`` back into
    the quantized storage would round the small update away; merge into :meth:`to_linear` (the
    dequantized weight the adapter was trained on) instead.

    Args:
        weight: (out_features, in_features), the nn.Linear layout.
        bias: (out_features,) or None; kept in float32.
        method: one of :data:`QUANT_METHODS`.
        blocksize: values per absmax block for the 4-bit methods (a power of two).
        double_quant: also quantize the 4-bit methods' block constants (:func:`double_quantize`).
        compute_dtype: dtype of the matrix product (torch.float32, torch.bfloat16 or torch.float16).
    """

    is_quantized = True
    mergeable = False

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, method: str = "nf4", blocksize: int = 64,
                 double_quant: bool = False, compute_dtype: torch.dtype = torch.float32):
        super().__init__()
        if method not in QUANT_METHODS:
            raise ValueError(f"method must be one of {QUANT_METHODS}, got {method!r}")
        if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
            raise ValueError("weight must be a 2-D tensor (out_features, in_features), "
                             f"got {getattr(weight, 'shape', weight)}")
        if compute_dtype not in _COMPUTE_DTYPES:
            raise ValueError(f"compute_dtype must be one of {_COMPUTE_DTYPES}, got {compute_dtype}")
        if double_quant and method not in CODES_4BIT:
            raise ValueError(f"double_quant applies to the 4-bit methods {sorted(CODES_4BIT)}, not {method!r}")
        self.method, self.blocksize, self.double_quant = method, _check_blocksize(blocksize), bool(double_quant)
        self.compute_dtype = compute_dtype
        self.out_features, self.in_features = weight.shape
        w = weight.detach().float()
        if method in CODES_4BIT:
            packed, absmax = quantize_4bit(w, self.blocksize, method)
            self.register_buffer("packed", packed)
            if self.double_quant:
                codes, scales, offset = double_quantize(absmax)
                self.register_buffer("absmax_codes", codes)
                self.register_buffer("absmax_scales", scales)
                self.register_buffer("absmax_offset", offset)
            else:
                self.register_buffer("absmax", absmax)
        else:  # absmax with one scale per output channel (row), or one for the whole tensor
            bits, dim = _INT_METHODS[method]
            q, scale = absmax_quantize(w, bits=bits, dim=dim)
            self.register_buffer("q", q)
            self.register_buffer("scale", scale)
        self.bias = None if bias is None else nn.Parameter(bias.detach().float().clone(), requires_grad=False)
        self.dequantize_calls = {"forward": 0, "backward": 0}

    @classmethod
    def from_module(cls, module: nn.Module, method: str = "nf4", blocksize: int = 64, double_quant: bool = False,
                    compute_dtype: torch.dtype = torch.float32) -> QuantizedLinear:
        """Quantize an ``nn.Linear`` or a GPT-2 ``Conv1D`` (whose (in, out) weight is transposed first)."""
        _, _, fan_in_fan_out = linear_shape(module)
        weight = module.weight.T if fan_in_fan_out else module.weight
        return cls(weight, module.bias, method, blocksize, double_quant, compute_dtype)

    @property
    def mergeable_reason(self) -> str:
        """Why :class:`lora_edu.lora.LoRALinear` refuses to merge into this layer (read by ``lora.merge_refusal``)."""
        if self.method in CODES_4BIT:
            grid = (f"{self.method.upper()}, 16 codes per block of {self.blocksize} weights"
                    + (", double-quantized constants" if self.double_quant else ""))
            size = "as large as a typical LoRA update or larger"
        else:
            bits, dim = _INT_METHODS[self.method]
            grid = f"int{bits}, {2 ** bits - 1} levels per {'output channel' if dim == 0 else 'tensor'}"
            size = "up to half a step per entry"
        return (f"its weight is stored quantized ({grid}), so merging would mean quantizing Q(W0) + (alpha / r) B A "
                f"again; that rounding ({size}) changes the function the adapter was trained for. Merge into the "
                "dequantized weight instead: layer.to_linear() returns an nn.Linear holding Q(W0), the weight the "
                "adapter was trained on")

    def block_constants(self) -> torch.Tensor:
        """The fp32 absmax per block (after double quantization, its dequantized values)."""
        if self.method not in CODES_4BIT:
            raise ValueError(f"method {self.method!r} has no block constants")
        if self.double_quant:
            return double_dequantize(self.absmax_codes, self.absmax_scales, self.absmax_offset)
        return self.absmax

    def _dequantize(self) -> torch.Tensor:
        if self.method in CODES_4BIT:
            return dequantize_4bit(self.packed, self.block_constants(), (self.out_features, self.in_features),
                                   self.blocksize, self.method)
        return absmax_dequantize(self.q, self.scale)

    def _dequantize_counted(self, phase: str, dtype: torch.dtype) -> torch.Tensor:
        self.dequantize_calls[phase] += 1
        return self._dequantize().to(dtype)

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight, (out_features, in_features), float32 (recomputed on each access)."""
        return self._dequantize()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _DequantizeMatmul.apply(x.to(self.compute_dtype), self)
        if self.bias is not None:
            out = out + self.bias.to(self.compute_dtype)
        return out.to(x.dtype)

    def to_linear(self) -> nn.Linear:
        """An ``nn.Linear`` holding the dequantized weight Q(W) and the bias: where to merge a QLoRA adapter."""
        layer = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        with torch.no_grad():
            layer.weight.copy_(self._dequantize())
            if self.bias is not None:
                layer.bias.copy_(self.bias)
        return layer

    def storage_bytes(self) -> int:
        """Bytes actually held: quantized weight, its constants and the bias."""
        return tensor_bytes(list(self.buffers()) + list(self.parameters()))

    def bits_per_parameter(self) -> float:
        """Bits of the quantized weight and its constants (not the bias) per weight entry."""
        return 8 * tensor_bytes(self.buffers()) / (self.in_features * self.out_features)

    def extra_repr(self) -> str:
        extra = f", blocksize={self.blocksize}, double_quant={self.double_quant}" if self.method in CODES_4BIT else ""
        return (f"in_features={self.in_features}, out_features={self.out_features}, method={self.method}{extra}, "
                f"compute_dtype={str(self.compute_dtype).replace('torch.', '')}")


def quantize_model(model: nn.Module, method: str = "nf4", blocksize: int = 64, skip: tuple[str, ...] = ("lm_head",),
                   double_quant: bool = False, compute_dtype: torch.dtype = torch.float32):
    """Replace every ``nn.Linear`` / GPT-2 ``Conv1D`` (except names in ``skip``) by a QuantizedLinear.

    In place; returns ``(model, n_replaced)``. Embeddings and the output head are left as they are
    (as in QLoRA and bitsandbytes' ``load_in_4bit``).
    """
    targets = [(n, m) for n, m in model.named_modules()
               if (isinstance(m, nn.Linear) or is_conv1d(m)) and n.split(".")[-1] not in skip]
    if not targets:
        raise ValueError("model has no nn.Linear or Conv1D layers to quantize")
    for name, module in targets:
        quantized = QuantizedLinear.from_module(module, method, blocksize, double_quant, compute_dtype)
        replace_submodule(model, name, quantized)
    return model, len(targets)


def storage_bytes(model: nn.Module) -> int:
    """Bytes of all parameters and buffers of ``model`` (each tensor once)."""
    return tensor_bytes(list(model.parameters()) + list(model.buffers()))


def saved_for_backward_bytes(fn, exclude=()) -> tuple[object, int]:
    """Run ``fn()`` and return ``(its result, bytes autograd keeps alive for the backward pass)``.

    Every tensor that autograd saves during ``fn()`` is counted once by its storage (a view keeps
    its whole buffer alive). Storages of the tensors in ``exclude`` (e.g. the model's parameters,
    which exist anyway) are not counted. Deterministic: shapes, not timings or RSS.
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = fn()
    return result, sum(kept.values())


# ------------------------------------------------------------------------------------------------
# Scoring a language model token by token
# ------------------------------------------------------------------------------------------------


@torch.no_grad()
def token_scores(models: dict[str, nn.Module], ids: torch.Tensor, block_size: int = 64, reference: str | None = None,
                 temperatures: tuple[float, ...] = (1.0,), desc: str | None = None,
                 max_batch_tokens: int = 128) -> dict[str, dict[str, torch.Tensor]]:
    """Score several language models on the same tokens, token by token.

    ``ids`` (1-D) is cut into consecutive blocks of ``block_size`` tokens, each predicted from the
    block's earlier tokens only (the same cut as :func:`lora_edu.gpt2.perplexity`; ``exp`` of the
    mean NLL is its perplexity). For every model it returns ``{"nll": (len(temperatures), n) tensor}``
    (the logits divided by each temperature first; 1.0 is the model as it is), ``"entropy"`` (n,) of
    its next-token distribution in nats (how confident it is) and, when
    ``reference`` names one of the models, ``"kl"``: per-token KL(p_reference || p_model) in nats,
    how far the model's next-token distribution moved from the reference's. ``desc`` shows a
    progress bar with that label.

    Blocks of equal length go through a model together, up to ``max_batch_tokens`` tokens per
    forward pass: a quantized model dequantizes its weights once per batch, not once per block. The
    default keeps the (tokens x vocabulary) tensors of GPT-2 small enough for a CPU cache (about
    25 MB); larger batches were slower on CPU, not faster.
    """
    from lora_edu._utils import progress

    block_size = check_int(block_size, "block_size", 2)
    max_batch_tokens = check_int(max_batch_tokens, "max_batch_tokens", 1)
    if not models:
        raise ValueError("models is empty")
    if reference is not None and reference not in models:
        raise ValueError(f"reference must be one of {sorted(models)}, got {reference!r}")
    if not temperatures or not all(isinstance(t, (int, float)) and t > 0 for t in temperatures):
        raise ValueError(f"temperatures must be positive numbers, got {temperatures!r}")
    ids = torch.as_tensor(ids).reshape(-1)
    if len(ids) < 2:
        raise ValueError("ids must contain at least two tokens")
    names = sorted(models, key=lambda n: n != reference)  # the reference first: the others need its probabilities
    for m in models.values():
        m.eval()
    chunks = [ids[s : s + block_size + 1] for s in range(0, len(ids) - 1, block_size)]
    full = [c for c in chunks if len(c) == block_size + 1]
    per_batch = max(1, max_batch_tokens // block_size)
    batches = [torch.stack(full[i : i + per_batch]) for i in range(0, len(full), per_batch)]
    if len(chunks[-1]) < block_size + 1:                    # the last, shorter block (>= 2 tokens) alone
        batches.append(chunks[-1][None])
    scores: dict[str, dict[str, list]] = {n: {"nll": [], "kl": [], "entropy": []} for n in names}
    steps = [(b, name) for b in range(len(batches)) for name in names]
    ref_lp = ref_p = None
    for b, name in (progress(steps, desc) if desc else steps):
        batch = batches[b]
        targets = batch[:, 1:].reshape(-1)
        logits = models[name](batch[:, :-1]).logits.float().reshape(len(targets), -1)
        lp = logits.log_softmax(-1)
        nll = [-lp.gather(1, targets[:, None])[:, 0] if t == 1 else
               nn.functional.cross_entropy(logits / t, targets, reduction="none") for t in temperatures]
        scores[name]["nll"].append(torch.stack(nll))
        p = lp.exp()
        # row-wise dot products as einsum: one pass, no (tokens x vocab) temporary for the product
        scores[name]["entropy"].append(-torch.einsum("tv,tv->t", p, lp))
        if reference is not None:
            if name == reference:
                ref_lp, ref_p = lp, p
            scores[name]["kl"].append(torch.einsum("tv,tv->t", ref_p, ref_lp - lp).clamp(min=0))
    out = {}
    for name in models:
        out[name] = {"nll": torch.cat(scores[name]["nll"], dim=1), "entropy": torch.cat(scores[name]["entropy"])}
        if reference is not None:
            out[name]["kl"] = torch.cat(scores[name]["kl"])
    return out


def quantization_error(weight: torch.Tensor, bits: int, grouping: str | int) -> float:
    """Relative Frobenius error ``100 ||W - Q(W)||_F / ||W||_F`` (%) of absmax quantize -> dequantize.

    Args:
        weight: any shape, at least one non-zero value.
        bits: 2..8.
        grouping: ``"per-tensor"`` (one scale) or a block size (one scale per block of that many
            consecutive values, as :func:`blockwise_absmax_roundtrip`).
    """
    w = torch.as_tensor(weight, dtype=torch.float32).detach()
    if grouping == "per-tensor":
        wq = absmax_dequantize(*absmax_quantize(w, bits))
    elif isinstance(grouping, int) and not isinstance(grouping, bool):
        wq = blockwise_absmax_roundtrip(w, bits, grouping)
    else:
        raise ValueError(f"grouping must be 'per-tensor' or a block size (int), got {grouping!r}")
    norm = torch.linalg.norm(w)
    if norm == 0:
        raise ValueError("weight must have a non-zero value: the relative error of an all-zero tensor is undefined")
    return float(100 * torch.linalg.norm(w - wq) / norm)
