"""Text the course writes itself: a pretraining corpus for the offline GPT-2 and the fine-tuning task.

Nothing here is downloaded. Sentences come from templates filled by a seeded random generator,
so the same seed always gives the same text.

* :func:`course_corpus` - plain English sentences about counting things and about the course's
  linear algebra (number words in context, digits written with spaces, facts from notebooks 01-04).
  The offline fallback GPT-2 is pretrained on it.
* :func:`number_words_task` - the fine-tuning task of notebook 06: write a number given as
  spaced digits ("4 7") in English words ("forty-seven"). The *format* never occurs in the
  pretraining corpus, so the base model has to learn it, and held-out numbers (never seen in
  training) measure whether it learned the rule rather than the examples: exact match on them is
  the task metric.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from lora_edu._checks import check_int

UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEENS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_to_words(n: int) -> str:
    """English words for 0 <= n <= 999, e.g. 347 -> 'three hundred forty-seven'."""
    n = check_int(n, "n", 0, 999)
    if n < 10:
        return UNITS[n]
    if n < 20:
        return TEENS[n - 10]
    if n < 100:
        tens, units = divmod(n, 10)
        return TENS[tens] + ("" if units == 0 else "-" + UNITS[units])
    hundreds, rest = divmod(n, 100)
    return UNITS[hundreds] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))


def spaced_digits(n: int) -> str:
    """'347' -> '3 4 7': one GPT-2 token per digit, so the model can see each digit."""
    return " ".join(str(check_int(n, "n", 0)))


NOUNS = ["students", "matrices", "apples", "columns", "rows", "layers", "books", "birds", "chairs", "lectures",
         "notebooks", "weights", "cats", "trees", "questions", "examples"]
PLACES = ["room", "library", "garden", "course", "model", "table", "class", "box", "village", "lecture hall"]
NAMES = ["Ada", "Alan", "Grace", "Emmy", "Carl", "Sofia", "Kurt", "Hedy", "John", "Mary"]
FACTS = [
    "The rank of a matrix is the number of independent columns.",
    "The rank of a product is at most the smaller of the two ranks.",
    "A rank one matrix is an outer product of two vectors.",
    "The singular value decomposition writes a matrix as a rotation, a scaling and another rotation.",
    "Keeping the largest singular values gives the best low rank approximation.",
    "The error of the best rank k approximation is the square root of the sum of the discarded squared "
    "singular values.",
    "A linear autoencoder learns the same subspace as principal component analysis.",
    "LoRA keeps the pretrained weight frozen and learns a low rank update.",
    "The update is the product of two thin matrices, B and A.",
    "B starts at zero, so the model starts exactly where the pretrained model was.",
    "The scaling factor is alpha divided by the rank.",
    "After training, the update can be merged into the weight.",
    "A merged adapter adds no time at inference.",
    "Quantization stores each weight with fewer bits.",
    "A four bit weight takes one eighth of the memory of a thirty two bit weight.",
    "Fine tuning changes the weights of a pretrained model for a new task.",
    "The learning rate controls the size of each step.",
    "A small rank often works as well as full fine tuning.",
    "The attention layer projects the input to queries, keys and values.",
    "The tokenizer splits text into tokens.",
]
TEMPLATES = [
    "There are {w} {noun} in the {place}.",
    "{name} counted {w} {noun}.",
    "The {place} has {w} {noun} and {w2} {noun2}.",
    "We saw {w} {noun} near the {place}.",
    "{name} wrote {d} on the board and read it aloud as {w}.",
    "The code {d} opens the {place}.",
    "Page {d} of the book is about {noun}.",
    "{name} has {w} {noun}, and {name2} has {w2}.",
    "In the {place} there were {w} {noun} yesterday.",
    "The answer is {w}.",
]


def _sentence(rng: random.Random) -> str:
    if rng.random() < 0.25:
        return rng.choice(FACTS)
    a, b = rng.randrange(0, 1000), rng.randrange(0, 1000)
    return rng.choice(TEMPLATES).format(
        w=number_to_words(a), w2=number_to_words(b), d=spaced_digits(a), noun=rng.choice(NOUNS),
        noun2=rng.choice(NOUNS), place=rng.choice(PLACES), name=rng.choice(NAMES), name2=rng.choice(NAMES),
    )


def course_corpus(n_sentences: int = 20_000, seed: int = 0) -> list[str]:
    """``n_sentences`` seeded sentences (see module docstring), joined later into paragraphs."""
    n_sentences = check_int(n_sentences, "n_sentences", 1)
    rng = random.Random(seed)
    return [_sentence(rng) for _ in range(n_sentences)]


def held_out_text(n_sentences: int = 300, seed: int = 12345) -> str:
    """One fixed paragraph of course-style text, from a seed the pretraining never uses.

    Notebook 05 scores every quantized model on exactly this text (no sampling).
    """
    return " ".join(course_corpus(n_sentences, seed))


@dataclass
class NumberWordsExample:
    number: int
    prompt: str  # "Number: 4 7\nIn words:"
    target: str  # " forty-seven"

    @property
    def text(self) -> str:
        return self.prompt + self.target


def format_number_example(n: int) -> NumberWordsExample:
    """The fine-tuning format: prompt with spaced digits, target with a leading space."""
    return NumberWordsExample(n, f"Number: {spaced_digits(n)}\nIn words:", " " + number_to_words(n))


def number_words_task(
    n_train: int = 600, n_test: int = 150, seed: int = 0, max_number: int = 999
) -> dict[str, list[NumberWordsExample]]:
    """Disjoint train/test numbers in [0, max_number] for the digits -> words task.

    Returns ``{"train": [...], "test": [...]}``; no number appears in both.
    """
    max_number = check_int(max_number, "max_number", 1, 999)
    n_train = check_int(n_train, "n_train", 1)
    n_test = check_int(n_test, "n_test", 1)
    if n_train + n_test > max_number + 1:
        raise ValueError(f"n_train + n_test must be <= {max_number + 1} distinct numbers, got {n_train + n_test}")
    numbers = list(range(max_number + 1))
    random.Random(seed).shuffle(numbers)
    return {
        "train": [format_number_example(n) for n in numbers[:n_train]],
        "test": [format_number_example(n) for n in numbers[n_train : n_train + n_test]],
    }
