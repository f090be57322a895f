"""Exercises with self-checks, one module per notebook (``nb01`` ... ``nb07``).

Every exercise is an :class:`~lora_edu.exercises._core.Exercise` that *holds its own problem*:
the learner reads the problem from it and passes only the answer, so a trivial answer (``0``, an
empty list, the question's own data) can never be judged right. Feedback names the actual mistake
when the answer matches a known pitfall. In a notebook::

    from lora_edu.exercises import nb01
    ex = nb01.factored_params
    ex.show()          # the problem and its data
    answer = None      # <- replace None with your answer
    ex.check(answer)   # prints RIGHT / NOT YET with the reason; runs as given

Each notebook also carries a hidden worked solution per exercise (a ``<details>`` block that a
test extracts and runs), and at least one open, exploratory task.
"""

from lora_edu.exercises._core import Exercise, Feedback

__all__ = ["Exercise", "Feedback"]
