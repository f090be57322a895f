"""Notebook 02's exercises: right answers pass, trivial and pitfall answers fail with the right diagnosis,
the answer cells run as given, and every hidden worked solution in the notebook prints RIGHT."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from lora_edu import svd as S
from lora_edu.exercises import Exercise, nb02

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "02_svd_truncation.ipynb"
EXERCISES = [nb02.energy_rank, nb02.break_even_rank, nb02.eckart_young_error, nb02.largest_stretch,
             nb02.lora_factors, nb02.denoise_rank]


def verdict(ex: Exercise, answer: object) -> tuple[bool, str]:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        fb = ex.check(answer)
    assert out.getvalue().strip() == repr(fb)          # printed once, as returned
    return fb.correct, fb.message


def right(ex: Exercise, answer: object) -> str:
    ok, msg = verdict(ex, answer)
    assert ok, msg
    return msg


def wrong(ex: Exercise, answer: object, *words: str) -> str:
    ok, msg = verdict(ex, answer)
    assert not ok, f"{answer!r} was judged right: {msg}"
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    return msg


def test_module_lists_six_numbered_exercises_with_read_only_data():
    assert [ex.key for ex in EXERCISES] == [f"02.{i}" for i in range(1, 7)]
    for ex in EXERCISES:
        for value in ex.data.values():
            if isinstance(value, np.ndarray):
                assert not value.flags.writeable, f"{ex.key}: a learner could edit the problem"
        with contextlib.redirect_stdout(io.StringIO()) as out:
            ex.show()
            fb = ex.check(None)
        assert not fb and "no answer yet" in out.getvalue()


# --- 02.1 energy -----------------------------------------------------------------------------------


def test_energy_rank():
    ex = nb02.energy_rank
    s = np.linalg.svd(ex.data["image"], compute_uv=False)
    r = S.rank_for_energy(s, 0.98)
    assert r == 34
    right(ex, r)
    right(ex, np.int64(r))
    wrong(ex, int(np.argmax(np.cumsum(s) / s.sum() >= 0.98) + 1), "summed sigma_i", "sigma_i^2")
    wrong(ex, S.rank_for_energy(s, 1 - 0.02**2), "relative error of at most 2%", "14.1%")
    wrong(ex, r - 1, "just short", "0-based", "searchsorted")
    wrong(ex, r + 1, "smallest")
    wrong(ex, 5, "keeps only")
    wrong(ex, 0, "no energy")
    wrong(ex, 512, "full rank")
    wrong(ex, 600, "full rank")
    msg = wrong(ex, float(r), "pass the int 34")
    assert "truncat" not in msg and "round" not in msg          # a whole float is not a rounding mistake
    wrong(ex, 33.7, "whole number")
    wrong(ex, "34", "int")
    wrong(ex, True, "int")
    wrong(ex, ex.data["image"], "int")                          # the question's own data


# --- 02.2 storage ----------------------------------------------------------------------------------


def test_break_even_rank():
    ex = nb02.break_even_rank
    m, n = ex.data["m"], ex.data["n"]
    assert (m, n) == (768, 512)
    msg = right(ex, 306)
    assert "391,986 < 393,216" in msg and "393,267" in msg   # the numbers the worked solution quotes
    assert (m * n - 1) // (m + n) == 307                      # forgetting the sigmas gives a different answer here
    wrong(ex, 307, "r(m + n)", "singular values", "306.96")
    wrong(ex, 512, "full rank", "655,872")
    wrong(ex, 0, "r = 0")
    wrong(ex, 200, "find the largest")
    wrong(ex, 400, "no saving")
    msg = wrong(ex, m * n / (m + n + 1), "306.96", "whole number")
    assert "truncat" not in msg
    wrong(ex, 306.0, "pass the int 306")
    wrong(ex, [306], "int")


# --- 02.3 Eckart-Young -----------------------------------------------------------------------------


def test_eckart_young_error():
    ex = nb02.eckart_young_error
    s, r = ex.data["s"], ex.data["r"]
    value = float(np.sqrt(np.sum(s[r:] ** 2)))
    right(ex, value)
    right(ex, np.float32(value) if np.isclose(np.float32(value), value, rtol=1e-6) else value)
    wrong(ex, s[r], "spectral norm")
    wrong(ex, s[r - 1], "sigma_10", "last singular value you keep")
    wrong(ex, np.sum(s[r:]), "summed the discarded sigma_i")
    wrong(ex, np.sum(s[r:] ** 2), "square root")
    wrong(ex, np.sqrt(np.sum(s[r - 1:] ** 2)), "off by one")
    wrong(ex, np.sqrt(np.sum(s[:r] ** 2)), "the part you keep")
    wrong(ex, value / np.linalg.norm(s), "relative error")
    wrong(ex, np.linalg.norm(s), "r = 0")
    wrong(ex, 0.0, "not 0")
    msg = wrong(ex, round(value, 2), "looks rounded")
    assert "truncat" not in msg
    wrong(ex, value * 1.5, "is not the Frobenius error")
    wrong(ex, s, "one number")                                   # the question's own data
    wrong(ex, "59.5", "one number")


# --- 02.4 largest stretch ---------------------------------------------------------------------------


def test_largest_stretch():
    ex = nb02.largest_stretch
    right(ex, 1 + np.sqrt(2))
    wrong(ex, 1.0, "eigenvalue")
    wrong(ex, 3 + 2 * np.sqrt(2), "square root")
    wrong(ex, np.sqrt(6), "Frobenius")
    wrong(ex, np.sqrt(5), "column")
    wrong(ex, 2.0, "largest entry")
    wrong(ex, np.sqrt(2) - 1, "smallest stretch")
    wrong(ex, 2.414, "looks rounded")
    wrong(ex, 2.3, "some unit vector is stretched more")
    wrong(ex, 3.0, "no unit vector")
    wrong(ex, ex.data["M"], "one number")


# --- 02.5 LoRA factors ------------------------------------------------------------------------------


def test_lora_factors():
    ex = nb02.lora_factors
    dW = ex.data["delta_W"]
    assert dW.shape == (12, 10) and np.linalg.matrix_rank(dW) == 3
    U, s, Vt = np.linalg.svd(dW, full_matrices=False)
    r = 3
    right(ex, (U[:, :r] * np.sqrt(s[:r]), np.sqrt(s[:r])[:, None] * Vt[:r]))
    right(ex, [U[:, :r] * s[:r], Vt[:r]])                                  # Sigma in B only: also right
    right(ex, ((U[:, :r] * s[:r]).astype(np.float32), Vt[:r].astype(np.float32)))   # float32: exact up to rounding
    M = np.random.default_rng(0).standard_normal((3, 3)) + 3 * np.eye(3)  # any invertible re-mixing
    right(ex, ((U[:, :r] * s[:r]) @ M, np.linalg.solve(M, Vt[:r])))
    wrong(ex, (U[:, :r], Vt[:r]), "dropped the singular values")
    wrong(ex, (U[:, :r] * s[:r], s[:r, None] * Vt[:r]), "twice")
    wrong(ex, (dW, np.eye(10)), "trivial factorisation")
    wrong(ex, (U * s, Vt), "r = 10", "rank(Delta W) = 3")
    wrong(ex, (U[:, :2] * s[:2], Vt[:2]), "no product")
    wrong(ex, (U[:, :r] * s[:r], Vt[:r].T), "passed V_r")
    wrong(ex, (Vt[:r], U[:, :r]), "B must be (d, r)")
    wrong(ex, (U[:, :r] * s[:r], -Vt[:r]), "differs from Delta W")
    wrong(ex, dW, "pair (B, A)")                                           # the question's own data
    wrong(ex, (dW,), "pair (B, A)")
    wrong(ex, (np.zeros(12), np.zeros(10)), "matrices")


# --- 02.6 denoising (open) --------------------------------------------------------------------------


def test_denoise_problem_and_its_margins():
    clean, noisy = nb02._denoise_problem()
    assert np.linalg.matrix_rank(clean) == 25 and noisy.shape == (200, 300)
    errors = S.denoising_errors(noisy, clean)
    best = int(np.argmin(errors))
    ratio = errors / errors[best]
    accepted = np.flatnonzero(ratio <= nb02.DENOISE_TOLERANCE)
    assert best == 11 and list(accepted) == list(range(9, 14))
    # The accepted range cannot flip on another machine: its edges are far from the tolerance.
    assert np.all(np.abs(ratio - nb02.DENOISE_TOLERANCE) > 5e-3)
    # Facts quoted in the worked solution.
    s = np.linalg.svd(noisy, compute_uv=False)
    tau = S.optimal_hard_threshold(noisy.shape, sigma=1.0)
    assert round(tau, 1) == 36.4 and round(np.sqrt(200) + np.sqrt(300), 1) == 31.5
    assert np.sum(s > tau) == 10 == np.sum(s > S.optimal_hard_threshold(noisy.shape, s=s))
    assert 95 <= S.rank_for_energy(s, 0.9) <= 115                       # "about a hundred"
    assert np.min(np.abs(s / tau - 1)) > 1e-6                    # no singular value on the threshold


def test_denoise_rank():
    ex = nb02.denoise_rank
    s = np.linalg.svd(ex.data["noisy"], compute_uv=False)
    for r in (9, 10, 11, 12, 13):
        right(ex, r)
    assert "the best possible error" in right(ex, 11)
    wrong(ex, 8, "too few")
    wrong(ex, 14, "too many", "only just above the edge")
    edge = np.sqrt(200) + np.sqrt(300)
    assert int(np.sum(s > edge)) == 15 and s[14] - edge > 1e-3                   # stable across machines
    wrong(ex, 15, "above the noise bulk's edge", "still mostly noise", "36.38")
    wrong(ex, 25, "too many", "inside the pure-noise spectrum")     # the true rank is not the best r
    wrong(ex, 0, "throws the signal away")
    wrong(ex, 200, "keeps all the noise")
    wrong(ex, S.rank_for_energy(s, 0.9), "90% of the energy", "noise energy as signal")
    wrong(ex, S.rank_for_energy(s, 0.99), "99% of the energy")
    wrong(ex, 201, "between 0 and")
    wrong(ex, -1, "between 0 and")
    wrong(ex, 11.0, "pass the int 11")
    wrong(ex, ex.data["noisy"], "int")


# --- the notebook: answer cells and hidden worked solutions ------------------------------------------


def _cells(kind: str) -> list[str]:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == kind]


def worked_solutions() -> list[str]:
    """The python block of every ``<details><summary>Worked solution</summary>`` markdown cell."""
    blocks = []
    for md in _cells("markdown"):
        if "<summary>Worked solution</summary>" not in md:
            continue
        code = re.findall(r"```python\n(.*?)```", md, flags=re.S)
        assert len(code) == 1, f"a worked solution needs exactly one python block:\n{md[:200]}"
        blocks.append(code[0])
    return blocks


def test_every_exercise_has_an_answer_cell_and_a_worked_solution():
    answer_cells = [c for c in _cells("code") if "answer = None" in c]
    assert len(answer_cells) == len(EXERCISES) == len(worked_solutions())
    for ex, cell, solution in zip(EXERCISES, answer_cells, worked_solutions(), strict=True):
        name = next(k for k, v in vars(nb02).items() if v is ex)
        assert f"nb02.{name}.check(answer)" in cell
        assert solution.rstrip().splitlines()[-1] == f"nb02.{name}.check(answer)"


def test_answer_cells_run_as_given():
    namespace: dict = {}
    exec("from lora_edu.exercises import nb02", namespace)
    for cell in (c for c in _cells("code") if "answer = None" in c):
        with contextlib.redirect_stdout(io.StringIO()) as out:
            exec(compile(cell, "answer-cell", "exec"), namespace)
        assert "NOT YET: no answer yet" in out.getvalue()


@pytest.mark.parametrize("index", range(len(EXERCISES)))
def test_worked_solution_prints_right(index):
    block = worked_solutions()[index]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(compile(block, f"worked-solution-{index + 1}", "exec"), {})   # self-contained: a fresh namespace
    assert out.getvalue().startswith("RIGHT"), out.getvalue()
