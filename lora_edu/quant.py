"""Notebook 05: number formats and quantization from scratch, up to QLoRA.

* :func:`float_bits` - the sign / exponent / mantissa bits of a float32, float16 or bfloat16 value.
* absmax (symmetric, signed) and zero-point (asymmetric, unsigned) integer quantization,
  per tensor (``dim=None``) or with one scale per slice along ``dim`` (per channel).
* NF4 (QLoRA's 4-bit NormalFloat), following bitsandbytes' CPU reference: scale each block of
  ``blocksize`` values by 1/absmax, pick the nearest of 16 levels (decision thresholds at the
  midpoints), pack two 4-bit codes per byte with the first in the high nibble.
* double quantization of the per-block absmax constants, and the overhead in bits per parameter.
* :class:`QuantizedLinear`: a frozen int8 or NF4 weight, dequantized on the fly in ``forward``;
  wrap it in :class:`lora_edu.lora.LoRALinear` and you have a QLoRA layer.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch
from torch import nn

from lora_edu._checks import check_int

#: (sign, exponent, mantissa) bit counts
FLOAT_FORMATS = {"float32": (1, 8, 23), "float16": (1, 5, 10), "bfloat16": (1, 8, 7)}
_TORCH_FLOAT = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
#: bytes per parameter for model-size arithmetic
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
    """Bytes to store ``n_params`` numbers in ``dtype`` (4-bit formats: half a byte, rounded up)."""
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
# NF4
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


def _check_blocksize(blocksize: int) -> int:
    blocksize = check_int(blocksize, "blocksize", 2, 4096)
    if blocksize & (blocksize - 1):
        raise ValueError(f"blocksize must be a power of two in [2, 4096], got {blocksize}")
    return blocksize


def nf4_quantize(x: torch.Tensor, blocksize: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """NF4-quantize ``x`` (any shape) in blocks of ``blocksize`` consecutive values.

    Returns:
        ``(packed, absmax)``: packed uint8 of length ceil(numel / 2) (padded to whole blocks), two
        codes per byte with the first in the high nibble; absmax float32, one per block.
    """
    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
        raise TypeError("x must be a floating-point torch.Tensor")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or inf")
    blocksize = _check_blocksize(blocksize)
    blocks, _ = _blocks(x, blocksize)
    absmax = blocks.abs().amax(dim=1)
    scaled = blocks / torch.where(absmax > 0, absmax, torch.ones_like(absmax))[:, None]
    codes = torch.bucketize(scaled.reshape(-1), NF4_MIDPOINTS, right=False).to(torch.uint8)
    packed = (codes[0::2] << 4) | codes[1::2]
    return packed, absmax


def nf4_unpack(packed: torch.Tensor) -> torch.Tensor:
    """The 4-bit codes (0..15) in order: high nibble first."""
    return torch.stack([packed >> 4, packed & 0x0F], dim=1).reshape(-1)


def nf4_dequantize(packed: torch.Tensor, absmax: torch.Tensor, shape, blocksize: int = 64) -> torch.Tensor:
    """Inverse of :func:`nf4_quantize`: levels times the block's absmax, padding dropped, reshaped."""
    blocksize = _check_blocksize(blocksize)
    shape = torch.Size(shape)
    codes = nf4_unpack(packed)
    if len(codes) != absmax.numel() * blocksize:
        raise ValueError(f"packed holds {len(codes)} codes but absmax has {absmax.numel()} blocks of {blocksize}")
    if shape.numel() > len(codes):
        raise ValueError(f"shape {tuple(shape)} needs {shape.numel()} values, packed holds {len(codes)}")
    values = NF4_CODE[codes.long()].view(-1, blocksize) * absmax.float()[:, None]
    return values.reshape(-1)[: shape.numel()].reshape(shape)


