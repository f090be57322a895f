"""lora_edu.variants (notebook 07): DoRA, PiSSA and OLoRA equal PEFT 0.21's; LoRA+ groups as PEFT does;
adapter arithmetic is exact; bad input gets a clear error naming the argument; the QPiSSA explorer."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from lora_edu import lora as L
from lora_edu import variants as V

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers' deprecation notices raised inside peft
        yield


class Net(nn.Module):
    def __init__(self, k: int = 12, d: int = 7, bias: bool = True):
        super().__init__()
        self.fc = nn.Linear(k, d, bias=bias)

    def forward(self, x):
        return self.fc(x)


class TwoLayers(nn.Module):
    """x -> out(relu(fc1(x))), k -> h -> d, with the output layer named ``out`` (PEFT targets modules by name)."""

    def __init__(self, k: int, h: int, d: int, out: str = "fc2"):
        super().__init__()
        self.fc1 = nn.Linear(k, h)
        self.add_module(out, nn.Linear(h, d))
        self.out = out

    def forward(self, x):
        return getattr(self, self.out)(torch.relu(self.fc1(x)))


def tiny_gpt2(seed: int = 1):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100, n_positions=16, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval()  # eval: GPT-2's own dropout off, so both models are deterministic


def peft_model(model, **config):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(copy.deepcopy(model), LoraConfig(**config))


def peft_layer(pm, name: str):
    return pm.get_submodule("base_model.model." + name)


def randomise(ours, pm, seed: int = 0):
    """Give our DoRA layers random A, B, m (a trained state) and copy them into PEFT's."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, layer in L.lora_layers(ours).items():
            layer.lora_A.copy_(torch.randn(layer.lora_A.shape, generator=g))
            layer.lora_B.copy_(0.1 * torch.randn(layer.lora_B.shape, generator=g))
            layer.lora_magnitude.mul_(0.5 + torch.rand(layer.lora_magnitude.shape, generator=g))
            other = peft_layer(pm, name)
            other.lora_A.default.weight.copy_(layer.lora_A)
            other.lora_B.default.weight.copy_(layer.lora_B)
            other.lora_magnitude_vector.default.weight.copy_(layer.lora_magnitude)


def assert_grads_equal(ours, pm):
    for name, layer in L.lora_layers(ours).items():
        other = peft_layer(pm, name)
        pairs = [(layer.lora_A.grad, other.lora_A.default.weight.grad),
                 (layer.lora_B.grad, other.lora_B.default.weight.grad),
                 (layer.lora_magnitude.grad, other.lora_magnitude_vector.default.weight.grad)]
        for a, b in pairs:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# --- DoRA ------------------------------------------------------------------------------------


def test_dora_starts_as_the_base_layer_with_magnitudes_equal_to_the_row_norms():
    net = Net()
    x = torch.randn(4, 12)
    dora = V.add_dora(copy.deepcopy(net), ["fc"], r=3, alpha=6)
    torch.testing.assert_close(dora.fc.lora_magnitude, net.fc.weight.norm(dim=1))
    torch.testing.assert_close(dora(x), net(x))
    assert dora.fc.lora_magnitude.shape == (7,)  # one per output unit, not per input


def test_dora_takes_over_lora_A_so_lora_and_dora_start_from_the_same_draw():
    net = Net()
    torch.manual_seed(5)
    lora = L.add_lora(copy.deepcopy(net), ["fc"], r=3, alpha=6)
    after_lora = torch.rand(1)
    torch.manual_seed(5)
    dora = V.add_dora(copy.deepcopy(net), ["fc"], r=3, alpha=6)
    assert torch.equal(torch.rand(1), after_lora), "to_dora must not advance the global random state"
    assert torch.equal(dora.fc.lora_A, lora.fc.lora_A)


