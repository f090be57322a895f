import math

import pytest
import torch
from torch import nn

from lora_edu import lora as L
from lora_edu import quant as Q


def test_float_bits_seed_example_and_roundtrip():
    assert Q.float_bits(7.5) == ("0", "10000001", "11100000000000000000000")
    assert Q.float_bits(7.5, "float16") == ("0", "10001", "1110000000")
    assert Q.float_bits(7.5, "bfloat16") == ("0", "10000001", "1110000")
    assert Q.float_bits(-0.0)[0] == "1"
    for dtype in ("float32", "float16", "bfloat16"):
        for x in (7.5, -3.25, 1e-3, 65504.0, 0.0):
            bits = Q.float_bits(x, dtype)
            expected = torch.tensor(x, dtype=Q._TORCH_FLOAT[dtype]).item()
            assert Q.float_from_bits(*bits) == expected
    assert math.isinf(Q.float_from_bits(*Q.float_bits(1e5, "float16")))  # fp16 overflows above 65504


def test_sizes():
    assert Q.model_size_bytes(176_000_000_000, "float32") == 704_000_000_000
    assert Q.model_size_bytes(176_000_000_000, "float16") == 352_000_000_000
    assert Q.model_size_bytes(3, "nf4") == 2
    mem = Q.training_memory_bytes(1000)
    assert mem["total"] == 16 * 1000
    assert Q.training_memory_bytes(1000, trainable=10)["total"] == 4000 + 3 * 40


def test_absmax_signed_int8_and_per_channel():
    torch.manual_seed(0)
    w = torch.randn(16, 32) * torch.linspace(0.1, 10, 16)[:, None]
    q, s = Q.absmax_quantize(w)
    assert q.dtype == torch.int8 and q.abs().max() <= 127 and s.shape == ()
    qc, sc = Q.absmax_quantize(w, dim=0)
    assert sc.shape == (16, 1) and (qc.abs().amax(dim=1) == 127).all()
    err_t = (Q.absmax_dequantize(q, s) - w).norm()
    err_c = (Q.absmax_dequantize(qc, sc) - w).norm()
    assert err_c < err_t / 2
    assert (Q.absmax_dequantize(qc, sc) - w).abs().max() <= sc.max() / 2 + 1e-6
    q4, _ = Q.absmax_quantize(w, bits=4)
    assert q4.abs().max() <= 7


def test_zeropoint_range_and_exact_zero():
    x = torch.tensor([-1.0, 0.0, 2.0, 3.0])
    q, s, z = Q.zeropoint_quantize(x)
    assert q.dtype == torch.uint8 and q.min() >= 0 and q.max() <= 255
    y = Q.zeropoint_dequantize(q, s, z)
    assert y[1] == 0.0 and (y - x).abs().max() <= s / 2 + 1e-6
    qc, sc, zc = Q.zeropoint_quantize(torch.randn(4, 8), bits=3, dim=1)
    assert sc.shape == (1, 8) and qc.max() <= 7


