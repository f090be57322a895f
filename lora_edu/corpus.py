"""Text the course writes itself: a pretraining corpus for the offline GPT-2 and the fine-tuning task.

Nothing here is downloaded. Sentences come from templates filled by a seeded random generator,
so the same seed always gives the same text.

* :func:`course_corpus` - plain English about counting things and about the course's linear
  algebra. Many paragraphs tell a short counting *story* and then restate its facts in prose
  ("The one who counted was Ada."), and some repeat a list of names: text where the next word is
  often a word seen a few tokens earlier. A model pretrained on it learns to look back and copy,
  the ability notebook 06's task needs. The offline fallback GPT-2 is pretrained on it.
* :func:`counting_qa_task` - the fine-tuning task of notebook 06: read one counting story and answer
  "Who counted?", "What was counted?", "Where?" or "How many?" in the format
  "Question: ...\\nAnswer: ...". That format never occurs in the pretraining corpus, so the base
  model does not answer in it; held-out stories (no (name, number, noun, place) combination seen
  in training) measure whether the fine-tune learned the rule rather than the examples.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

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


@cache
def number_words() -> frozenset[str]:
    """Every answer a "How many?" question can have: the words for 0 ... 999."""
    return frozenset(number_to_words(n) for n in range(1000))


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
#: Single sentences about numbers and things (no story, nothing restated).
TEMPLATES = [
    "There are {w} {noun} in the {place}.",
    "The {place} has {w} {noun} and {w2} {noun2}.",
    "We saw {w} {noun} near the {place}.",
    "{name} wrote {d} on the board and read it aloud as {w}.",
    "The code {d} opens the {place}.",
    "Page {d} of the book is about {noun}.",
    "{name} has {w} {noun}, and {name2} has {w2}.",
    "In the {place} there were {w} {noun} yesterday.",
    "The answer is {w}.",
    "Question {d} of the quiz is about {noun}.",
    "Answer {d} on the sheet is {w}.",
    "Note: {name} counted the {noun} twice.",
]
#: The counting stories: one sentence that says who counted how many of what, and where.
#: Four word orders, so that no fixed position holds the answer.
STORIES = [
    "{name} counted {w} {noun} in the {place}.",
    "In the {place}, {name} counted {w} {noun}.",
    "There were {w} {noun} in the {place}, and {name} counted them.",
    "{name} went to the {place} and counted {w} {noun}.",
]
#: Prose that restates one fact of a story (pretraining only; the task's format is different).
RESTATEMENTS = {
    "who": ["The one who counted was {name}.", "It was {name} who counted.", "{name} did the counting."],
    "what": ["The things counted were {noun}.", "What {name} counted were {noun}.", "They were {noun}."],
    "where": ["The counting happened in the {place}.", "It was in the {place}.", "The place was the {place}.",
              "The {noun} were in the {place}."],
    "how many": ["The number was {w}.", "{name} counted {w} in all.", "In all there were {w}."],
}


#: Questions in prose, answered in prose (pretraining only).
PROSE_QUESTIONS = {
    "who": "Who counted the {noun}? It was {name}.",
    "what": "What did {name} count? {name} counted {noun}.",
    "where": "Where were the {noun}? They were in the {place}.",
    "how many": "How many {noun} were there? There were {w}.",
}
#: The start of a restatement that ends with the fact: a probe of the base model's reading.
PROBES = {
    "who": "The one who counted was",
    "what": "The things counted were",
    "where": "The counting happened in the",
    "how many": "The number was",
}


def _facts(rng: random.Random) -> dict[str, str]:
    a, b = rng.randrange(0, 1000), rng.randrange(0, 1000)
    return dict(w=number_to_words(a), w2=number_to_words(b), d=spaced_digits(a), noun=rng.choice(NOUNS),
                noun2=rng.choice(NOUNS), place=rng.choice(PLACES), name=rng.choice(NAMES), name2=rng.choice(NAMES))


def _repeated_list(rng: random.Random) -> str:
    """A list said twice: the second time every word can be copied from the first."""
    u = rng.random()
    if u < 0.4:
        names = rng.sample(NAMES, rng.randint(3, 5))
        listed = ", ".join(names[:-1]) + " and " + names[-1]
        return f"{listed} came to the {rng.choice(PLACES)}. Later {listed} went home."
    if u < 0.7:
        places = rng.sample(PLACES, rng.randint(2, 4))
        listed = ", ".join(f"the {p}" for p in places[:-1]) + f" and the {places[-1]}"
        return f"{rng.choice(NAMES)} visited {listed}. Then we visited {listed} again."
    numbers = [number_to_words(rng.randrange(1000)) for _ in range(rng.randint(2, 3))]
    listed = ", ".join(numbers[:-1]) + " and " + numbers[-1]
    return f"The codes were {listed}. Read them again: {listed}."


def _paragraph(rng: random.Random) -> str:
    """One unit of the corpus: a fact, a sentence, a list repeated, or a story with restatements."""
    u = rng.random()
    if u < 0.05:
        return rng.choice(FACTS)
    f = _facts(rng)
    if u < 0.1:
        return rng.choice(TEMPLATES).format(**f)
    if u < 0.25:
        return _repeated_list(rng)
    story = rng.choice(STORIES).format(**f)
    kinds = rng.sample(sorted(RESTATEMENTS), rng.randint(1, 4))
    if u < 0.4:
        follow = [PROSE_QUESTIONS[k].format(**f) for k in kinds]
    else:
        follow = [rng.choice(RESTATEMENTS[k]).format(**f) for k in kinds]
    return story + rng.choice([" ", "\n"]) + " ".join(follow)


def course_corpus(n_paragraphs: int = 20_000, seed: int = 0) -> list[str]:
    """``n_paragraphs`` seeded paragraphs of course text (see the module docstring)."""
    n_paragraphs = check_int(n_paragraphs, "n_paragraphs", 1)
    rng = random.Random(seed)
    return [_paragraph(rng) for _ in range(n_paragraphs)]


def held_out_text(n_paragraphs: int = 300, seed: int = 12345) -> str:
    """One fixed stretch of course text, from a seed the pretraining never uses.

    The "pretraining text" on which notebooks 05 and 06 measure perplexity (no sampling).
    """
    return "\n".join(course_corpus(n_paragraphs, seed))


def reading_probe(n: int = 200, seed: int = 54321) -> list[TaskExample]:
    """Held-out stories, each followed by the start of a restatement (:data:`PROBES`) in prose.

    A model that can read a story and copy the right word completes "The one who counted was"
    with the name: the ability notebook 06's task needs, asked in the words of the pretraining
    text rather than in the task's new format. ``kind`` and ``story`` as in :class:`TaskExample`.
    """
    n = check_int(n, "n", 1)
    rng = random.Random(seed)
    kinds = sorted(QUESTIONS)
    out = []
    for i in range(n):
        f = _facts(rng)
        kind, story = kinds[i % len(kinds)], (i // len(kinds)) % len(STORIES)
        prompt = f"{STORIES[story].format(**f)} {PROBES[kind]}"
        out.append(TaskExample(prompt, " " + f[QUESTIONS[kind][1]], kind, story))
    return out


@dataclass(frozen=True)
class TaskExample:
    """One fine-tuning example: the model sees ``prompt`` and must continue with ``target``.

    ``kind`` is the question ("who", "what", "where", "how many") and ``story`` the index of the
    story's word order in :data:`STORIES`.
    """

    prompt: str
    target: str
    kind: str = ""
    story: int = 0

    @property
    def text(self) -> str:
        return self.prompt + self.target

    @property
    def answer(self) -> str:
        return self.target.strip()


QUESTIONS = {
    "who": ("Who counted?", "name"),
    "what": ("What was counted?", "noun"),
    "where": ("Where?", "place"),
    "how many": ("How many?", "w"),
}


def counting_qa_example(name: str, number: int, noun: str, place: str, question: str, story: int = 0) -> TaskExample:
    """One reading question about one counting story, in the course's answer format.

    >>> counting_qa_example("Ada", 47, "apples", "garden", "how many").text
    'Ada counted forty-seven apples in the garden.\\nQuestion: How many?\\nAnswer: forty-seven'
    """
    if question not in QUESTIONS:
        raise ValueError(f"question must be one of {sorted(QUESTIONS)}, got {question!r}")
    story = check_int(story, "story", 0, len(STORIES) - 1)
    facts = {"name": name, "noun": noun, "place": place, "w": number_to_words(number)}
    q, key = QUESTIONS[question]
    prompt = f"{STORIES[story].format(**facts)}\nQuestion: {q}\nAnswer:"
    return TaskExample(prompt, " " + facts[key], question, story)


def counting_qa_task(n_train: int = 800, n_test: int = 200, seed: int = 0) -> dict[str, list[TaskExample]]:
    """The fine-tuning task of notebook 06: answer who/what/where/how many about a story.

    The answer is always a span of the story, so a model that learned the *format* answers
    held-out stories correctly: exact match on the test set is the task metric. Train and test
    stories are disjoint (no (name, number, noun, place) combination appears in both), each split
    cycles through the questions and the word orders (200 test examples: 50 per question), the
    training set is the same whatever ``n_test`` is, and the
    "Question: / Answer:" format never occurs in :func:`course_corpus`.
    """
    n_train = check_int(n_train, "n_train", 1)
    n_test = check_int(n_test, "n_test", 1)
    rng = random.Random(seed)
    seen: set[tuple] = set()
    keys: list[tuple] = []
    while len(keys) < n_train + n_test:
        key = (rng.choice(NAMES), rng.randrange(1000), rng.choice(NOUNS), rng.choice(PLACES))
        if key not in seen:
            seen.add(key)
            keys.append(key)
    kinds = sorted(QUESTIONS)

    def split(part: list[tuple], shuffle_seed: int) -> list[TaskExample]:
        examples = [counting_qa_example(*key, question=kinds[i % len(kinds)], story=(i // len(kinds)) % len(STORIES))
                    for i, key in enumerate(part)]
        random.Random(shuffle_seed).shuffle(examples)
        return examples

    # each split is shuffled by its own generator: the training set does not depend on n_test
    return {"train": split(keys[:n_train], seed + 1), "test": split(keys[n_train:], seed + 2)}


#: The answers each question can have; guessing one of them at random is the chance level.
ANSWER_SETS = {"who": frozenset(NAMES), "what": frozenset(NOUNS), "where": frozenset(PLACES)}


def candidate_answers(kind: str) -> frozenset[str]:
    """Every answer a question of this kind can have (10 names, 16 nouns, 10 places, 1,000 numbers)."""
    if kind == "how many":
        return number_words()
    if kind not in ANSWER_SETS:
        raise ValueError(f"kind must be one of {sorted(QUESTIONS)}, got {kind!r}")
    return ANSWER_SETS[kind]


def chance_level(kind: str) -> float:
    """Exact match of guessing uniformly among :func:`candidate_answers` (e.g. 1/10 for "who")."""
    return 1.0 / len(candidate_answers(kind))


def answer_has_right_type(answer: str, example: TaskExample) -> bool:
    """True if ``answer`` is the right *kind* of answer for the question, right or wrong:
    a name for "who", a counted noun for "what", a place for "where", number words for "how many"."""
    return answer.strip() in candidate_answers(example.kind)
