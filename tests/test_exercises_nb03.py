"""Notebook 03's exercises: right answers pass; trivial and pitfall answers fail with the right diagnosis;
the notebook's hidden worked solutions run and print RIGHT."""

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from lora_edu.exercises import Exercise, nb03

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "03_linear_autoencoders.ipynb"


def verdict(ex: Exercise, answer):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        fb = ex.check(answer)
    assert out.getvalue().startswith("RIGHT" if fb else "NOT YET")   # printed as well as returned
    return fb


def svals_centred(X):
    return np.linalg.svd(X - X.mean(axis=0), compute_uv=False)


# --- every exercise: registered, shows its problem, the placeholder runs -------------------------

ALL = [nb03.optimum_mse, nb03.explained_variance, nb03.pca_encoder, nb03.matched_budget,
       nb03.orthonormal_decoder, nb03.uncentred]


def test_keys_are_numbered_in_notebook_order():
    assert [ex.key for ex in ALL] == [f"03.{i}" for i in range(1, 7)]
    assert sorted(nb03.__all__) == sorted(name for name in dir(nb03) if isinstance(getattr(nb03, name), Exercise))


@pytest.mark.parametrize("ex", ALL, ids=lambda e: e.key)
def test_placeholder_and_garbage_are_not_yet(ex, capsys):
    ex.show()
    assert f"Exercise {ex.key}" in capsys.readouterr().out
    fb = verdict(ex, None)
    assert not fb and "no answer yet" in fb.message
    for junk in ("0.5", [[1, 2], [3]], object()):
        assert not verdict(ex, junk)


@pytest.mark.parametrize("ex", ALL, ids=lambda e: e.key)
def test_the_problem_data_cannot_be_replaced(ex):
    with pytest.raises(TypeError):
        ex.data["r"] = 1   # read-only mapping


# --- 03.1 ------------------------------------------------------------------------------------------


def test_optimum_mse():
    ex = nb03.optimum_mse
    X, r = ex.data["X"], ex.data["r"]
    n, d = X.shape
    s = svals_centred(X)
    right = np.sum(s[r:] ** 2) / (n * d)
    assert verdict(ex, right) and verdict(ex, np.float32(right)) and verdict(ex, np.array([right]))
    Xc = X - X.mean(axis=0)
    U, s2, Vt = np.linalg.svd(Xc, full_matrices=False)
    assert verdict(ex, np.mean((Xc - Xc @ Vt[:r].T @ Vt[:r]) ** 2))      # the same number, by projection
    s_raw = np.linalg.svd(X, compute_uv=False)
    cases = {
        "centred": np.sum(s_raw[r:] ** 2) / (n * d),
        "summed squared error": right * n * d,
        "Frobenius norm": np.sqrt(right * n * d),
        "divided by n only": right * d,
        "(n-1)*d": np.sum(s[r:] ** 2) / ((n - 1) * d),
        "energy the top r": np.sum(s[:r] ** 2) / (n * d),
        "summed the singular values": np.sum(s[r:]) / (n * d),
        "sigma_{r+1}^2 alone": s[r] ** 2 / (n * d),
        "one direction too few": np.sum(s[r + 1:] ** 2) / (n * d),
        "r-th direction too": np.sum(s[r - 1:] ** 2) / (n * d),
        "r >= rank": 0.0,
        "reconstructing nothing": np.sum(s**2) / (n * d),
        "*fraction*": np.sum(s[r:] ** 2) / np.sum(s**2),
        "full-precision": round(right, 4),                                 # copied from a printout
    }
    for words, wrong in cases.items():
        fb = verdict(ex, wrong)
        assert not fb and words in fb.message, (words, fb)
    assert not verdict(ex, right * 1.01)


# --- 03.2 ------------------------------------------------------------------------------------------


