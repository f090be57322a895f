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

In its module an exercise is its checker, declared with :func:`~lora_edu.exercises._core.exercise`:
the decorator takes the key, the problem data and the answer format, the docstring is the statement,
and the body judges ``answer`` against the data (right, a named mistake, or a hint)::

    @exercise("04.1", data=dict(n_layer=24, n_embd=1024, r=16), answer_format="an int")
    def gpt2_medium_params(answer, n_layer, n_embd, r):
        \"\"\"LoRA with r = 16 on GPT-2 medium's c_attn: how many trainable parameters does it add?\"\"\"
        ...

The checkers' shared pieces (reading an answer, comparing arrays, naming a known mistake, the
verdict on a count or an array) are in :mod:`lora_edu.exercises._core`.
"""

from lora_edu.exercises._core import Exercise, Feedback, exercise

__all__ = ["Exercise", "Feedback", "exercise"]
