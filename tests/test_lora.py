import copy
import math
import warnings

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from lora_edu import lora as L


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.enc = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.attn = nn.Module()
        self.attn.c_attn = Conv1D(48, 16)   # in 16 -> out 48, weight (16, 48)
        self.attn.c_proj = Conv1D(16, 48)
        self.mlp = nn.Module()
        self.mlp.c_proj = nn.Linear(16, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        h = self.enc(x)
        h = self.attn.c_proj(self.attn.c_attn(h))
        return self.head(self.mlp.c_proj(h))


def test_layer_shapes_init_and_scaling():
    layer = L.LoRALinear(nn.Linear(10, 6), r=4, alpha=8)
    assert layer.lora_A.shape == (4, 10) and layer.lora_B.shape == (6, 4)
    assert layer.scaling == 2.0 and not layer.lora_B.any()
    bound = 1 / math.sqrt(10)  # kaiming_uniform(a=sqrt(5)) on fan_in 10
    assert layer.lora_A.abs().max() <= bound and layer.lora_A.abs().max() > bound / 2
    assert not layer.base.weight.requires_grad and not layer.base.bias.requires_grad
    assert L.LoRALinear(nn.Linear(10, 6), r=4, alpha=8, use_rslora=True).scaling == pytest.approx(4.0)


def test_forward_formula_delta_weight_merge_unmerge():
    torch.manual_seed(1)
    for base in (nn.Linear(10, 6), Conv1D(6, 10)):
        layer = L.LoRALinear(copy.deepcopy(base), r=3, alpha=6)
        x = torch.randn(4, 10)
        assert torch.equal(layer(x), base(x))
        with torch.no_grad():
            layer.lora_B.normal_()
        expected = base(x) + (x @ layer.lora_A.T @ layer.lora_B.T) * 2.0
        assert torch.allclose(layer(x), expected, atol=1e-6)
        assert torch.allclose(layer.delta_weight(), 2.0 * layer.lora_B @ layer.lora_A)
        w0 = layer.base.weight.clone()
        y = layer(x)
        layer.merge()
        assert layer.merged and torch.allclose(layer(x), y, atol=1e-5)
        with pytest.warns(UserWarning, match="already merged"):
            layer.merge()
        assert torch.allclose(layer(x), y, atol=1e-5)  # not added twice
        layer.unmerge()
        assert torch.allclose(layer.base.weight, w0, atol=1e-6)


def test_merge_refuses_nan():
    layer = L.LoRALinear(nn.Linear(4, 4), r=2, alpha=2)
    w0 = layer.base.weight.clone()
    with torch.no_grad():
        layer.lora_B.fill_(float("nan"))
    with pytest.raises(ValueError, match="NaN or inf"):
        layer.merge()
    assert torch.equal(layer.base.weight, w0) and not layer.merged


def test_dropout_only_on_lora_path():
    torch.manual_seed(0)
    layer = L.LoRALinear(nn.Linear(40, 4), r=2, alpha=2, dropout=0.5)
    with torch.no_grad():
        layer.lora_B.normal_()  # non-zero, so the LoRA path contributes and dropout can show
    x = torch.randn(3, 40)
    layer.train()
    torch.manual_seed(1)
    y_train = layer(x)
    torch.manual_seed(1)
    mask = nn.functional.dropout(torch.ones_like(x), 0.5)  # the same draw the layer made
    expected = layer.base(x) + (x * mask) @ layer.lora_A.T @ layer.lora_B.T * layer.scaling
    assert torch.allclose(y_train, expected, atol=1e-6)
    assert not torch.allclose(y_train, layer.eval()(x), atol=1e-3)  # dropout did reach the LoRA path
    unmasked = layer.base(x) + (x @ layer.lora_A.T @ layer.lora_B.T) * layer.scaling
    assert torch.allclose(layer(x), unmasked, atol=1e-6)  # eval: no dropout


def test_base_shape_accepts_linear_like_modules_and_names_the_argument():
    assert L.base_shape(nn.Linear(3, 5)) == (3, 5, False)
    assert L.base_shape(Conv1D(5, 3)) == (3, 5, True)

    class Frozen(nn.Module):  # e.g. a quantized layer: declares its shape, computes x @ W.T
        in_features, out_features = 6, 2

        def __init__(self):
            super().__init__()
            self.register_buffer("weight", torch.randn(2, 6))

        def forward(self, x):
            return x @ self.weight.T

    assert L.base_shape(Frozen()) == (6, 2, False)
    layer = L.LoRALinear(Frozen(), r=2, alpha=2)
    assert layer.lora_A.shape == (2, 6) and layer.lora_B.shape == (2, 2)
    with pytest.raises(TypeError, match="base must be a linear layer"):
        L.base_shape(nn.ReLU())


def test_merge_refusal_protocol():
    class NoMerge(nn.Linear):
        mergeable = False
        mergeable_reason = "its weight is stored in 4 bits"

    class LegacyQuantized(nn.Linear):
        is_quantized = True

    assert L.merge_refusal(nn.Linear(2, 2)) is None
    assert L.merge_refusal(NoMerge(2, 2)) == "its weight is stored in 4 bits"
    assert "quantized base" in L.merge_refusal(LegacyQuantized(2, 2))

    class Silent(nn.Linear):
        mergeable = False

    assert "declares mergeable = False" in L.merge_refusal(Silent(2, 2))

    class QuantizedNoReason(nn.Linear):  # lora_edu.quant.QuantizedLinear's declaration
        is_quantized, mergeable = True, False

    class QuantizedButMergeable(nn.Linear):
        is_quantized, mergeable = True, True

    assert "quantized base" in L.merge_refusal(QuantizedNoReason(2, 2))
    assert L.merge_refusal(QuantizedButMergeable(2, 2)) is None
    layer = L.LoRALinear(NoMerge(4, 3), r=2, alpha=2)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(2, 4)
    y, w0 = layer(x), layer.base.weight.clone()
    with pytest.raises(TypeError, match="cannot merge into this NoMerge: its weight is stored in 4 bits"):
        layer.merge()
    assert not layer.merged and torch.equal(layer.base.weight, w0) and torch.equal(layer(x), y)


def test_merge_lora_refuses_before_changing_anything():
    class NoMerge(nn.Linear):
        mergeable = False

    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), NoMerge(4, 2))
    L.add_lora(net, ["0", "2"], r=2, alpha=2)
    for layer in L.lora_layers(net).values():
        with torch.no_grad():
            layer.lora_B.normal_()
    w0 = net[0].base.weight.clone()
    with pytest.raises(TypeError, match="cannot merge 1 of 2 LoRA layers, e.g. '2'"):
        L.merge_lora(net)
    assert isinstance(net[0], L.LoRALinear) and not net[0].merged and torch.equal(net[0].base.weight, w0)


