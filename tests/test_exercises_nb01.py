"""Notebook 01's exercises: trivial and pitfall answers are never right, the feedback names the
mistake, right answers pass; and every worked solution in the notebook runs and prints RIGHT.

:func:`worked_solutions` and :func:`run_worked_solution` take any notebook, so every notebook's
test can reuse them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from lora_edu.exercises import nb01

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "01_matrix_rank.ipynb"


def verdict(exercise, answer, capsys):
    fb = exercise.check(answer)
    printed = capsys.readouterr().out
    assert printed.strip() == repr(fb)            # check() prints exactly its verdict
    return fb


# --- 01.1 a 5 x 6 matrix of rank 3 without zeros --------------------------------------------------

def rank_3_right():
    rng = np.random.default_rng(0)
    return rng.integers(1, 5, size=(5, 3)) @ rng.integers(1, 5, size=(3, 6))


@pytest.mark.parametrize("answer, words", [
    (np.ones((5, 6)), "rank 1"),
    (np.arange(1, 31).reshape(5, 6), "rank 2"),
    (np.random.default_rng(1).integers(1, 9, size=(5, 6)), "full rank"),
    (rank_3_right().T, "transpose"),
    (np.ones((4, 5)), "5 x 6"),
    (np.vstack([rank_3_right()[:4], np.zeros((1, 6))]), "zero"),
    (np.vstack([rank_3_right()[:3], np.full((2, 6), 1e-20)]), "zeros in disguise"),    # rank 3 by tolerance
    (rank_3_right() + np.random.default_rng(2).integers(1, 3, size=(5, 6)), "full rank"),
    (np.random.default_rng(3).integers(1, 9, size=(5, 4)) @ np.random.default_rng(4).integers(1, 9, size=(4, 6)),
     "rank 4"),
])
def test_rank_3_matrix_wrong(answer, words, capsys):
    fb = verdict(nb01.rank_3_matrix, answer, capsys)
    assert not fb and words in fb.message


@pytest.mark.parametrize("answer", [None, "abc", [1, 2, 3], 0])
def test_rank_3_matrix_unreadable_or_missing(answer, capsys):
    assert not verdict(nb01.rank_3_matrix, answer, capsys)


def test_rank_3_matrix_right(capsys):
    assert verdict(nb01.rank_3_matrix, rank_3_right(), capsys)
    assert verdict(nb01.rank_3_matrix, rank_3_right().tolist(), capsys)      # nested lists work too


# --- 01.2 stored parameters r(d + k) ----------------------------------------------------------------

@pytest.mark.parametrize("answer, words", [
    (2 * 8 * 768, "768 x 768"),               # c_attn treated as square: note 000's slip
    (8 * 768, "A alone"),
    (8 * 2304, "B alone"),
    (2304 * 768, "dense"),
    (8 * (2304 + 768 - 8), "degrees of freedom"),
    (8, "rank r itself"),
    (0, "positive"),
    (-24_576, "positive"),
    (24_577, "count the entries"),
    (24_576.5, "whole number"),
    ("24576", "whole number"),
    (True, "whole number"),
])
def test_factored_params_wrong(answer, words, capsys):
    fb = verdict(nb01.factored_params, answer, capsys)
    assert not fb and words in fb.message


@pytest.mark.parametrize("answer", [24_576, np.int64(24_576), 24_576.0])
def test_factored_params_right(answer, capsys):
    assert verdict(nb01.factored_params, answer, capsys)


# --- 01.3 degrees of freedom r(d + k - r) -----------------------------------------------------------

@pytest.mark.parametrize("answer, words", [
    (16 * (3072 + 768), "redundant"),          # every entry of B and A
    (16 * (3072 + 768 + 16), "wrong sign"),
    (16 * (3072 + 768) - 16, "r^2 entries"),
    (3072 * 768, "dense"),
    (16, "rank r itself"),
    (0, "positive"),
    (-61_184, "positive"),
    (12_345, "symmetry"),
])
def test_degrees_of_freedom_wrong(answer, words, capsys):
    fb = verdict(nb01.degrees_of_freedom, answer, capsys)
    assert not fb and words in fb.message


def test_degrees_of_freedom_right(capsys):
    from lora_edu.rank import degrees_of_freedom

    assert verdict(nb01.degrees_of_freedom, 61_184, capsys)
    assert degrees_of_freedom(3072, 768, 16) == 61_184


# --- 01.4 smallest and largest rank of A B ----------------------------------------------------------

@pytest.mark.parametrize("answer, words", [
    ((0, 3), "does not fit"),
    ((1, 8), "do not add"),
    ((1, 5), "rank(AB) <= rank A too"),
    ((1, 15), "do not multiply"),
    ((3, 3), "not fixed"),
    ((2, 3), "can lie inside col B"),
    ((3, 1), "swapped"),
    ((1, 2), "can reach"),
    ((3, 5), "rank(AB) <= rank A too"),       # the question's own data
    (3, "pair"),
    ((1.5, 3), "whole numbers"),
    (("1", "3"), "whole numbers"),
    ((1, 2, 3), "pair"),
])
def test_product_rank_range_wrong(answer, words, capsys):
    fb = verdict(nb01.product_rank_range, answer, capsys)
    assert not fb and words in fb.message


def test_product_rank_range_right_and_both_ends_occur(capsys):
    assert verdict(nb01.product_rank_range, (1, 3), capsys)
    assert verdict(nb01.product_rank_range, [np.int64(1), 3], capsys)
    assert verdict(nb01.product_rank_range, (1.0, 3.0), capsys)          # whole floats count, as in 01.2
    # both ends are attained: A (6 x 7, rank 3), B (7 x 9, rank 5)
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 3)) @ rng.standard_normal((3, 7))
    N = np.linalg.svd(A)[2][3:].T                                  # null space of A, 7 x 4
    B_lo = np.hstack([N, rng.standard_normal((7, 1))]) @ rng.standard_normal((5, 9))
    B_hi = rng.standard_normal((7, 5)) @ rng.standard_normal((5, 9))
    assert [np.linalg.matrix_rank(M) for M in (A, B_lo, B_hi)] == [3, 5, 5]
    assert np.linalg.matrix_rank(A @ B_lo, tol=1e-8) == 1 and np.linalg.matrix_rank(A @ B_hi) == 3


# --- 01.5 an input the update ignores ---------------------------------------------------------------

def test_ignored_input(capsys):
    ex = nb01.ignored_input
    B, A = ex.data["B"], ex.data["A"]
    right = np.array([-2, -1, 1, 0, 0])
    fb = verdict(ex, right, capsys)
    assert fb and "dimension k - r = 3" in fb.message
    assert verdict(ex, [1, -2, 0, 1, 0], capsys)                       # another free variable
    assert verdict(ex, 3.5 * right.reshape(5, 1), capsys)               # a column vector, scaled
    wrong = {
        "non-zero": np.zeros(5),                                        # trivial
        "row space": A[0],                                              # the question's own data
        "row space ": (B @ A)[2],                                       # a row of Delta W
        "output side": B[:, 0],                                         # a vector of length d
        "is not zero": np.ones(5),
        "k = 5": np.ones(4),
        "NaN": np.array([np.nan, 0, 0, 0, 0]),
        "vector of 5": np.ones((2, 5)),
    }
    for words, answer in wrong.items():
        fb = verdict(ex, answer, capsys)
        assert not fb and words.strip() in fb.message, (words, fb)


# --- 01.6 open task: A = C R --------------------------------------------------------------------------

def test_cr_factorisation_accepts_every_valid_choice(capsys):
    from itertools import combinations

    A = nb01.cr_factorisation.data["A"]
    assert A.shape == (4, 5) and np.linalg.matrix_rank(A) == 2 and np.all(A != 0)
    accepted = 0
    for cols in combinations(range(5), 2):
        C = A[:, list(cols)]
        if np.linalg.matrix_rank(C) < 2:
            continue
        R = np.linalg.lstsq(C, A, rcond=None)[0]
        fb = verdict(nb01.cr_factorisation, (C, R), capsys)
        assert fb and "9 of the 10 choices" in fb.message
        accepted += 1
    assert accepted == 9


def test_cr_factorisation_mistakes(capsys):
    A = nb01.cr_factorisation.data["A"].astype(float)
    C = A[:, [0, 2]]
    R = np.linalg.lstsq(C, A, rcond=None)[0]
    U, s, Vt = np.linalg.svd(A)
    wrong = {
        "not independent": (A, np.eye(5)),                              # C = A, R = I: trivial
        "parallel": (A[:, [0, 1]], R),                                  # first r columns: dependent
        "not a column of A": (U[:, :2] * s[:2], Vt[:2]),                # an SVD split, not C R
        "has rank 2": (A[:, [0]], R[:1]),                               # too few columns
        "transpose it": (C, R.T),
        "r x k": (C, R[:, :4]),
        "differs from A": (C, R + 0.1),
        "has no columns": (np.zeros((4, 0)), np.zeros((0, 5))),
        "pair (C, R)": A,
    }
    for words, answer in wrong.items():
        fb = verdict(nb01.cr_factorisation, answer, capsys)
        assert not fb and words in fb.message, (words, fb)
    assert verdict(nb01.cr_factorisation, (C, R), capsys)


def test_every_exercise_says_no_answer_yet_for_none(capsys):
    for name in nb01.__all__:
        fb = verdict(getattr(nb01, name), None, capsys)
        assert not fb and "no answer yet" in fb.message


def test_problem_data_cannot_be_replaced():
    with pytest.raises(TypeError):
        nb01.factored_params.data["d"] = 768               # the problem is read-only


# --- worked solutions: generic, for any notebook -------------------------------------------------------

DETAILS = re.compile(r"<details>\s*<summary>\s*Worked solution\s*</summary>(.*?)</details>", re.S | re.I)
PY_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def worked_solutions(notebook: Path) -> list[tuple[int, str]]:
    """``(cell index, code)`` for every worked-solution block of ``notebook``.

    A worked solution is a markdown cell holding ``<details><summary>Worked solution</summary>``
    with exactly one python code block; anything else there is an authoring error.
    """
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    found = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        for block in DETAILS.findall(text):
            code = PY_BLOCK.findall(block)
            assert len(code) == 1, f"{Path(notebook).name} cell {i}: a worked solution needs exactly one python block"
            found.append((i, code[0]))
    return found


def run_worked_solution(code: str, cwd: Path) -> str:
    """Run one worked solution in a fresh namespace (in ``cwd``, like the notebook); return stdout."""
    out = io.StringIO()
    old = Path.cwd()
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out):
            exec(compile(code, "<worked solution>", "exec"), {"__name__": "__worked_solution__"})
    finally:
        os.chdir(old)
    return out.getvalue()


def check_worked_solutions(notebook: Path, expected: int | None = None) -> None:
    """Every worked solution of ``notebook`` runs, ends with ``.check(answer)`` and prints RIGHT."""
    solutions = worked_solutions(notebook)
    assert solutions, f"{Path(notebook).name} has no worked solutions"
    if expected is not None:
        assert len(solutions) == expected, f"{Path(notebook).name}: {len(solutions)} worked solutions"
    for i, code in solutions:
        last = [line for line in code.strip().splitlines() if line.strip()][-1]
        assert re.search(r"\.check\(answer\)\s*$", last), f"cell {i}: the solution must end with .check(answer)"
        printed = run_worked_solution(code, Path(notebook).parent)
        verdicts = re.findall(r"^(RIGHT|NOT YET):", printed, re.M)
        assert verdicts and verdicts[-1] == "RIGHT", f"cell {i}: the worked solution printed\n{printed}"


def test_every_exercise_of_notebook_01_has_a_tested_worked_solution():
    check_worked_solutions(NOTEBOOK, expected=len(nb01.__all__))
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    cells = nb["cells"]
    for name in nb01.__all__:                     # each answer cell is followed by its solution
        i = next(j for j, c in enumerate(cells) if c["cell_type"] == "code"
                 and f"nb01.{name}.check(answer)" in "".join(c["source"]))
        assert "answer = None" in "".join(cells[i]["source"]), f"{name}: the answer cell must start at None"
        assert DETAILS.search("".join(cells[i + 1]["source"])), f"{name}: no worked solution right after it"