def double_quantize(absmax: torch.Tensor, blocksize: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quantize the fp32 block constants themselves (QLoRA's double quantization).

    The mean is subtracted (the absmax values are all positive, centring uses the int8 range
    better), then blocks of ``blocksize`` constants get 8-bit absmax quantization with one fp32
    scale each. (bitsandbytes uses a dynamic 8-bit float code here; the storage arithmetic is the same.)

    Returns ``(q, scales, offset)``: int8 codes, fp32 scale per block, the fp32 mean.
    """
    blocksize = _check_blocksize(blocksize)
    offset = absmax.float().mean()
    blocks, _ = _blocks(absmax.float() - offset, blocksize)
    q, scales = absmax_quantize(blocks, bits=8, dim=0)
    return q, scales.reshape(-1), offset


def double_dequantize(q: torch.Tensor, scales: torch.Tensor, offset: torch.Tensor, n: int) -> torch.Tensor:
    """Recover ``n`` absmax constants from :func:`double_quantize`'s output."""
    values = absmax_dequantize(q, scales[:, None]).reshape(-1)[: check_int(n, "n", 0)]
    return values + offset


def overhead_bits(blocksize: int = 64, double_quant: bool = False, dq_blocksize: int = 256) -> float:
    """Extra bits per parameter for the block constants.

    One fp32 absmax per block: 32 / blocksize (0.5 at 64). With double quantization: an 8-bit
    absmax per block plus one fp32 scale per ``dq_blocksize`` blocks: 8/64 + 32/(64*256) = 0.127.
    """
    blocksize = _check_blocksize(blocksize)
    if not double_quant:
        return 32 / blocksize
    return 8 / blocksize + 32 / (blocksize * _check_blocksize(dq_blocksize))


# ------------------------------------------------------------------------------------------------
# Quantized layers and QLoRA
# ------------------------------------------------------------------------------------------------


#: "nf4" (blockwise 4-bit NormalFloat), "int8" (absmax, one scale per output channel),
#: "int8-tensor" (absmax, one scale for the whole weight)
QUANT_METHODS = ("nf4", "int8", "int8-tensor")


class QuantizedLinear(nn.Module):
    """A frozen linear layer whose weight is stored as int8 (per channel or per tensor) or NF4 (blockwise).

    ``forward`` dequantizes the weight and applies ``x @ W.T + b``. There are no trainable
    parameters; wrap it in :class:`lora_edu.lora.LoRALinear` to train a QLoRA adapter on top.
    Build it with :meth:`from_module` from an ``nn.Linear`` or a GPT-2 ``Conv1D``.
    """

    is_quantized = True

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, method: str = "nf4", blocksize: int = 64):
        super().__init__()
        if method not in QUANT_METHODS:
            raise ValueError(f"method must be one of {QUANT_METHODS}, got {method!r}")
        if weight.ndim != 2:
            raise ValueError(f"weight must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}")
        self.method, self.blocksize = method, blocksize
        self.out_features, self.in_features = weight.shape
        w = weight.detach().float()
        if method == "nf4":
            packed, absmax = nf4_quantize(w, blocksize)
            self.register_buffer("packed", packed)
            self.register_buffer("absmax", absmax)
        else:  # int8: one scale per output channel (row), or one for the whole tensor
            q, scale = absmax_quantize(w, bits=8, dim=0 if method == "int8" else None)
            self.register_buffer("q", q)
            self.register_buffer("scale", scale)
        self.bias = None if bias is None else nn.Parameter(bias.detach().float().clone(), requires_grad=False)

    @classmethod
    def from_module(cls, module: nn.Module, method: str = "nf4", blocksize: int = 64) -> QuantizedLinear:
        """Quantize an ``nn.Linear`` or a GPT-2 ``Conv1D`` (whose (in, out) weight is transposed first)."""
        from lora_edu.lora import base_shape

        _, _, fan_in_fan_out = base_shape(module)
        weight = module.weight.T if fan_in_fan_out else module.weight
        return cls(weight, module.bias, method, blocksize)

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight, (out_features, in_features), float32 (recomputed on each access)."""
        if self.method == "nf4":
            return nf4_dequantize(self.packed, self.absmax, (self.out_features, self.in_features), self.blocksize)
        return absmax_dequantize(self.q, self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight.to(x.dtype), self.bias)

    def storage_bytes(self) -> int:
        """Bytes actually held: quantized weight, its constants and the bias."""
        return sum(b.numel() * b.element_size() for b in self.buffers()) + (
            0 if self.bias is None else self.bias.numel() * self.bias.element_size())

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, method={self.method}" + (
            f", blocksize={self.blocksize}" if self.method == "nf4" else "")


def quantize_model(model: nn.Module, method: str = "nf4", blocksize: int = 64, skip: tuple[str, ...] = ("lm_head",)):
    """Replace every ``nn.Linear`` / GPT-2 ``Conv1D`` (except names in ``skip``) by a QuantizedLinear.

    In place; returns ``(model, n_replaced)``. Embeddings are left as they are (as in QLoRA).
    """
    from lora_edu.lora import _is_conv1d

    targets = [(n, m) for n, m in model.named_modules()
               if (isinstance(m, nn.Linear) or _is_conv1d(m)) and n.split(".")[-1] not in skip]
    if not targets:
        raise ValueError("model has no nn.Linear or Conv1D layers to quantize")
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, QuantizedLinear.from_module(module, method, blocksize))
    return model, len(targets)


def storage_bytes(model: nn.Module) -> int:
    """Bytes of all parameters and buffers of ``model`` (each tensor once)."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


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