def test_all_zero_inputs_do_not_make_nan():
    z = torch.zeros(8, 8)
    assert torch.equal(Q.absmax_dequantize(*Q.absmax_quantize(z)), z)
    assert torch.equal(Q.absmax_dequantize(*Q.absmax_quantize(z, dim=1)), z)
    assert torch.equal(Q.zeropoint_dequantize(*Q.zeropoint_quantize(z)), z)
    x = torch.cat([torch.zeros(64), torch.randn(64)])
    p, a = Q.nf4_quantize(x, 64)
    y = Q.nf4_dequantize(p, a, x.shape, 64)
    assert torch.isfinite(y).all() and torch.equal(y[:64], torch.zeros(64))


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: Q.absmax_quantize(torch.ones(3), bits=1), ValueError, "bits must be in [2, 8]"),
        (lambda: Q.absmax_quantize(torch.ones(3), bits=9), ValueError, "bits must be in [2, 8]"),
        (lambda: Q.zeropoint_quantize(torch.ones(3), bits=16), ValueError, "bits must be in [2, 8]"),
        (lambda: Q.absmax_quantize(torch.ones(3, 3), dim=2), ValueError, "dim must be in"),
        (lambda: Q.absmax_quantize(torch.tensor([1.0, float("nan")])), ValueError, "NaN"),
        (lambda: Q.absmax_quantize(torch.ones(3, dtype=torch.int64)), TypeError, "floating-point"),
        (lambda: Q.nf4_quantize(torch.ones(10), blocksize=48), ValueError, "power of two"),
        (lambda: Q.float_bits(1.0, "float8"), ValueError, "dtype must be one of"),
        (lambda: Q.model_size_bytes(10, "int3"), ValueError, "dtype must be one of"),
        (lambda: Q.QuantizedLinear(torch.ones(2, 2), None, method="int4"), ValueError, "method must be"),
    ],
)
def test_bad_input(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


def test_nf4_levels_and_quantiles():
    assert Q.NF4_CODE.numel() == 16 and Q.NF4_CODE[7] == 0 and Q.NF4_CODE[0] == -1 and Q.NF4_CODE[-1] == 1
    assert torch.allclose(Q.nf4_levels_from_quantiles(), Q.NF4_CODE, atol=2e-7)


def test_nf4_packing_padding_and_nearest_level():
    torch.manual_seed(0)
    x = torch.randn(3, 37)  # 111 values: not a multiple of 64
    p, a = Q.nf4_quantize(x, 64)
    assert p.dtype == torch.uint8 and p.numel() == 64 and a.numel() == 2
    codes = Q.nf4_unpack(p)
    assert codes[0] == p[0] >> 4  # first value in the high nibble
    y = Q.nf4_dequantize(p, a, x.shape, 64)
    assert y.shape == x.shape
    scaled = torch.cat([x.reshape(-1), torch.zeros(17)]).view(2, 64) / a[:, None]
    nearest = (scaled.reshape(-1, 1) - Q.NF4_CODE).abs().argmin(dim=1)
    assert torch.equal(codes.long(), nearest)  # midpoint thresholds == nearest level (no exact ties here)


def test_nf4_beats_int4_absmax_on_normal_weights():
    torch.manual_seed(1)
    w = torch.randn(256, 256)
    p, a = Q.nf4_quantize(w, 64)
    nf4_err = (Q.nf4_dequantize(p, a, w.shape, 64) - w).norm()
    int4_err = (Q.blockwise_absmax_roundtrip(w, 4, 64) - w).norm()
    assert nf4_err < int4_err


def test_nf4_matches_bitsandbytes_where_available():
    bnb_f = pytest.importorskip("bitsandbytes.functional", reason="bitsandbytes not installed")
    torch.manual_seed(2)
    x = torch.randn(5000)
    q, state = bnb_f.quantize_4bit(x, blocksize=64, quant_type="nf4")
    p, a = Q.nf4_quantize(x, 64)
    assert torch.equal(q.reshape(-1), p[: q.numel()]) and torch.equal(state.absmax, a)
    assert torch.equal(bnb_f.dequantize_4bit(q, state).reshape(-1), Q.nf4_dequantize(p, a, x.shape, 64))


def test_double_quantization_and_overhead():
    assert Q.overhead_bits() == 0.5
    assert Q.overhead_bits(double_quant=True) == pytest.approx(0.127, abs=5e-4)
    absmax = torch.rand(1000) + 0.5
    q, scales, offset = Q.double_quantize(absmax)
    assert q.dtype == torch.int8 and scales.numel() == 4
    back = Q.double_dequantize(q, scales, offset, 1000)
    assert (back - absmax).abs().max() < 0.01


def test_quantized_linear_and_qlora():
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(3)
    for base in (nn.Linear(64, 32), Conv1D(32, 64)):
        x = torch.randn(4, 64)
        for method in ("nf4", "int8"):
            ql = Q.QuantizedLinear.from_module(base, method)
            assert ql.weight.shape == (32, 64)
            rel = (ql(x) - base(x)).norm() / base(x).norm()
            assert rel < (0.15 if method == "nf4" else 0.02)
            assert not any(p.requires_grad for p in ql.parameters())
    ql = Q.QuantizedLinear.from_module(nn.Linear(64, 32), "nf4")
    assert ql.storage_bytes() < 64 * 32 * 4 / 5
    qlora = L.LoRALinear(ql, r=4, alpha=8)
    x = torch.randn(2, 64)
    assert torch.equal(qlora(x), ql(x))
    qlora(x).sum().backward()
    assert qlora.lora_A.grad is not None and qlora.lora_B.grad is not None
    with pytest.raises(TypeError, match="quantized base"):
        qlora.merge()


def test_quantize_model():
    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    before = Q.storage_bytes(net)
    net, n = Q.quantize_model(net, "int8")
    assert n == 2 and Q.storage_bytes(net) < before
    with pytest.raises(ValueError, match="no nn.Linear"):
        Q.quantize_model(nn.Sequential(nn.ReLU()))