@pytest.mark.parametrize("bias", [True, False])
def test_dora_equals_peft_on_nn_linear_outputs_and_gradients(bias):
    net = Net(bias=bias)
    ours = L.mark_only_lora_as_trainable(V.add_dora(copy.deepcopy(net), ["fc"], r=3, alpha=6))
    pm = peft_model(net, r=3, lora_alpha=6, target_modules=["fc"], use_dora=True)
    randomise(ours, pm)
    x = torch.randn(5, 12)
    out, ref = ours(x), pm(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(out)
    (out * g).sum().backward()
    (ref * g).sum().backward()
    assert_grads_equal(ours, pm)
    trainable = sorted(n.rsplit(".", 1)[-1] for n, p in ours.named_parameters() if p.requires_grad)
    assert trainable == ["lora_A", "lora_B", "lora_magnitude"]


def test_dora_equals_peft_on_gpt2_conv1d_outputs_and_gradients():
    model = tiny_gpt2()
    ours = L.mark_only_lora_as_trainable(V.add_dora(copy.deepcopy(model), ["c_attn", "c_proj"], r=4, alpha=8))
    pm = peft_model(model, r=4, lora_alpha=8, target_modules=["c_attn", "c_proj"], use_dora=True,
                    fan_in_fan_out=True)
    randomise(ours, pm)
    ids = torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(0))
    out, ref = ours(ids).logits, pm(ids).logits
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    out.sum().backward()
    ref.sum().backward()
    assert_grads_equal(ours, pm)
    assert ours.transformer.h[0].attn.c_attn.lora_magnitude.shape == (96,)  # c_attn: 32 -> 96 outputs


def test_dora_with_dropout_equals_peft_in_training_mode():
    net = Net()
    ours = V.add_dora(copy.deepcopy(net), ["fc"], r=3, alpha=6, dropout=0.3)
    pm = peft_model(net, r=3, lora_alpha=6, target_modules=["fc"], use_dora=True, lora_dropout=0.3)
    randomise(ours, pm)
    ours.train()
    pm.train()
    x = torch.randn(6, 12)
    torch.manual_seed(3)
    out = ours(x)
    torch.manual_seed(3)
    ref = pm(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_dora_norm_is_detached_and_that_changes_the_gradient():
    net = Net()
    layer = V.add_dora(copy.deepcopy(net), ["fc"], r=3, alpha=6).fc
    with torch.no_grad():
        layer.lora_B.normal_(std=0.3)
    x = torch.randn(5, 12)
    layer(x).pow(2).sum().backward()
    detached = layer.lora_A.grad.clone()
    layer.lora_A.grad = None
    (x @ layer.adapted_weight().T + layer.base.bias).pow(2).sum().backward()  # norm with its gradient
    assert not torch.allclose(detached, layer.lora_A.grad, rtol=1e-3)


def test_dora_forward_equals_the_adapted_weight_and_merge_round_trips():
    model = tiny_gpt2()
    ours = V.add_dora(copy.deepcopy(model), ["c_attn"], r=4, alpha=8)
    with torch.no_grad():
        for layer in L.lora_layers(ours).values():
            layer.lora_B.normal_(std=0.2)
            layer.lora_magnitude.mul_(1.2)
    layer = ours.transformer.h[0].attn.c_attn
    x = torch.randn(3, 32)
    torch.testing.assert_close(layer(x), x @ layer.adapted_weight().T + layer.base.bias, rtol=1e-5, atol=1e-5)
    ids = torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(1))
    before = ours(ids).logits
    w0 = layer.base.weight.detach().clone()
    L.merge_lora(copy.deepcopy(ours))  # merge_lora works on DoRA layers too
    layer.merge()
    torch.testing.assert_close(ours(ids).logits, before, rtol=1e-5, atol=1e-5)
    layer.unmerge()
    torch.testing.assert_close(layer.base.weight, w0, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="not merged"):
        layer.unmerge()


def test_dora_refuses_bad_input_with_clear_errors():
    net = Net()
    with pytest.raises(ValueError, match="already a DoRALinear"):
        V.DoRALinear.from_lora(V.add_dora(copy.deepcopy(net), ["fc"], r=2, alpha=2).fc)
    with pytest.raises(TypeError, match="layer must be a LoRALinear"):
        V.DoRALinear.from_lora(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="no LoRALinear layers"):
        V.to_dora(Net())
    with pytest.raises(ValueError, match="r must be in"):
        V.add_dora(copy.deepcopy(net), ["fc"], r=0, alpha=2)
    with pytest.raises(ValueError, match="alpha must be in"):
        V.add_dora(copy.deepcopy(net), ["fc"], r=2, alpha=-1)
    lora = L.add_lora(copy.deepcopy(net), ["fc"], r=2, alpha=2)
    lora.fc.merge()
    with pytest.raises(ValueError, match="merged"):
        V.to_dora(lora)
    with pytest.raises(TypeError, match="W must be a 2-D tensor"):
        V.output_norms(torch.ones(3))