def test_shared_helpers_are_reexported():
    from lora_edu import _utils

    assert L.count_parameters is _utils.count_parameters  # the notebooks call L.count_parameters


def test_add_lora_matching_like_peft():
    net = Net()
    L.add_lora(net, ["c_proj"], r=2, alpha=4)
    assert set(L.lora_layers(net)) == {"attn.c_proj", "mlp.c_proj"}
    net = L.add_lora(Net(), "attn\\.c_.*", r=2, alpha=4)  # a string is a full-match regex
    assert set(L.lora_layers(net)) == {"attn.c_attn", "attn.c_proj"}
    assert L.matches("h.0.attn.c_attn", ["c_attn"]) and not L.matches("h.0.attn.c_attn_x", ["c_attn"])


def test_add_lora_errors():
    with pytest.raises(ValueError, match="matched no module.*c_attn"):
        L.add_lora(Net(), ["q_proj"], r=2, alpha=4)
    net = L.add_lora(Net(), ["head"], r=2, alpha=4)
    with pytest.raises(ValueError, match="already has LoRA"):
        L.add_lora(net, ["head"], r=2, alpha=4)
    with pytest.raises(TypeError, match="'enc' is a Sequential, not a linear layer"):
        L.add_lora(Net(), ["enc"], r=2, alpha=4)
    with pytest.raises(ValueError, match="non-empty list"):
        L.add_lora(Net(), [], r=2, alpha=4)


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(r=0, alpha=1), ValueError, "r must be in [1, inf], got 0"),
        (dict(r=-2, alpha=1), ValueError, "r must be in"),
        (dict(r=2.0, alpha=1), TypeError, "r must be an integer"),
        (dict(r=2, alpha=0), ValueError, "alpha must be in (0, inf]"),
        (dict(r=2, alpha=1, dropout=1.0), ValueError, "dropout must be in [0, 1)"),
        (dict(r=2, alpha=1, dropout=-0.1), ValueError, "dropout must be in [0, 1)"),
    ],
)
def test_bad_arguments(kwargs, exc, words):
    with pytest.raises(exc) as info:
        L.LoRALinear(nn.Linear(4, 4), **kwargs)
    assert words in str(info.value)


