"""The exercise framework: an exercise holds its problem, checks an answer and explains mistakes.

A checker is a function ``checker(answer, **data) -> (correct, message)``. It is written so that

* the right answer, computed from ``data`` (never taken from the learner), gives ``(True, why)``;
* each known wrong answer (a pitfall the course teaches, or a trivial answer) gives ``(False, the
  name of that mistake)``; anything else gives ``(False, a hint)``;
* an answer of the wrong type or shape gives ``(False, what type or shape is expected)``.

:meth:`Exercise.check` adds two things every exercise needs: ``None`` (the placeholder in the
answer cell) prints "no answer yet" instead of raising, so answer cells run as given; and the
result is printed *and* returned as a :class:`Feedback` that is truthy only when right.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

Checker = Callable[..., tuple[bool, str]]


@dataclass(frozen=True)
class Feedback:
    """The verdict on one answer: truthy when right; ``message`` says why (or which mistake)."""

    correct: bool
    message: str

    def __bool__(self) -> bool:
        return self.correct

    def __repr__(self) -> str:
        return f"{'RIGHT' if self.correct else 'NOT YET'}: {self.message}"

    def _ipython_display_(self) -> None:
        """Show nothing as a cell's result: :meth:`Exercise.check` has already printed the verdict,
        and an answer cell that ends with ``ex.check(answer)`` would otherwise show it twice."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: a key such as ``"01.2"``, its statement, its problem data and its checker.

    Args:
        key: ``"<notebook>.<number>"``, as numbered in the notebook's Exercises section.
        statement: the task in one or two sentences (plain text; the notebook states it in full).
        checker: ``checker(answer, **data) -> (correct, message)``; see the module docstring.
        data: the problem's numbers, matrices or settings, shown by :meth:`show` and passed to the
            checker. The learner never passes them back, so they cannot be replaced by easier ones.
        answer_format: what to assign to ``answer`` (e.g. "an int", "a (4, 5) array").
    """

    key: str
    statement: str
    checker: Checker
    data: Mapping[str, Any] = field(default_factory=dict)
    answer_format: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", MappingProxyType(dict(self.data)))

    def show(self) -> None:
        """Print the statement and the problem data (arrays by shape, numbers as they are)."""
        print(f"Exercise {self.key}: {self.statement}")
        for name, value in self.data.items():
            print(f"  {name} = {_describe(value)}")
        if self.answer_format:
            print(f"  answer: {self.answer_format}")

    def check(self, answer: object) -> Feedback:
        """Judge ``answer``, print the verdict and return it (truthy only when right)."""
        if answer is None or answer is Ellipsis:
            fb = Feedback(False, f"no answer yet: replace None with {self.answer_format or 'your answer'}")
        else:
            try:
                correct, message = self.checker(answer, **self.data)
            except (TypeError, ValueError) as exc:  # an answer the checker cannot even read
                correct, message = False, f"cannot read that answer ({exc}); expected {self.answer_format}"
            fb = Feedback(bool(correct), message)
        print(repr(fb))
        return fb

    def __repr__(self) -> str:
        return f"Exercise {self.key}: {self.statement}"


def exercise(key: str, *, data: Mapping[str, Any] | None = None,
             answer_format: str = "") -> Callable[[Checker], Exercise]:
    """Declare an :class:`Exercise` on its checker; the checker's docstring is the statement.

    ::

        @exercise("04.1", data=dict(n_layer=24, n_embd=1024, r=16), answer_format="an int")
        def gpt2_medium_params(answer, n_layer, n_embd, r):
            \"\"\"LoRA with r = 16 on GPT-2 medium's c_attn: how many trainable parameters does it add?\"\"\"
            ...
            return params_verdict(answer, right, why_right, known, hint)

    makes ``gpt2_medium_params`` the exercise (the function stays its ``checker``). The docstring may
    wrap over lines; :meth:`Exercise.show` prints it as one line.
    """

    def declare(checker: Checker) -> Exercise:
        if not checker.__doc__:
            raise TypeError(f"exercise {key}: {checker.__name__} needs a docstring, the exercise's statement")
        return Exercise(key=key, statement=" ".join(checker.__doc__.split()), checker=checker, data=data or {},
                        answer_format=answer_format)

    return declare


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray) or type(value).__name__ == "Tensor":
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    return repr(value)


# --- small helpers for checkers -----------------------------------------------------------------


def is_whole_number(x: object) -> bool:
    """True for Python/numpy integers (not bools, not floats that happen to be whole)."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def as_number(x: object) -> float | None:
    """``float(x)`` for a real number (not a bool, not a string), else None."""
    if isinstance(x, bool) or not isinstance(x, (numbers.Real, np.floating, np.integer)):
        return None
    return float(x)


def as_array(answer: object, name: str = "answer") -> np.ndarray:
    """``answer`` (numpy array, torch tensor or nested lists) as a float64 array."""
    if hasattr(answer, "detach"):  # a torch tensor
        answer = answer.detach().cpu().numpy()
    arr = np.asarray(answer, dtype=np.float64)
    if arr.dtype == object:
        raise TypeError(f"{name} must be an array of numbers")
    return arr


def read_only(problem: dict) -> dict:
    """Freeze the problem's arrays: ``W = data["W"]; W += ...`` then raises instead of changing the problem."""
    for value in problem.values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return problem


def arrays_close(a: np.ndarray, b: np.ndarray, tol: float = 1e-6) -> bool:
    """Same shape and equal within ``tol``, relative to the largest entry of ``b`` (at least 1)."""
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max()))))


def named_mistake(answer: object, known: Iterable[tuple[Any, str]],
                  close: Callable[[Any, Any], bool] = arrays_close) -> str | None:
    """The message of the first ``(wrong, message)`` in ``known`` with ``close(answer, wrong)``, else None."""
    for wrong, message in known:
        if close(answer, wrong):
            return message
    return None


def count_verdict(n: object, right: int, why_right: str, known: Mapping[object, str], hint: str) -> tuple[bool, str]:
    """A checker's verdict on a count: ``why_right`` when ``n == right``, the named mistake when ``n`` is a key
    of ``known``, else ``hint``."""
    if n == right:
        return True, why_right
    if n in known:
        return False, known[n]
    return False, hint


def params_verdict(answer: object, right: int, why_right: str, known: Mapping[object, str],
                   hint: str) -> tuple[bool, str]:
    """:func:`count_verdict` on an answer that counts parameters: one that is not an int is asked for one, and a
    wrong count is quoted before ``hint`` ("24,576 is not it: <hint>")."""
    if not is_whole_number(answer):
        return False, f"give a whole number of parameters (an int), got {answer!r}"
    return count_verdict(answer, right, why_right, known, f"{answer:,} is not it: {hint}")


def array_verdict(got: np.ndarray, right: np.ndarray, why_right: str, known: Iterable[tuple[Any, str]],
                  hint: str) -> tuple[bool, str]:
    """A checker's verdict on an array: ``why_right`` when ``got`` is close to ``right``, the message of the
    first ``known`` wrong value it is close to, else ``hint`` (closeness: :func:`arrays_close`)."""
    if arrays_close(got, right):
        return True, why_right
    return False, named_mistake(got, known) or hint