def test_explained_variance_matches_sklearn_and_catches_pitfalls():
    from sklearn.decomposition import PCA

    ex = nb03.explained_variance
    X, r = ex.data["X"], ex.data["r"]
    n = len(X)
    assert verdict(ex, PCA(r).fit(X).explained_variance_)                 # the library's answer is right
    s = svals_centred(X)
    assert verdict(ex, list(s[:r] ** 2 / (n - 1)))
    cases = {
        "divided by n;": s[:r] ** 2 / n,
        "you used sigma_i;": s[:r] / (n - 1),
        "the energy": s[:r] ** 2,
        "ratio": s[:r] ** 2 / np.sum(s**2),
        "SVD of X itself": np.linalg.svd(X, compute_uv=False)[:r] ** 2 / (n - 1),
        "divided by d": s[:r] ** 2 / (n - 1) / X.shape[1],
        "wrong order": (s[:r] ** 2 / (n - 1))[::-1],
        "shape": s[: r + 1] ** 2 / (n - 1),
        "first r *features*": X.var(axis=0, ddof=1)[:r],
        "single *features*": np.sort(X.var(axis=0, ddof=1))[::-1][:r],
        "full-precision": np.round(s[:r] ** 2 / (n - 1), 3),
    }
    for words, wrong in cases.items():
        fb = verdict(ex, wrong)
        assert not fb and words in fb.message, (words, fb)


# --- 03.3 ------------------------------------------------------------------------------------------


def test_pca_encoder_accepts_any_mix_and_names_U_for_V():
    ex = nb03.pca_encoder
    X, r = ex.data["X"], ex.data["r"]
    assert X.shape[0] == X.shape[1]                                         # so U_r^T has the right shape
    Xc = X - X.mean(axis=0)
    U, s, Vt = np.linalg.svd(Xc)
    M = np.random.default_rng(0).standard_normal((r, r)) + 3 * np.eye(r)
    for right in (Vt[:r], -Vt[:r], np.diag(s[:r]) @ Vt[:r], M @ Vt[:r]):
        assert verdict(ex, right)
    cases = {
        "U_r^T": U[:, :r].T,
        "without centring": np.linalg.svd(X)[2][:r],
        "*smallest*": Vt[-r:],
        "rank <": np.vstack([Vt[0], Vt[0], Vt[1]]),
        "transpose": Vt[:r].T,
        "do not span": np.eye(X.shape[1])[:r],
        "off by one": Vt[1 : r + 1],
        "did you round": np.round(Vt[:r], 3),
    }
    for words, wrong in cases.items():
        fb = verdict(ex, wrong)
        assert not fb and words in fb.message, (words, fb)
    assert not verdict(ex, np.zeros((r, X.shape[1])))


# --- 03.4 ------------------------------------------------------------------------------------------


