"""Scaffolding shared by the test modules (tests/ is on sys.path under pytest's default import mode)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from lora_edu.tools.registry import notebook_paths

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = notebook_paths(ROOT / "notebooks")
#: ``@each_notebook`` runs a test once per committed notebook, with its path as ``path``.
each_notebook = pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)

# Answers that are right for no exercise: placeholders, empty containers, wrong types, NaN.
TRIVIAL = [None, 0, 0.0, "", [], (), "abc", {"a": 1}, float("nan")]


def quiet_verdict(exercise, answer):
    """``exercise.check(answer)`` with its printed verdict swallowed."""
    with contextlib.redirect_stdout(io.StringIO()):
        return exercise.check(answer)


def printed_verdict(exercise, answer, capsys):
    """``exercise.check(answer)``, asserting that it prints exactly its verdict."""
    fb = exercise.check(answer)
    assert capsys.readouterr().out.strip() == repr(fb)
    return fb


def assert_mistakes_named(exercise, cases, verdict=quiet_verdict):
    """Each ``(answer, words)`` in ``cases`` (pairs, or a dict) is judged wrong with ``words`` in the message."""
    for answer, words in (cases.items() if isinstance(cases, dict) else cases):
        fb = verdict(exercise, answer)
        assert not fb and words in fb.message, (answer, words, fb.message)


def assert_no_problems(problems, what, path, how):
    """Fail listing ``problems`` (of kind ``what``, in the notebook at ``path``) and ``how`` to fix them."""
    assert not problems, f"{len(problems)} {what} problem(s) in {path.name} ({how}):\n" + \
        "\n".join(str(p) for p in problems)
