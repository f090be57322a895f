"""Text the course writes itself: a pretraining corpus for the offline GPT-2 and the fine-tuning task.

Nothing here is downloaded. Sentences come from templates filled by a seeded random generator,
so the same seed always gives the same text.

* :func:`course_corpus` - plain English sentences about counting things and about the course's
  linear algebra (number words in context, digits written with spaces, facts from notebooks 01-04).
  The offline fallback GPT-2 is pretrained on it.
* :func:`counting_qa_task` - the fine-tuning task of notebook 06: read one counting sentence and
  answer "Who counted?", "What was counted?", "Where?" or "How many?" in the format
  "Question: ...\nAnswer: ...". The format never occurs in the pretraining corpus, so the base
  model has to learn it; held-out sentences (never seen in training) measure whether it learned the
  rule rather than the examples: exact match on them is the task metric.
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
    # Sentences that mention the same entity twice: they teach the model to look back and copy,
    # which is what answering a question about a sentence needs.
    "{name} counted {w} {noun} in the {place}. "
    "So {name} counted the {noun}, and the {noun} were in the {place}.",
    "{name} counted {w} {noun}. That makes {w} {noun}, counted by {name}.",
    "In the {place}, {name2} found {w2} {noun2}; {name2} found the {noun2} in the {place}.",
    "The {noun} in the {place} were counted by {name}: {name} counted {w} of them.",
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
class TaskExample:
    """One fine-tuning example: the model sees ``prompt`` and must continue with ``target``."""

    prompt: str
    target: str
    kind: str = ""

    @property
    def text(self) -> str:
        return self.prompt + self.target


QUESTIONS = {
    "who": ("Who counted?", lambda f: f["name"]),
    "what": ("What was counted?", lambda f: f["noun"]),
    "where": ("Where?", lambda f: f["place"]),
    "how many": ("How many?", lambda f: f["words"]),
}


def counting_qa_example(name: str, number: int, noun: str, place: str, question: str) -> TaskExample:
    """One reading question about one counting sentence, in the course's answer format.

    >>> counting_qa_example("Ada", 47, "apples", "garden", "how many").text
    'Ada counted forty-seven apples in the garden.\nQuestion: How many?\nAnswer: forty-seven'
    """
    if question not in QUESTIONS:
        raise ValueError(f"question must be one of {sorted(QUESTIONS)}, got {question!r}")
    facts = {"name": name, "noun": noun, "place": place, "words": number_to_words(number)}
    q, answer = QUESTIONS[question]
    prompt = f"{name} counted {facts['words']} {noun} in the {place}.\nQuestion: {q}\nAnswer:"
    return TaskExample(prompt, " " + answer(facts), question)


def counting_qa_task(n_train: int = 800, n_test: int = 200, seed: int = 0) -> dict[str, list[TaskExample]]:
    """The fine-tuning task of notebook 06: answer who/what/where/how many about a sentence.

    The answer is always a span of the sentence, so a model that learned the *format* answers
    held-out sentences correctly: exact match on the test set is the task metric. Train and test
    sentences are disjoint (no (name, number, noun, place) combination appears in both), and the
    "Question: / Answer:" format never occurs in :func:`course_corpus`.
    """
    n_train = check_int(n_train, "n_train", 1)
    n_test = check_int(n_test, "n_test", 1)
    rng = random.Random(seed)
    seen: set[tuple] = set()
    examples: list[TaskExample] = []
    kinds = sorted(QUESTIONS)
    while len(examples) < n_train + n_test:
        key = (rng.choice(NAMES), rng.randrange(1000), rng.choice(NOUNS), rng.choice(PLACES))
        if key in seen:
            continue
        seen.add(key)
        examples.append(counting_qa_example(*key, question=kinds[len(examples) % len(kinds)]))
    rng.shuffle(examples)
    return {"train": examples[:n_train], "test": examples[n_train:]}


_NUMBER_WORDS = None


def answer_has_right_type(answer: str, example: TaskExample) -> bool:
    """True if ``answer`` is the right *kind* of answer for the question, right or wrong:
    a name for "who", a counted noun for "what", a place for "where", number words for "how many".

    A base model that has not learned the format scores ~0 here; a model that learned the format
    but not yet which span to copy scores high here and lower on exact match.
    """
    global _NUMBER_WORDS
    a = answer.strip()
    if example.kind == "who":
        return a in NAMES
    if example.kind == "what":
        return a in NOUNS
    if example.kind == "where":
        return a in PLACES
    if example.kind == "how many":
        if _NUMBER_WORDS is None:
            _NUMBER_WORDS = {number_to_words(n) for n in range(1000)}
        return a in _NUMBER_WORDS
    raise ValueError(f"example.kind must be one of {sorted(QUESTIONS)}, got {example.kind!r}")
