import ast
import inspect
import math

import pytest
import torch
from torch import nn

from lora_edu import lora as L
from lora_edu import quant as Q


def bnb_functional():
    functional, why = Q.import_bitsandbytes()
    if functional is None:
        pytest.skip(f"bitsandbytes is not usable here: {why}")
    return functional


# --- formats and sizes ---------------------------------------------------------------------------


def test_float_bits_seed_example_and_roundtrip():
    assert Q.float_bits(7.5) == ("0", "10000001", "11100000000000000000000")
    assert Q.float_bits(7.5, "float16") == ("0", "10001", "1110000000")
    assert Q.float_bits(7.5, "bfloat16") == ("0", "10000001", "1110000")
    assert Q.float_bits(-2.75, "bfloat16") == ("1", "10000000", "0110000")
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


def test_blockwise_4bit_bytes_counts_everything():
    n = 4096 * 11008
    plain = Q.blockwise_4bit_bytes(n, 64)
    assert plain == {"codes": n // 2, "constants": 4 * n // 64, "total": n // 2 + n // 16}
    dq = Q.blockwise_4bit_bytes(n, 64, double_quant=True)
    assert dq["constants"] == n // 64 + 4 * (n // 64 // 256) + 4
    assert 8 * dq["total"] / n == pytest.approx(4 + Q.overhead_bits(64, double_quant=True), abs=1e-6)
    assert Q.blockwise_4bit_bytes(65, 64) == {"codes": 33, "constants": 8, "total": 41}   # a short last block
    with pytest.raises(ValueError, match="power of two"):
        Q.blockwise_4bit_bytes(100, 48)


def test_blockwise_4bit_bytes_is_what_quantized_linear_stores():
    for dq in (False, True):
        layer = Q.QuantizedLinear(torch.randn(384, 128), None, "nf4", 64, double_quant=dq)
        assert Q.storage_bytes(layer) == Q.blockwise_4bit_bytes(384 * 128, 64, dq)["total"]
    assert Q.QuantizedLinear(torch.randn(64, 64), None, "nf4").bits_per_parameter() == 4.5


# --- integer quantization ------------------------------------------------------------------------


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
    x = torch.cat([torch.zeros(64), torch.randn(64), torch.zeros(5)])
    p, a = Q.nf4_quantize(x, 64)
    y = Q.nf4_dequantize(p, a, x.shape, 64)
    assert torch.isfinite(y).all() and torch.equal(y[:64], torch.zeros(64)) and torch.equal(y[-5:], torch.zeros(5))


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
        (lambda: Q.quantize_4bit(torch.ones(10), quant_type="nf3"), ValueError, "quant_type must be one of"),
        (lambda: Q.quantize_4bit(torch.tensor([1.0, float("inf")])), ValueError, "NaN or inf"),
        (lambda: Q.quantize_4bit(torch.ones(0)), ValueError, "empty"),
        (lambda: Q.quantize_4bit([1.0, 2.0]), TypeError, "floating-point torch.Tensor"),
        (lambda: Q.dequantize_4bit(torch.zeros(4, dtype=torch.uint8), torch.ones(1), (3, 4)), ValueError, "needs 12"),
        (lambda: Q.dequantize_4bit(torch.zeros(32, dtype=torch.uint8), torch.ones(2), (64,)), ValueError,
         "absmax has 2"),
        (lambda: Q.float_bits(1.0, "float8"), ValueError, "dtype must be one of"),
        (lambda: Q.model_size_bytes(10, "int3"), ValueError, "dtype must be one of"),
        (lambda: Q.QuantizedLinear(torch.ones(2, 2), None, method="int2"), ValueError, "method must be"),
        (lambda: Q.QuantizedLinear(torch.ones(2, 2), None, "int8", double_quant=True), ValueError,
         "double_quant applies"),
        (lambda: Q.QuantizedLinear(torch.ones(2, 2), None, compute_dtype=torch.int8), ValueError, "compute_dtype"),
        (lambda: Q.QuantizedLinear(torch.ones(2), None), ValueError, "2-D"),
    ],
)
def test_bad_input(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


# --- 4-bit codes ---------------------------------------------------------------------------------


def test_nf4_levels_and_quantiles():
    assert Q.NF4_CODE.numel() == 16 and Q.NF4_CODE[7] == 0 and Q.NF4_CODE[0] == -1 and Q.NF4_CODE[-1] == 1
    assert torch.allclose(Q.nf4_levels_from_quantiles(), Q.NF4_CODE, atol=2e-7)
    fp4 = Q.CODES_4BIT["fp4"]
    assert fp4[3] == 1 and fp4[11] == -1 and fp4[0] == 0 and len(fp4.unique()) == 15
    assert torch.allclose(Q.CODES_4BIT["int4"].unique(), torch.arange(-7, 8) / 7)


def test_codes_are_bitsandbytes_tables():
    bnbf = bnb_functional()
    for qt in ("nf4", "fp4"):
        assert torch.equal(bnbf.get_4bit_type(qt, device="cpu"), Q.CODES_4BIT[qt])
    assert torch.equal(bnbf.create_dynamic_map(signed=True), Q.DYNAMIC_MAP_8BIT)


def test_nearest_code_is_the_nearest_level_and_a_tie_goes_down():
    torch.manual_seed(0)
    x = torch.rand(5000) * 2 - 1
    for code in Q.CODES_4BIT.values():
        idx = Q.nearest_code(x, code).long()
        best = (x[:, None] - code).abs().min(dim=1).values
        assert torch.equal((x - code[idx]).abs(), best)
    mids = (Q.NF4_CODE[1:] + Q.NF4_CODE[:-1]) / 2
    assert torch.equal(Q.nearest_code(mids, Q.NF4_CODE).long(), torch.arange(15))      # on midpoint i: level i
    assert torch.equal(Q.nearest_code(torch.nextafter(mids, torch.ones(15)), Q.NF4_CODE).long(), torch.arange(1, 16))


def test_nf4_packing_padding_and_nearest_level():
    torch.manual_seed(0)
    x = torch.randn(3, 37)  # 111 values: not a multiple of 64, and odd
    p, a = Q.nf4_quantize(x, 64)
    assert p.dtype == torch.uint8 and p.numel() == 56 and a.numel() == 2      # ceil(111 / 2) bytes, 2 blocks
    codes = Q.unpack_4bit(p)
    assert codes[0] == p[0] >> 4 and codes[-1] == 7       # first value in the high nibble; padding encodes 0
    y = Q.nf4_dequantize(p, a, x.shape, 64)
    assert y.shape == x.shape
    flat = x.reshape(-1)
    scaled = torch.cat([flat[:64] / a[0], flat[64:] / a[1]])
    nearest = (scaled.reshape(-1, 1) - Q.NF4_CODE).abs().argmin(dim=1)
    assert torch.equal(codes[:111].long(), nearest)


def test_nf4_beats_int4_and_fp4_on_normal_weights():
    torch.manual_seed(1)
    w = torch.randn(256, 256)
    err = {qt: (Q.dequantize_4bit(*Q.quantize_4bit(w, 64, qt), w.shape, 64, qt) - w).norm() for qt in Q.CODES_4BIT}
    assert err["nf4"] < err["fp4"] and err["nf4"] < err["int4"]
    assert torch.allclose(Q.dequantize_4bit(*Q.quantize_4bit(w, 64, "int4"), w.shape, 64, "int4"),
                          Q.blockwise_absmax_roundtrip(w, 4, 64), atol=1e-6)   # Int4 = absmax with 4 bits


def _midpoint_inputs(quant_type):
    code = Q.CODES_4BIT[quant_type].sort().values
    mids = (code[1:] + code[:-1]) / 2
    one_block = torch.cat([torch.ones(1), mids, -mids, code, torch.zeros(64 - 1 - 2 * 15 - 16)])
    return one_block.repeat(8)


# name -> (tensor, compare dequantized values too). Odd sizes: bitsandbytes dequantizes those with a
# torch.compile'd fallback (slow to compile); their codes and constants are still compared.
EDGE_CASES = {
    "normal, not a multiple of 64": (lambda: torch.randn(10_038), True),
    "normal, odd count": (lambda: torch.randn(10_037), False),
    "2-D, odd inner size": (lambda: torch.randn(3, 37), False),
    "one value": (lambda: torch.tensor([0.7]), False),
    "exactly on every midpoint, absmax 1": (lambda: None, True),
    "on every midpoint, then scaled": (lambda: None, True),
    "zero blocks and a zero tail": (lambda: torch.cat([torch.zeros(128), torch.ones(64), torch.zeros(6)]), True),
    "negative zeros": (lambda: -torch.zeros(130), True),
    "blocks of equal values": (
        lambda: torch.cat([torch.full((64,), 0.3), torch.full((64,), -2.5), torch.full((2,), 4.0)]), True),
    "ties between +1 and -1 scaled": (lambda: torch.tensor([1.0, -1.0] * 64), True),
    "subnormal values": (lambda: torch.tensor([1e-40, 5e-41, -1e-40, 0.0] * 32), True),
    "huge values": (lambda: torch.tensor([3e38, -1e38, 1.0, 0.0] * 32), True),
    "bfloat16 input": (lambda: torch.randn(100, 100).bfloat16(), True),
    "float16 input": (lambda: torch.randn(100, 100).half(), True),
}


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_4bit_is_bit_identical_to_bitsandbytes(case, quant_type):
    bnbf = bnb_functional()
    torch.manual_seed(3)
    make, compare_values = EDGE_CASES[case]
    x = make()
    if x is None:
        x = _midpoint_inputs(quant_type) * (1.0 if "absmax 1" in case else 0.37)
    q_bnb, state = bnbf.quantize_4bit(x, blocksize=64, quant_type=quant_type)
    packed, absmax = Q.quantize_4bit(x, 64, quant_type)
    assert torch.equal(q_bnb.reshape(-1), packed), "codes differ"
    assert torch.equal(state.absmax, absmax), "block constants differ"
    if compare_values:
        theirs = bnbf.dequantize_4bit(q_bnb, state).reshape(x.shape)   # (a 1-D input comes back as (1, n))
        ours = Q.dequantize_4bit(packed, absmax, x.shape, 64, quant_type)
        assert torch.equal(theirs, ours.to(theirs.dtype))
        if theirs.dtype == torch.float32:   # the sign of zero too (bitsandbytes' C kernel, even sizes)
            assert torch.equal(theirs.view(torch.int32), ours.view(torch.int32))


@pytest.mark.parametrize("blocksize", [32, 128, 256, 1024])
def test_4bit_block_sizes_match_bitsandbytes(blocksize):
    bnbf = bnb_functional()
    torch.manual_seed(4)
    x = torch.randn(64, 96)
    for qt in ("nf4", "fp4"):
        q_bnb, state = bnbf.quantize_4bit(x, blocksize=blocksize, quant_type=qt)
        packed, absmax = Q.quantize_4bit(x, blocksize, qt)
        assert torch.equal(q_bnb.reshape(-1), packed) and torch.equal(state.absmax, absmax)
        ours = Q.dequantize_4bit(packed, absmax, x.shape, blocksize, qt)
        assert torch.equal(bnbf.dequantize_4bit(q_bnb, state), ours)


def test_more_than_16_million_values_match_bitsandbytes():
    bnbf = bnb_functional()
    torch.manual_seed(5)
    x = torch.randn(4096 * 4096 + 64 * 3 + 2) * 0.02      # 16,777,410 values: past 2^24, a short last block
    q_bnb, state = bnbf.quantize_4bit(x, blocksize=64, quant_type="nf4")
    packed, absmax = Q.quantize_4bit(x, 64, "nf4")
    assert torch.equal(q_bnb.reshape(-1), packed) and torch.equal(state.absmax, absmax)
    ours = Q.dequantize_4bit(packed, absmax, x.shape, 64, "nf4")
    assert torch.equal(bnbf.dequantize_4bit(q_bnb, state).reshape(-1), ours)


# --- double quantization -------------------------------------------------------------------------


def test_double_quantization_and_overhead():
    assert Q.overhead_bits() == 0.5
    assert Q.overhead_bits(double_quant=True) == pytest.approx(0.127, abs=5e-4)
    torch.manual_seed(6)
    absmax = torch.rand(1000) + 0.5
    codes, scales, offset = Q.double_quantize(absmax)
    assert codes.dtype == torch.uint8 and scales.numel() == 4 and offset == absmax.mean()
    back = Q.double_dequantize(codes, scales, offset)
    assert back.shape == absmax.shape and (back - absmax).abs().max() < 0.01
    scaled = torch.cat([((absmax - offset)[i:i + 256]) / scales[i // 256] for i in range(0, 1000, 256)])
    nearest = (scaled[:, None] - Q.DYNAMIC_MAP_8BIT).abs().min(dim=1).values
    assert torch.allclose((scaled - Q.DYNAMIC_MAP_8BIT[codes.long()]).abs(), nearest, atol=1e-6)


def test_double_quantization_matches_bitsandbytes_up_to_its_approximate_search():
    bnbf = bnb_functional()
    torch.manual_seed(7)
    x = torch.randn(1024, 1024) * 0.02
    q_bnb, state = bnbf.quantize_4bit(x, blocksize=64, quant_type="nf4", compress_statistics=True)
    packed, absmax = Q.quantize_4bit(x, 64, "nf4")
    codes, scales, offset = Q.double_quantize(absmax)
    assert torch.equal(q_bnb.reshape(-1), packed)
    assert torch.equal(state.offset, offset) and torch.equal(state.state2.absmax, scales)
    # our dequantization of *their* codes is theirs
    theirs = bnbf.dequantize_blockwise(state.absmax, state.state2) + state.offset
    assert torch.equal(Q.double_dequantize(state.absmax, state.state2.absmax, state.offset), theirs)
    differ = codes != state.absmax
    assert differ.float().mean() < 0.01                     # a few near-ties and tiny constants
    centred = ((absmax - offset).reshape(-1, 256) * (1.0 / scales)[:, None]).reshape(-1)
    ours_d = (centred - Q.DYNAMIC_MAP_8BIT[codes.long()]).abs()
    theirs_d = (centred - Q.DYNAMIC_MAP_8BIT[state.absmax.long()]).abs()
    assert (ours_d <= theirs_d).all()                        # ours is always the nearest code


# --- the quantized layer and QLoRA ----------------------------------------------------------------


@pytest.mark.parametrize("method", Q.QUANT_METHODS)
def test_quantized_linear_from_linear_and_conv1d(method):
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(8)
    tolerance = {"nf4": 0.15, "fp4": 0.2, "int4": 0.2, "int8": 0.02, "int8-tensor": 0.03,
                 "int4-channel": 0.3, "int4-tensor": 0.5}[method]
    for base in (nn.Linear(64, 32), Conv1D(32, 64)):
        x = torch.randn(4, 64)
        ql = Q.QuantizedLinear.from_module(base, method)
        assert ql.weight.shape == (32, 64)
        rel = (ql(x) - base(x)).norm() / base(x).norm()
        assert rel < tolerance
        assert not any(p.requires_grad for p in ql.parameters())
        assert torch.equal(ql.to_linear().weight, ql.weight) and torch.equal(ql.to_linear().bias, ql.bias)


def test_quantized_linear_dequantizes_in_backward_and_keeps_nothing():
    torch.manual_seed(9)
    layer = Q.QuantizedLinear(torch.randn(32, 16), torch.randn(32), "nf4", 64, double_quant=True)
    x = torch.randn(5, 16, requires_grad=True)
    out, kept = Q.saved_for_backward_bytes(lambda: layer(x))
    assert kept == 0 and layer.dequantize_calls == {"forward": 1, "backward": 0}
    g = torch.randn_like(out)
    out.backward(g)
    assert layer.dequantize_calls == {"forward": 1, "backward": 1}
    assert torch.allclose(x.grad, g @ layer.weight, atol=1e-6)
    with torch.no_grad():
        layer(torch.randn(2, 16))                             # no gradient needed: no backward dequantization
    assert layer.dequantize_calls["backward"] == 1
    _, naive = Q.saved_for_backward_bytes(lambda: x @ layer.weight.T)
    assert naive == 32 * 16 * 4


def test_compute_dtype_bfloat16_is_close_and_keeps_the_input_dtype():
    torch.manual_seed(10)
    w = torch.randn(64, 128) * 0.05
    x = torch.randn(8, 128)
    fp32 = Q.QuantizedLinear(w, None, "nf4", compute_dtype=torch.float32)
    bf16 = Q.QuantizedLinear(w, None, "nf4", compute_dtype=torch.bfloat16)
    a, b = fp32(x), bf16(x)
    assert b.dtype == torch.float32 and not torch.equal(a, b)
    assert (a - b).norm() / a.norm() < 0.01
    x.requires_grad_(True)
    bf16(x).sum().backward()
    assert x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()


def test_qlora_layer_trains_and_refuses_to_merge():
    ql = Q.QuantizedLinear.from_module(nn.Linear(64, 32), "nf4")
    assert ql.is_quantized and ql.mergeable is False
    assert ql.storage_bytes() < 64 * 32 * 4 / 5
    qlora = L.LoRALinear(ql, r=4, alpha=8)
    x = torch.randn(2, 64)
    assert torch.equal(qlora(x), ql(x))
    qlora(x).sum().backward()
    assert qlora.lora_A.grad is not None and qlora.lora_B.grad is not None
    with pytest.raises(TypeError, match=r"NF4, 16 codes per block of 64 .*to_linear\(\)"):
        qlora.merge()
    assert not qlora.merged


@pytest.mark.parametrize("method, words", [
    ("nf4", "NF4, 16 codes per block of 64 weights)"), ("fp4", "FP4, 16 codes per block of 64"),
    ("int8", "int8, 255 levels per output channel"), ("int8-tensor", "int8, 255 levels per tensor"),
    ("int4-channel", "int4, 15 levels per output channel"),
])
def test_merge_refusal_names_the_format_and_the_way_out(method, words):
    ql = Q.QuantizedLinear(torch.randn(8, 64), None, method, double_quant=method == "fp4")
    why = L.merge_refusal(ql)
    assert words in why and "layer.to_linear()" in why and "Q(W0)" in why
    assert ("double-quantized" in why) == (method == "fp4")
    net = nn.Sequential(L.LoRALinear(ql, r=2, alpha=4))
    before = ql.weight.clone()
    with pytest.raises(TypeError, match="cannot merge 1 of 1 LoRA layers"):
        L.merge_lora(net)
    assert isinstance(net[0], L.LoRALinear) and torch.equal(ql.weight, before)      # nothing written


def test_merging_into_the_dequantized_weight_reproduces_the_qlora_layer():
    torch.manual_seed(11)
    ql = Q.QuantizedLinear(torch.randn(16, 32), torch.randn(16), "nf4")
    qlora = L.LoRALinear(ql, r=2, alpha=4)
    with torch.no_grad():
        qlora.lora_B.normal_()
    x = torch.randn(3, 32)
    merged = ql.to_linear()
    with torch.no_grad():
        merged.weight += qlora.delta_weight()
    assert torch.allclose(merged(x), qlora(x), atol=1e-5)


def test_quantize_model():
    from transformers.pytorch_utils import Conv1D

    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    before = Q.storage_bytes(net)
    net, n = Q.quantize_model(net, "int8")
    assert n == 2 and Q.storage_bytes(net) < before
    with pytest.raises(ValueError, match="no nn.Linear"):
        Q.quantize_model(nn.Sequential(nn.ReLU()))
    model = nn.ModuleDict({"c_fc": Conv1D(16, 8), "lm_head": nn.Linear(16, 4)})
    model, n = Q.quantize_model(model, "fp4", double_quant=True, compute_dtype=torch.bfloat16)
    assert n == 1 and isinstance(model["c_fc"], Q.QuantizedLinear) and isinstance(model["lm_head"], nn.Linear)
    assert model["c_fc"].double_quant and model["c_fc"].compute_dtype == torch.bfloat16


def test_quant_does_not_reach_into_lora():
    tree = ast.parse(inspect.getsource(Q))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and m.startswith("lora_edu.lora") for m in imported)


# --- scoring ---------------------------------------------------------------------------------------


class _Tokenizer:
    def __init__(self, ids):
        self.ids = ids

    def __call__(self, text):
        return {"input_ids": self.ids}


def _tiny_gpt2(seed=0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, n_positions=64, vocab_size=50)).eval()


def test_token_scores_are_perplexity_per_token_and_kl_from_a_reference():
    from lora_edu.gpt2 import perplexity

    model, other = _tiny_gpt2(0), _tiny_gpt2(1)
    torch.manual_seed(12)
    ids = torch.randint(0, 50, (101,))
    scores = Q.token_scores({"a": model, "b": other}, ids, block_size=32, reference="a", temperatures=(1.0, 2.0))
    assert scores["a"]["nll"].shape == (2, 100) and scores["a"]["kl"].shape == (100,)
    reference = perplexity(model, _Tokenizer(ids.tolist()), "", 32)
    assert math.exp(scores["a"]["nll"][0].mean()) == pytest.approx(reference, rel=1e-6)
    assert torch.allclose(scores["a"]["kl"], torch.zeros(100), atol=1e-6)
    assert (scores["b"]["kl"] > 0).all()
    assert ((scores["a"]["entropy"] > 0) & (scores["a"]["entropy"] <= math.log(50) + 1e-5)).all()
    hot = Q.token_scores({"a": model}, ids, block_size=32, temperatures=(2.0,))["a"]["nll"][0]
    assert torch.allclose(hot, scores["a"]["nll"][1], atol=1e-6)
    with pytest.raises(ValueError, match="reference"):
        Q.token_scores({"a": model}, ids, reference="x")
    with pytest.raises(ValueError, match="temperatures"):
        Q.token_scores({"a": model}, ids, temperatures=(0.0,))
    with pytest.raises(ValueError, match="at least two"):
        Q.token_scores({"a": model}, ids[:1])


def test_saved_for_backward_bytes_counts_storages_once_and_skips_excluded():
    lin = nn.Linear(8, 4)
    x = torch.randn(3, 8, requires_grad=True)
    _, with_weight = Q.saved_for_backward_bytes(lambda: torch.relu(x @ lin.weight.T))
    _, without = Q.saved_for_backward_bytes(lambda: torch.relu(x @ lin.weight.T), exclude=[lin.weight])
    assert with_weight - without == 8 * 4 * 4
    assert without == 3 * 8 * 4 + 3 * 4 * 4        # x, and relu's output


def test_token_scores_batches_blocks_without_changing_the_scores():
    model, other = _tiny_gpt2(0), _tiny_gpt2(1)
    torch.manual_seed(13)
    ids = torch.randint(0, 50, (135,))                 # 8 blocks of 16 and a shorter last one of 6 predictions
    one_by_one = Q.token_scores({"a": model, "b": other}, ids, block_size=16, reference="a", max_batch_tokens=16)
    batched = Q.token_scores({"a": model, "b": other}, ids, block_size=16, reference="a", max_batch_tokens=48)
    for name in ("a", "b"):
        assert one_by_one[name]["nll"].shape == (1, 134)
        for key in ("nll", "entropy", "kl"):
            assert torch.allclose(one_by_one[name][key], batched[name][key], atol=1e-5)
    with pytest.raises(ValueError, match="max_batch_tokens"):
        Q.token_scores({"a": model}, ids, max_batch_tokens=0)


def test_dequantize_4bit_checks_what_it_is_given():
    packed, absmax = Q.quantize_4bit(torch.randn(129), 64)
    assert Q.dequantize_4bit(packed, absmax, (129,)).shape == (129,)
    with pytest.raises(TypeError, match="uint8"):
        Q.dequantize_4bit(packed.long(), absmax, (129,))
    with pytest.raises(ValueError, match="packed holds 130 codes"):
        Q.dequantize_4bit(packed, absmax, (140,))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (learners' machines; not CI)")
def test_4bit_and_quantized_linear_follow_the_tensors_device():
    """The code tables live on the CPU; quantizing a GPU tensor must not mix devices (it did once)."""
    w = torch.randn(300, 70, generator=torch.Generator().manual_seed(1))
    for quant_type in ("nf4", "fp4", "int4"):
        packed, absmax = Q.quantize_4bit(w.cuda(), 64, quant_type)
        assert packed.is_cuda and torch.equal(packed.cpu(), Q.quantize_4bit(w, 64, quant_type)[0])
        assert Q.dequantize_4bit(packed, absmax, w.shape, 64, quant_type).is_cuda
    lin = torch.nn.Linear(70, 300)
    layer = Q.QuantizedLinear.from_module(lin, "nf4", double_quant=True)
    x = torch.randn(4, 70)
    assert torch.allclose(layer.cuda()(x.cuda()).cpu(), layer.cpu()(x), atol=1e-5)