def test_matched_budget_counts_like_torch():
    from lora_edu.autoencoder import NonlinearAutoencoder

    ex = nb03.matched_budget
    d, h, r = ex.data["d"], ex.data["hidden"], ex.data["r"]
    P = sum(p.numel() for p in NonlinearAutoencoder(d, r, hidden=h).parameters())
    r_lin = P // (2 * d)
    assert 2 * d * r_lin <= P < 2 * d * (r_lin + 1) and r_lin < d
    assert verdict(ex, (P, r_lin)) and verdict(ex, [P, r_lin])
    no_bias = 2 * d * h + 2 * h * r
    cases = {
        (no_bias, r_lin): "biases",
        ((d * h + h) + (h * r + r), r_lin): "one side only",
        (2 * d * r, r_lin): "*linear*",
        (P, r_lin + 1): "round down",
        (P, P // d): "divided P by d only",
        (P, 0): "not the largest",
        (0, 0): "not the parameter count",
        (float(P), r_lin): "whole numbers",
        (P,): "pair",
    }
    for wrong, words in cases.items():
        fb = verdict(ex, wrong)
        assert not fb and words in fb.message, (wrong, fb)


# --- 03.5 ------------------------------------------------------------------------------------------


def test_orthonormal_decoder():
    ex = nb03.orthonormal_decoder
    W = ex.data["W_dec"]
    r = W.shape[1]
    Q, R = np.linalg.qr(W)
    assert verdict(ex, np.linalg.inv(R))
    w, V = np.linalg.eigh(W.T @ W)                                          # the symmetric choice works too
    assert verdict(ex, V @ np.diag(w ** -0.5) @ V.T)
    assert verdict(ex, np.linalg.inv(R) @ np.diag([1.0, -1.0, 1.0]))         # any orthogonal factor after R^-1
    cases = {
        "identity": np.eye(r),
        "R itself": R,
        "over-corrects": np.linalg.inv(W.T @ W),
        "Gram matrix": W.T @ W,
        "singular": np.zeros((r, r)),
        "hint: QR": 2 * np.linalg.inv(R),
        "only rescales": np.diag(1 / np.linalg.norm(W, axis=0)),          # unit columns, still not orthogonal
    }
    for words, wrong in cases.items():
        fb = verdict(ex, wrong)
        assert not fb and words in fb.message, (words, fb)
    fb = verdict(ex, np.eye(r + 1))
    assert not fb and "shape" in fb.message


# --- 03.6 ------------------------------------------------------------------------------------------


def test_uncentred_anchor():
    from lora_edu.autoencoder import pca_mse
    from lora_edu.data import load_digits_data, train_test_split_indices

    ex = nb03.uncentred
    X, _ = load_digits_data()
    tr, _ = train_test_split_indices(len(X), test_fraction=ex.data["test_fraction"], seed=ex.data["split_seed"])
    Xraw, r = X[tr], ex.data["r"]
    Xc = Xraw - Xraw.mean(axis=0)
    right = pca_mse(Xraw, r)                                                # projection onto raw X's top r
    fb = verdict(ex, right)
    assert fb and "between" in fb.message and "at most one unit" in fb.message
    assert pca_mse(Xc, r) < right < pca_mse(Xc, r - 1)                      # the bracket the feedback states
    cases = {
        "centred data": pca_mse(Xc, r),
        "r - 1 units": pca_mse(Xc, r - 1),
        "summed": right * Xraw.size,
        "trained loss": right * 1.005,
        "not the rank": 0.0,
    }
    for words, wrong in cases.items():
        fb = verdict(ex, wrong)
        assert not fb and words in fb.message, (words, fb)


# --- the worked solutions in the notebook ------------------------------------------------------------

DETAILS = re.compile(r"<details>\s*<summary>\s*Worked solution\s*</summary>(.*?)</details>", re.S | re.I)
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def worked_solutions(path: Path) -> list[str]:
    """The python block of every `<details><summary>Worked solution</summary>` markdown cell."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    blocks = []
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        for body in DETAILS.findall("".join(cell["source"])):
            code = PYTHON_BLOCK.findall(body)
            assert len(code) == 1, f"a worked solution needs exactly one python block, found {len(code)}"
            blocks.append(code[0])
    return blocks


def test_every_exercise_has_a_worked_solution():
    blocks = worked_solutions(NOTEBOOK)
    for ex in ALL:
        name = next(n for n in nb03.__all__ if getattr(nb03, n) is ex)
        assert sum(f"nb03.{name}.check(" in b for b in blocks) == 1, f"no worked solution checks nb03.{name}"


@pytest.mark.parametrize("i", range(len(ALL)))
def test_worked_solution_runs_and_is_right(i):
    block = worked_solutions(NOTEBOOK)[i]
    assert block.rstrip().splitlines()[-1].endswith(".check(answer)")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, f"worked-solution-{i + 1}", "exec"), {"__name__": "__worked__"})
    assert out.getvalue().rstrip().splitlines()[-1].startswith("RIGHT"), out.getvalue()[-500:]
