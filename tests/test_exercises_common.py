"""What every exercise of every notebook must do: trivial answers and the problem's own data are never
right, and check() prints exactly the verdict it returns. (Each notebook's pitfalls are tested in
tests/test_exercises_nbXX.py.)"""

from __future__ import annotations

import importlib

import pytest
from _helpers import TRIVIAL, printed_verdict

from lora_edu.exercises import Exercise
from lora_edu.exercises import exercise as declare

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


@pytest.mark.parametrize("exercise", EXERCISES)
def test_each_module_lists_its_exercises_under_their_own_names(exercise):
    """``@exercise`` puts the exercise where its checker was: ``nb04.gpt2_medium_params`` is the exercise."""
    assert getattr(importlib.import_module(exercise.checker.__module__), exercise.checker.__name__) is exercise


def test_the_decorator_declares_an_exercise_from_its_checker():
    @declare("99.1", data={"n": 3}, answer_format="an int")
    def triple(answer, n):
        """What is three
        times n?"""
        return answer == 3 * n, "3 n"

    assert isinstance(triple, Exercise) and triple.checker.__name__ == "triple"
    assert (triple.key, triple.statement, dict(triple.data), triple.answer_format) == \
        ("99.1", "What is three times n?", {"n": 3}, "an int")
    assert triple.check(9) and not triple.check(8)
    with pytest.raises(TypeError, match="needs a docstring"):
        declare("99.2")(lambda answer: (True, ""))
