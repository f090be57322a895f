"""What every exercise of every notebook must do: trivial answers and the problem's own data are never
right, and check() prints exactly the verdict it returns. (Each notebook's pitfalls are tested in
tests/test_exercises_nbXX.py.)"""

from __future__ import annotations

import importlib

import pytest
from _helpers import TRIVIAL, printed_verdict

MODULES = [importlib.import_module(f"lora_edu.exercises.nb0{n}") for n in range(1, 8)]
EXERCISES = [pytest.param(getattr(m, name), id=f"{m.__name__.rsplit('.', 1)[1]}.{name}")
             for m in MODULES for name in m.__all__]


@pytest.mark.parametrize("exercise", EXERCISES)
@pytest.mark.parametrize("answer", TRIVIAL, ids=repr)
def test_trivial_answers_are_never_right(exercise, answer, capsys):
    assert not printed_verdict(exercise, answer, capsys)


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_problems_own_data_is_not_an_answer(exercise, capsys):
    for value in exercise.data.values():
        assert not printed_verdict(exercise, value, capsys)