# --- PiSSA and OLoRA ---------------------------------------------------------------------------


def aligned(ours_B, ours_A, B, A):
    """Our factors with each singular pair's sign flipped to PEFT's (an SVD fixes only the pair's sign)."""
    sign = torch.sign((ours_B * B).sum(0))
    return ours_B * sign, ours_A * sign[:, None]


@pytest.mark.parametrize("kind", ["linear", "conv1d"])
def test_pissa_equals_peft(kind):
    if kind == "linear":
        model, targets, extra = Net(k=20, d=9), ["fc"], {}
    else:
        model, targets, extra = tiny_gpt2(), ["c_attn", "c_proj"], {"fan_in_fan_out": True}
    torch.manual_seed(0)
    ours = L.add_lora(copy.deepcopy(model), targets, r=3, alpha=6)
    for layer in L.lora_layers(ours).values():
        V.pissa_init(layer)
    pm = peft_model(model, r=3, lora_alpha=6, target_modules=targets, init_lora_weights="pissa", **extra)
    for name, layer in L.lora_layers(ours).items():
        other = peft_layer(pm, name)
        B, A = other.lora_B.default.weight, other.lora_A.default.weight
        ob, oa = aligned(layer.lora_B, layer.lora_A, B, A)
        torch.testing.assert_close(ob, B, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(oa, A, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(layer.base.weight, other.base_layer.weight, rtol=1e-5, atol=1e-6)
    x = torch.randint(0, 100, (2, 8)) if kind == "conv1d" else torch.randn(4, 20)
    out = (lambda m: m(x).logits) if kind == "conv1d" else (lambda m: m(x))
    torch.testing.assert_close(out(ours), out(model), rtol=1e-4, atol=1e-5)  # same function at the start
    torch.testing.assert_close(out(ours), out(pm), rtol=1e-4, atol=1e-5)


def test_pissa_adapter_is_the_top_singular_part_and_residual_is_the_rest():
    net = Net(k=20, d=9)
    W0 = net.fc.weight.detach().clone()
    layer = V.pissa_init(L.add_lora(copy.deepcopy(net), ["fc"], r=4, alpha=2).fc)
    U, S, Vh = torch.linalg.svd(W0.double())
    principal = (U[:, :4] * S[:4]) @ Vh[:4]
    torch.testing.assert_close(layer.delta_weight().double(), principal, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer.base.weight.double(), W0.double() - principal, rtol=1e-5, atol=1e-6)
    gram = layer.lora_B.T @ layer.lora_B  # B = U_r sqrt(S_r / s): orthogonal columns
    torch.testing.assert_close(gram, torch.diag(torch.diag(gram)), rtol=1e-4, atol=1e-5)


def test_olora_equals_peft_on_nn_linear():
    net = Net(k=20, d=9)
    torch.manual_seed(0)
    ours = L.add_lora(copy.deepcopy(net), ["fc"], r=3, alpha=6)
    V.olora_init(ours.fc)
    pm = peft_model(net, r=3, lora_alpha=6, target_modules=["fc"], init_lora_weights="olora")
    other = peft_layer(pm, "fc")
    torch.testing.assert_close(ours.fc.lora_B, other.lora_B.default.weight)
    torch.testing.assert_close(ours.fc.lora_A, other.lora_A.default.weight)
    torch.testing.assert_close(ours.fc.base.weight, other.base_layer.weight)
    x = torch.randn(4, 20)
    torch.testing.assert_close(ours(x), net(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.fc.lora_B.T @ ours.fc.lora_B, torch.eye(3), rtol=1e-5, atol=1e-5)


def test_olora_on_conv1d_keeps_the_function_where_peft_021_does_not():
    model = tiny_gpt2()
    ids = torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(2))
    ours = L.add_lora(copy.deepcopy(model), ["c_attn", "c_proj"], r=3, alpha=6)
    for layer in L.lora_layers(ours).values():
        V.olora_init(layer)
    torch.testing.assert_close(ours(ids).logits, model(ids).logits, rtol=1e-4, atol=1e-4)
    # PEFT 0.21 takes the QR of Conv1D's stored (in, out) weight: a wrong-shaped A on c_attn...
    broken = peft_model(model, r=3, lora_alpha=6, target_modules=["c_attn"], init_lora_weights="olora",
                        fan_in_fan_out=True)
    assert tuple(peft_layer(broken, "transformer.h.0.attn.c_attn").lora_A.default.weight.shape) == (3, 96)
    with pytest.raises(RuntimeError):
        broken(ids)
    # ... and a changed model at initialisation on the square attn.c_proj
    square = peft_model(model, r=3, lora_alpha=6, target_modules=["attn.c_proj"], init_lora_weights="olora",
                        fan_in_fan_out=True)
    assert (square(ids).logits - model(ids).logits).abs().max() > 1e-3


def test_pissa_and_olora_refuse_bad_input():
    net = Net(k=4, d=3)
    with pytest.raises(TypeError, match="layer must be a LoRALinear"):
        V.pissa_init(net.fc)
    with pytest.raises(TypeError, match="initialise first"):
        V.olora_init(V.add_dora(copy.deepcopy(net), ["fc"], r=2, alpha=2).fc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        big = L.add_lora(copy.deepcopy(net), ["fc"], r=4, alpha=2)
    with pytest.raises(ValueError, match="r=4 exceeds min"):
        V.pissa_init(big.fc)
    merged = L.add_lora(copy.deepcopy(net), ["fc"], r=2, alpha=2)
    merged.fc.merge()
    with pytest.raises(ValueError, match="merged"):
        V.pissa_init(merged.fc)
    with pytest.raises(ValueError, match=r"W must have shape \(d, k\)"):
        V.set_base_weight(merged.fc, torch.zeros(4, 3))


# --- LoRA+, training, analysis -------------------------------------------------------------------


def test_loraplus_groups_equal_peft_create_loraplus_optimizer():
    from peft.optimizers import create_loraplus_optimizer

    for use_dora in (False, True):
        pm = peft_model(TwoLayers(6, 8, 3, out="head"), r=2, lora_alpha=4, target_modules=["fc1"],
                        modules_to_save=["head"], use_dora=use_dora)
        ref = create_loraplus_optimizer(pm, torch.optim.Adam, lr=1e-3, loraplus_lr_ratio=16)
        ref_lr = {id(p): g["lr"] for g in ref.param_groups for p in g["params"]}
        ours_lr = {id(p): g["lr"] for g in V.loraplus_param_groups(pm, 1e-3, 16) for p in g["params"]}
        assert ours_lr == ref_lr
        assert sorted(set(ours_lr.values())) == [1e-3, 16e-3]
    with pytest.raises(ValueError, match="ratio must be in"):
        V.loraplus_param_groups(pm, 1e-3, 0)
    with pytest.raises(ValueError, match="lr must be in"):
        V.loraplus_param_groups(pm, -1.0, 2)
    with pytest.raises(ValueError, match="no trainable parameters"):
        V.loraplus_param_groups(Net().requires_grad_(False), 1e-3, 2)


def test_fit_with_ratio_one_is_plain_adam_and_records():
    torch.manual_seed(0)
    X, y = torch.randn(40, 12), torch.randint(0, 7, (40,))
    a = L.mark_only_lora_as_trainable(L.add_lora(Net(), ["fc"], r=2, alpha=4))
    b = copy.deepcopy(a)
    hist = V.fit(a, X, y, steps=5, lr=1e-2, every=2, on_record=lambda step, m: step)
    opt = torch.optim.Adam([p for p in b.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(b(X), y).backward()
        opt.step()
    torch.testing.assert_close(a.fc.lora_B, b.fc.lora_B)
    assert hist["records"] == [0, 2, 4, 5] and len(hist["loss"]) == 5
    with pytest.raises(ValueError, match="optimizer must be"):
        V.fit(a, X, y, steps=1, lr=1e-2, optimizer="rmsprop")
    with pytest.raises(ValueError, match="steps must be in"):
        V.fit(a, X, y, steps=0, lr=1e-2)


def test_magnitude_direction_change():
    W0 = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    dm, dd = V.magnitude_direction_change(2 * W0, W0)  # scaled rows: magnitude only
    assert dm == pytest.approx((5 + 1) / 2) and dd == pytest.approx(0.0, abs=1e-12)
    dm, dd = V.magnitude_direction_change(torch.tensor([[4.0, -3.0], [0.0, 1.0]]), W0)  # rotated 90 degrees
    assert dm == pytest.approx(0.0, abs=1e-12) and dd == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one shape"):
        V.magnitude_direction_change(W0, W0.T[:, :1])


def test_nf4_error_falls_with_the_energy_kept():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(64, 48, generator=g) + 3 * torch.randn(64, 2, generator=g) @ torch.randn(2, 48, generator=g)
    e0, e2 = V.nf4_error(W, 0), V.nf4_error(W, 2)
    s = torch.linalg.svdvals(W.double())
    kept = float((s[:2] ** 2).sum() / (s**2).sum())
    assert e2 < e0 / 2  # the two big directions carry most of the norm
    assert e2 == pytest.approx(e0 * (1 - kept) ** 0.5, rel=0.15)  # NF4's relative error is about constant
    assert V.nf4_error(W, min(W.shape)) < 1e-5  # nothing left to quantize
    with pytest.raises(ValueError, match="r must be in"):
        V.nf4_error(W, 100)
    with pytest.raises(TypeError, match="W must be a 2-D tensor"):
        V.nf4_error(torch.ones(5))


def test_concat_adapters_equals_peft_cat_and_linear_does_not():
    net = Net()
    torch.manual_seed(0)
    a1 = L.add_lora(copy.deepcopy(net), ["fc"], r=2, alpha=4).fc
    a2 = L.add_lora(copy.deepcopy(net), ["fc"], r=2, alpha=1).fc
    with torch.no_grad():
        a1.lora_B.normal_()
        a2.lora_B.normal_()
    B, A = V.concat_adapters([(a1.lora_B, a1.lora_A, a1.scaling), (a2.lora_B, a2.lora_A, a2.scaling)], [1.0, 0.5])
    torch.testing.assert_close(B @ A, a1.delta_weight() + 0.5 * a2.delta_weight())
    from peft import LoraConfig, get_peft_model

    pm = get_peft_model(copy.deepcopy(net), LoraConfig(r=2, lora_alpha=4, target_modules=["fc"]), adapter_name="one")
    pm.add_adapter("two", LoraConfig(r=2, lora_alpha=1, target_modules=["fc"]))
    fc = peft_layer(pm, "fc")
    with torch.no_grad():
        for name, layer in (("one", a1), ("two", a2)):
            fc.lora_A[name].weight.copy_(layer.lora_A)
            fc.lora_B[name].weight.copy_(layer.lora_B)
    pm.add_weighted_adapter(["one", "two"], [1.0, 0.5], "cat", combination_type="cat")
    pm.add_weighted_adapter(["one", "two"], [1.0, 0.5], "linear", combination_type="linear")
    torch.testing.assert_close(fc.get_delta_weight("cat"), B @ A, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(fc.get_delta_weight("linear"), B @ A, rtol=1e-2, atol=1e-3)
    with pytest.raises(ValueError, match="one length"):
        V.concat_adapters([(B, A, 1.0)], [1.0, 2.0])
    with pytest.raises(ValueError, match="one \\(d, k\\)"):
        V.concat_adapters([(B, A, 1.0), (B[:3], A, 1.0)], [1.0, 1.0])


def test_adalora_helpers():
    from peft import AdaLoraConfig, get_peft_model

    torch.manual_seed(0)
    cfg = AdaLoraConfig(target_modules=["fc1", "fc2"], init_r=4, target_r=2, tinit=2, tfinal=2, deltaT=1, total_step=10)
    pm = get_peft_model(TwoLayers(10, 12, 4), cfg)
    X, y = torch.randn(30, 10), torch.randint(0, 4, (30,))
    V.fit(pm, X, y, steps=10, lr=1e-2, extra_loss=lambda m: 0.1 * V.orthogonality_penalty(m),
          after_step=pm.base_model.update_and_allocate)
    ranks = V.adalora_ranks(pm)
    assert set(ranks) == {"fc1", "fc2"} and sum(ranks.values()) == 2 * 2  # the final budget: target_r per layer
    assert V.orthogonality_penalty(pm).item() >= 0
    with pytest.raises(ValueError, match="no AdaLoRA layers"):
        V.adalora_ranks(Net())
    with pytest.raises(ValueError, match="no AdaLoRA parameters"):
        V.orthogonality_penalty(Net())


def test_rank_of():
    assert V.rank_of(torch.ones(4, 3)) == 1 and V.rank_of(torch.eye(5)) == 5 and V.rank_of(torch.zeros(3, 3)) == 0


# --- the QPiSSA explorer ---------------------------------------------------------------------------


def test_qpissa_explorer_numbers_and_frames():
    from lora_edu.explorers import qpissa_explorer

    g = torch.Generator().manual_seed(0)
    W = torch.randn(40, 64, generator=g) + 2 * torch.randn(40, 3, generator=g) @ torch.randn(3, 64, generator=g)
    ex = qpissa_explorer(W, "test", ranks=[2, 8])
    assert ex.ranks == [0, 2, 8]  # r = 0 (QLoRA) is always there
    assert ex.errors[0] == pytest.approx(V.nf4_error(W, 0), rel=1e-6)
    assert ex.errors[8] == pytest.approx(V.nf4_error(W, 8), rel=1e-6)
    assert ex.errors[8] < ex.errors[2] < ex.errors[0]
    assert ex.errors[2] < ex.random_errors[2]  # the structured matrix gains more than the Gaussian control
    frame = ex.update(r=8)
    from lora_edu.explorers.nb07_qpissa import CORNER

    assert "r = 8" in frame.readout and frame.images["map"].shape == (min(CORNER[0], 40), min(CORNER[1], 64))
    assert np.array_equal(frame.images["map"], ex.maps[8])
    assert ex.static_figure() is not None
    with pytest.raises(ValueError, match="ranks must be integers"):
        qpissa_explorer(W, ranks=[100])
    with pytest.raises(TypeError, match="weight must be a 2-D tensor"):
        qpissa_explorer(torch.ones(5))
    with pytest.raises(ValueError, match="finite, non-zero"):
        qpissa_explorer(torch.zeros(4, 4))


def test_qpissa_explorer_maps_have_a_colour_scale_with_units():
    from lora_edu.explorers import qpissa_explorer

    W = torch.randn(24, 40, generator=torch.Generator().manual_seed(0))
    ex = qpissa_explorer(W, ranks=[2, 8])
    rms = float(W.pow(2).mean().sqrt())
    for fig, n_maps in ((ex.picture.fig, 1), (ex.static_figure(), len(ex.static_positions()))):
        bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
        assert len(bars) == 1, "one colour scale, shared by the maps"
        label = bars[0].get_ylabel()
        assert "units of W" in label and f"{rms:.3f}" in label
        lo, hi = bars[0].get_ylim()
        assert lo == 0 and hi == pytest.approx(ex.vmax)  # the scale the maps are drawn with
        assert sum(bool(ax.images) for ax in fig.axes) == n_maps


def test_explorer_slider_moves_update_the_frame():
    pytest.importorskip("ipywidgets")
    from lora_edu.explorers import qpissa_explorer

    ex = qpissa_explorer(torch.randn(16, 24, generator=torch.Generator().manual_seed(0)), ranks=[1, 4])
    assert ex.slider.value == 4  # starts at the r closest to 16
    frames = ex.frames
    ex.slider.value = 1
    assert ex.frames == frames + 1 and "r = 1" in ex.readout.value