def test_bad_base_and_double_wrap():
    with pytest.raises(TypeError, match="base must be a linear layer.*got Conv2d"):
        L.LoRALinear(nn.Conv2d(1, 1, 1), r=1, alpha=1)
    with pytest.raises(ValueError, match="already a LoRALinear"):
        L.LoRALinear(L.LoRALinear(nn.Linear(4, 4), r=1, alpha=1), r=1, alpha=1)
    with pytest.warns(UserWarning, match="exceeds min"):
        L.LoRALinear(nn.Linear(4, 2), r=3, alpha=1)


def test_trainable_counts_and_bias_modes():
    net = L.add_lora(Net(), ["c_attn", "head"], r=2, alpha=4)
    L.mark_only_lora_as_trainable(net)
    trainable, total = L.count_parameters(net)
    assert trainable == 2 * (16 + 48) + 2 * (16 + 3)
    assert total == sum(p.numel() for p in Net().parameters()) + trainable
    L.mark_only_lora_as_trainable(net, bias="lora_only")
    assert L.count_parameters(net)[0] == trainable + 48 + 3
    L.mark_only_lora_as_trainable(net, bias="all")
    assert L.count_parameters(net)[0] == trainable + sum(
        p.numel() for n, p in Net().named_parameters() if n.endswith("bias"))
    with pytest.raises(ValueError, match="bias must be"):
        L.mark_only_lora_as_trainable(net, bias="some")
    with pytest.raises(ValueError, match="no LoRALinear"):
        L.mark_only_lora_as_trainable(Net())


def test_merge_lora_replaces_layers_and_keeps_outputs():
    net = L.add_lora(Net(), ["c_attn", "c_proj", "head"], r=2, alpha=4)
    for layer in L.lora_layers(net).values():
        with torch.no_grad():
            layer.lora_B.normal_()
    x = torch.randn(5, 8)
    y = net(x)
    merged = L.merge_lora(net)
    assert not L.lora_layers(merged) and isinstance(merged.attn.c_attn, Conv1D)
    assert torch.allclose(merged(x), y, atol=1e-5)
    with pytest.raises(ValueError, match="no LoRALinear"):
        L.merge_lora(merged)


def test_matches_peft_exactly():
    from peft import LoraConfig, get_peft_model

    for targets, fifo in ((["head"], False), (["c_attn"], True)):
        base = Net()
        ours = L.add_lora(copy.deepcopy(base), targets, r=2, alpha=8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=2, lora_alpha=8, target_modules=targets,
                                                                    fan_in_fan_out=fifo))
        name = "head" if targets == ["head"] else "attn.c_attn"
        ours_layer = L.lora_layers(ours)[name]
        peft_layer = theirs.base_model.model.get_submodule(name)
        with torch.no_grad():
            ours_layer.lora_B.normal_()
            peft_layer.lora_A["default"].weight.copy_(ours_layer.lora_A)
            peft_layer.lora_B["default"].weight.copy_(ours_layer.lora_B)
        x = torch.randn(3, 8)
        assert (ours(x) - theirs(x)).abs().max() < 1e-6
        assert L.count_parameters(L.mark_only_lora_as_trainable(ours))[0] == theirs.get_nb_trainable_parameters()[0]


