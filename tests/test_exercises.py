import numpy as np

from lora_edu import exercises as E
from lora_edu.data import sample_image
from lora_edu.svd import rank_for_energy


def test_rank_2_matrix(capsys):
    rng = np.random.default_rng(0)
    good = rng.uniform(1, 2, (4, 2)) @ rng.uniform(1, 2, (2, 5))
    assert E.check_rank_2_matrix(good)
    assert not E.check_rank_2_matrix(np.ones((4, 5)))
    assert not E.check_rank_2_matrix(np.ones((5, 4)))
    bad = good.copy()
    bad[0, 0] = 0.0
    assert not E.check_rank_2_matrix(bad)
    assert not E.check_rank_2_matrix("nope")
    assert "RIGHT" in capsys.readouterr().out


def test_factored_params_messages():
    assert E.check_factored_params(2304, 768, 8, 24_576)
    fb = E.check_factored_params(2304, 768, 8, 2 * 8 * 768)
    assert not fb and "square" in fb.message
    assert "one of the two factors" in E.check_factored_params(2304, 768, 8, 8 * 768).message
    assert not E.check_factored_params(2304, 768, 8, 24_576.0)


def test_product_rank_bound():
    assert E.check_product_rank_bound(3, 5, 3)
    assert "sums" in E.check_product_rank_bound(3, 5, 8).message


def test_nb02_checks():
    img = sample_image(size=64)
    s = np.linalg.svd(img, compute_uv=False)
    k = rank_for_energy(s, 0.98)
    assert E.check_rank_for_energy(img, 0.98, k)
    assert not E.check_rank_for_energy(img, 0.98, k - 1)
    assert E.check_break_even_rank(300, 200, 119)
    assert not E.check_break_even_rank(300, 200, 120)
    assert E.check_eckart_young_error(s, 10, float(np.sqrt(np.sum(s[10:] ** 2))))
    assert "spectral" in E.check_eckart_young_error(s, 10, s[10]).message
    assert "summed" in E.check_eckart_young_error(s, 10, s[10:].sum()).message


def test_nb03_checks():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 6))
    s = np.linalg.svd(X, compute_uv=False)
    assert E.check_linear_ae_optimum(X, 2, np.sum(s[2:] ** 2) / X.size)
    assert "summed" in E.check_linear_ae_optimum(X, 2, np.sum(s[2:] ** 2)).message
    assert E.check_linear_ae_params(784, 32, 2 * 784 * 32)
    assert "one matrix" in E.check_linear_ae_params(784, 32, 784 * 32).message
    W = rng.standard_normal((6, 3))
    _, R = np.linalg.qr(W)
    assert E.check_orthonormalising_matrix(W, np.linalg.inv(R))
    assert not E.check_orthonormalising_matrix(W, np.eye(3))
    assert not E.check_orthonormalising_matrix(W, np.eye(2))


def test_nb04_checks():
    import torch

    assert E.check_lora_params([(4096, 4096)] * 4, 16, 4 * 16 * 8192)
    assert "one of A" in E.check_lora_params([(4096, 4096)] * 4, 16, 4 * 16 * 4096).message
    assert "one layer" in E.check_lora_params([(4096, 4096)] * 4, 16, 16 * 8192).message
    assert E.check_scaling(32, 16, True, 8.0)
    assert "rsLoRA divides" in E.check_scaling(32, 16, True, 2.0).message
    assert E.check_scaling(32, 16, False, 2.0)
    torch.manual_seed(0)
    W0, A, B = torch.randn(5, 4), torch.randn(2, 4), torch.randn(5, 2)
    assert E.check_merged_weight(W0, A, B, 4, 2, W0 + 2 * B @ A)
    assert "scaling" in E.check_merged_weight(W0, A, B, 4, 2, W0 + B @ A).message
    assert "transposed" in E.check_merged_weight(W0, A, B, 4, 2, (W0 + 2 * B @ A).T).message


def test_nb05_nb06_checks():
    assert E.check_float_bits(-2.75, "bfloat16", ("1", "10000000", "0110000"))
    assert "bias" in E.check_float_bits(-2.75, "bfloat16", ("1", "00000001", "0110000")).message
    assert E.check_nf4_bytes(1_000_000, 64, True, 1_000_000 * (4 + 8 / 64 + 32 / (64 * 256)) / 8)
    assert "block constants" in E.check_nf4_bytes(1_000_000, 64, False, 500_000).message
    assert E.check_absmax_int8([0.5, -1.0, 0.25, 2.0], [32, -64, 16, 127])
    assert "truncated" in E.check_absmax_int8([0.5, -1.0, 0.25, 2.0], [31, -63, 15, 127]).message
    assert E.check_adam_state_bytes(100, 800) and "two moment" in E.check_adam_state_bytes(100, 400).message
    assert E.check_underfitting_fix("raise r") and not E.check_underfitting_fix("lower r")