def test_save_and_load_adapter(tmp_path):
    net = L.add_lora(Net(), ["c_attn", "head"], r=2, alpha=4)
    for layer in L.lora_layers(net).values():
        with torch.no_grad():
            layer.lora_B.normal_()
    path = L.save_lora(net, tmp_path / "a.safetensors")
    assert set(L.lora_state_dict(net)) == {"attn.c_attn.lora_A", "attn.c_attn.lora_B", "head.lora_A", "head.lora_B"}
    fresh = L.add_lora(Net(), ["c_attn", "head"], r=2, alpha=4)
    L.load_lora(fresh, path)
    x = torch.randn(2, 8)
    assert torch.allclose(fresh(x), net(x), atol=1e-6)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        L.save_lora(net, path)
    L.save_lora(net, path, overwrite=True)


def test_load_errors_leave_model_unchanged(tmp_path):
    net = L.add_lora(Net(), ["head"], r=2, alpha=4)
    path = L.save_lora(net, tmp_path / "a.safetensors")
    other_rank = L.add_lora(Net(), ["head"], r=3, alpha=6)
    before = {k: v.clone() for k, v in L.lora_state_dict(other_rank).items()}
    with pytest.raises(ValueError, match="head.lora_A: file has shape \\(2, 16\\), model has \\(3, 16\\)"):
        L.load_lora(other_rank, path)
    assert all(torch.equal(before[k], v) for k, v in L.lora_state_dict(other_rank).items())
    other_targets = L.add_lora(Net(), ["c_attn"], r=2, alpha=4)
    with pytest.raises(ValueError, match="not in the model"):
        L.load_lora(other_targets, path)
    other_scale = L.add_lora(Net(), ["head"], r=2, alpha=8)
    with pytest.raises(ValueError, match="scaling"):
        L.load_lora(other_scale, path)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors adapter"):
        L.load_lora(net, corrupt)
    with pytest.raises(FileNotFoundError):
        L.load_lora(net, tmp_path / "missing.safetensors")


def test_lora_from_update_is_the_truncated_svd():
    torch.manual_seed(0)
    dW = torch.randn(7, 5, dtype=torch.float64)
    S = torch.linalg.svdvals(dW)
    B, A = L.lora_from_update(dW, 2)
    assert B.shape == (7, 2) and A.shape == (2, 5)
    assert torch.isclose(torch.linalg.norm(dW - B @ A), S[2:].norm())      # Eckart-Young error
    assert torch.allclose(B.norm(dim=0), A.norm(dim=1))                      # Sigma split evenly
    assert torch.allclose(L.lora_from_update(dW, 5)[0] @ L.lora_from_update(dW, 5)[1], dW)
    with pytest.raises(ValueError, match="r must be in \\[1, 5\\]"):
        L.lora_from_update(dW, 6)
    with pytest.raises(TypeError, match="2-D tensor"):
        L.lora_from_update(dW.numpy(), 2)


def test_amplification_factor():
    W = torch.diag(torch.tensor([10.0, 1.0, 0.1]))
    e = torch.eye(3)
    # an update along W's weakest direction is amplified by ||dW|| / 0.1; along its strongest by / 10
    assert L.amplification_factor(2.0 * torch.outer(e[2], e[2]), W, 1) == pytest.approx(20.0)
    assert L.amplification_factor(2.0 * torch.outer(e[0], e[0]), W, 1) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="one shape"):
        L.amplification_factor(torch.zeros(3, 2), W, 1)
