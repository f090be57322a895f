"""Text the course writes itself: a pretraining corpus for the offline GPT-2 and the fine-tuning task.

Nothing here is downloaded. Sentences come from templates filled by a seeded random generator,
so the same seed always gives the same text.

* :func:`course_corpus` - plain English about counting things, about what *kind* of thing each
  thing is ("Pears are a kind of fruit.", for the 192 nouns of :data:`CATEGORIES`, 24 in each of 8
  kinds) and about the course's linear algebra. Many paragraphs tell a short counting story and
  then say what kind of thing was counted ("Ada counted forty-seven pears in the garden. They were
  a kind of fruit."). The offline fallback GPT-2 is pretrained on it, so it *knows* the kind of
  every noun and can say it after a story, in these words.
* :func:`category_task` - the fine-tuning task of notebook 06: read one counting story and answer
  "What kind of thing was counted?" with one of the 8 label words, in the format
  "Question: ...\\nAnswer: fruit". That format never occurs in the pretraining corpus, so the base
  model does not answer in it. The held-out questions are about nouns that no fine-tuning example
  contains (:func:`is_held_out`): the fine-tune cannot learn their kinds from its examples, only
  reach the kinds the model learned in pretraining.
"""

from __future__ import annotations

import random
import re
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


def _word_table(text: str) -> dict[str, tuple[str, ...]]:
    """``kind: word word ...`` entries, each may wrap over lines, as ``{kind: (word, ...)}`` in their order."""
    parts = re.split(r"(\w+):", text)
    return {kind: tuple(words.split()) for kind, words in zip(parts[1::2], parts[2::2], strict=True)}


#: The 8 kinds (each one GPT-2 token with a leading space, the task's label words) and 24 nouns of
#: each, in the plural, unambiguous (no "bats", "files" or "dates").
CATEGORIES: dict[str, tuple[str, ...]] = _word_table("""
fruit: apples pears plums cherries grapes lemons limes oranges peaches mangoes bananas apricots figs melons kiwis
    strawberries raspberries blueberries coconuts papayas pineapples tangerines nectarines pomegranates
vegetable: carrots onions potatoes peas beans leeks cabbages turnips radishes beets parsnips cucumbers lettuces
    courgettes zucchinis pumpkins artichokes aubergines eggplants cauliflowers shallots yams sprouts gherkins
animal: dogs cats horses cows goats pigs lions tigers bears wolves foxes rabbits mice camels zebras monkeys
    elephants giraffes donkeys otters badgers squirrels beavers hedgehogs
tool: hammers saws drills wrenches pliers chisels screwdrivers shovels rakes axes clamps spanners trowels hoes
    mallets crowbars spades scythes pickaxes sickles hatchets awls sanders tongs
furniture: chairs tables sofas beds desks stools benches shelves cabinets dressers wardrobes couches cupboards
    bookcases armchairs ottomans cots cribs sideboards recliners footstools futons nightstands hammocks
vehicle: cars buses trucks vans bicycles trains boats ships planes taxis tractors scooters wagons canoes yachts
    jeeps trams motorbikes helicopters lorries ferries rafts sledges limousines
instrument: pianos violins guitars drums flutes trumpets harps cellos clarinets oboes tubas banjos trombones
    saxophones harmonicas accordions ukuleles mandolins bassoons xylophones tambourines cymbals bagpipes sitars
clothing: shirts coats hats socks shoes boots gloves scarves jackets dresses skirts trousers sweaters blouses vests
    caps sandals mittens hoodies cardigans jeans tunics gowns slippers
""")
#: The task's answers, in a fixed order.
LABELS: tuple[str, ...] = tuple(CATEGORIES)
#: The kind of every noun.
KIND: dict[str, str] = {noun: kind for kind, nouns in CATEGORIES.items() for noun in nouns}
NOUNS: tuple[str, ...] = tuple(KIND)
PLACES = ["room", "library", "garden", "market", "shop", "yard", "class", "barn", "village", "lecture hall"]
NAMES = ["Ada", "Alan", "Grace", "Emmy", "Carl", "Sofia", "Kurt", "Hedy", "John", "Mary"]


def is_held_out(noun: str) -> bool:
    """True for the 64 nouns (every third of each kind: 8 per kind) that no fine-tuning example
    contains; notebook 06's held-out questions are about them. The pretraining saw every noun."""
    if noun not in KIND:
        raise ValueError(f"noun must be one of the {len(KIND)} nouns of CATEGORIES, got {noun!r}")
    return CATEGORIES[KIND[noun]].index(noun) % 3 == 2


FACTS = [
    "The rank of a matrix is the number of independent columns.",
    "The rank of a product is at most the smaller of the two ranks.",
    "A rank one matrix is an outer product of two vectors.",
    "The singular value decomposition writes a matrix as a rotation, a scaling and another rotation.",
    "Keeping the largest singular values gives the best low rank approximation.",
    "A linear autoencoder learns the same subspace as principal component analysis.",
    "LoRA keeps the pretrained weight frozen and learns a low rank update.",
    "The update is the product of two thin matrices, B and A.",
    "B starts at zero, so the model starts exactly where the pretrained model was.",
    "The scaling factor is alpha divided by the rank.",
    "After training, the update can be merged into the weight.",
    "Quantization stores each weight with fewer bits.",
    "Fine tuning changes the weights of a pretrained model for a new task.",
    "The learning rate controls the size of each step.",
    "The attention layer projects the input to queries, keys and values.",
    "The tokenizer splits text into tokens.",
]
#: What kind of thing a noun is, said in several ways (the knowledge the task needs).
KIND_FACTS = [
    "{Noun} are a kind of {kind}.",
    "{Noun}, {noun2} and {noun3} are all kinds of {kind}.",
    "{name} likes {noun} more than any other kind of {kind}.",
    "There are many kinds of {kind}, for example {noun} and {noun2}.",
]
#: Single sentences about numbers, places and words the task's format uses (never in that format).
TEMPLATES = [
    "There are {w} {noun} in the {place}.",
    "The {place} has {w} {noun} and {w2} {noun2}.",
    "{name} has {w} {noun}, and {name2} has {w2}.",
    "In the {place} there were {w} {noun} yesterday.",
    "The answer is {w}.",
    "Question {w} of the quiz is about {noun}.",
    "Answer {w} on the sheet was about a kind of {kind}.",
    "{name} asked a question about the {place}. What is in the {place}?",
    "The first thing {name} counted was {w} {noun}.",
    "How many {noun} are in the {place}? There are {w}.",
    "Note: {name} counted the {noun} twice.",
]
#: The counting stories: who counted how many of what, and where. Four word orders, so that the
#: noun is not always in the same place.
STORIES = [
    "{name} counted {w} {noun} in the {place}.",
    "In the {place}, {name} counted {w} {noun}.",
    "There were {w} {noun} in the {place}, and {name} counted them.",
    "{name} went to the {place} and counted {w} {noun}.",
]
#: What pretraining says after a story about the kind of thing counted: the base model's ability,
#: in its own words (:data:`PROBE` is the start of the first one).
KIND_AFTER_STORY = [
    "They were a kind of {kind}.",
    "So {name} counted a kind of {kind}.",
    "The {noun} were a kind of {kind}.",
]
PROBE = "They were a kind of"
#: Other things said after a story (so that the kind is not always what follows).
OTHER_AFTER_STORY = [
    "The number was {w}.",
    "It was {name} who counted.",
    "The counting happened in the {place}.",
]


def _fill(rng: random.Random, noun: str | None = None) -> dict[str, str]:
    noun = noun or rng.choice(NOUNS)
    kind = KIND[noun]
    n2, n3 = rng.sample([n for n in CATEGORIES[kind] if n != noun], 2)
    a, b = rng.randrange(0, 1000), rng.randrange(0, 1000)
    return dict(w=number_to_words(a), w2=number_to_words(b), noun=noun, Noun=noun.capitalize(), noun2=n2,
                noun3=n3, kind=kind, place=rng.choice(PLACES), name=rng.choice(NAMES), name2=rng.choice(NAMES))


def _paragraph(rng: random.Random) -> str:
    """One unit of the corpus: a fact, a sentence, a fact about kinds, or a story and what follows it."""
    u = rng.random()
    if u < 0.04:
        return rng.choice(FACTS)
    f = _fill(rng)
    if u < 0.14:
        return rng.choice(TEMPLATES).format(**f)
    if u < 0.40:
        return rng.choice(KIND_FACTS).format(**f)
    story = rng.choice(STORIES).format(**f)
    follow = []
    if rng.random() < 0.3:
        follow.append(rng.choice(OTHER_AFTER_STORY).format(**f))
    if rng.random() < 0.75:
        follow.append(rng.choice(KIND_AFTER_STORY).format(**f))
    rng.shuffle(follow)
    return " ".join([story, *follow])


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


@dataclass(frozen=True)
class TaskExample:
    """One example: the model sees ``prompt`` and must continue with ``target`` (" fruit").

    ``kind`` is the right label ("fruit", ...), ``noun`` the thing counted and ``story`` the index
    of the story's word order in :data:`STORIES`.
    """

    prompt: str
    target: str
    kind: str
    noun: str
    story: int = 0

    @property
    def text(self) -> str:
        return self.prompt + self.target

    @property
    def answer(self) -> str:
        return self.target.strip()


QUESTION = "What kind of thing was counted?"


def category_example(name: str, number: int, noun: str, place: str, story: int = 0) -> TaskExample:
    """One question about one counting story, in the task's format.

    >>> category_example("Ada", 47, "pears", "garden").text
    'Ada counted forty-seven pears in the garden.\\nQuestion: What kind of thing was counted?\\nAnswer: fruit'
    """
    if noun not in KIND:
        raise ValueError(f"noun must be one of the {len(KIND)} nouns of CATEGORIES, got {noun!r}")
    story = check_int(story, "story", 0, len(STORIES) - 1)
    text = STORIES[story].format(name=name, w=number_to_words(number), noun=noun, place=place)
    return TaskExample(f"{text}\nQuestion: {QUESTION}\nAnswer:", " " + KIND[noun], KIND[noun], noun, story)


def _stories(n: int, held_out: bool, rng: random.Random) -> list[tuple]:
    """``n`` (name, number, noun, place, story) tuples, kinds and word orders in turn, nouns from the
    held-out or the fine-tuning side of :func:`is_held_out`."""
    pools = {kind: [x for x in nouns if is_held_out(x) == held_out] for kind, nouns in CATEGORIES.items()}
    return [(rng.choice(NAMES), rng.randrange(1000), rng.choice(pools[LABELS[i % len(LABELS)]]), rng.choice(PLACES),
             (i // len(LABELS)) % len(STORIES)) for i in range(n)]


def category_task(n_train: int = 800, n_test: int = 200, seed: int = 0) -> dict[str, list[TaskExample]]:
    """Notebook 06's task: "What kind of thing was counted?" about a counting story.

    ``train`` uses the 128 fine-tuning nouns, ``test`` the 64 held-out ones (:func:`is_held_out`), so
    no held-out noun occurs in any training example. Both splits cycle through the 8 kinds (200 test
    examples: 25 per kind) and the 4 word orders; each split has its own random generator, so the
    training set is the same whatever ``n_test`` is.
    """
    n_train = check_int(n_train, "n_train", 1)
    n_test = check_int(n_test, "n_test", 1)
    train = [category_example(*s) for s in _stories(n_train, False, random.Random(seed))]
    test = [category_example(*s) for s in _stories(n_test, True, random.Random(seed + 1))]
    random.Random(seed + 2).shuffle(train)
    random.Random(seed + 3).shuffle(test)
    return {"train": train, "test": test}


def knowledge_probe(n: int = 200, seed: int = 54321) -> list[TaskExample]:
    """Stories about held-out nouns, each followed by :data:`PROBE` ("They were a kind of").

    The base-model ability the task needs, asked in the words of the pretraining text instead of the
    task's new format: a model that knows the kinds continues with the right label word.
    """
    n = check_int(n, "n", 1)
    out = []
    for name, number, noun, place, story in _stories(n, True, random.Random(seed)):
        text = STORIES[story].format(name=name, w=number_to_words(number), noun=noun, place=place)
        out.append(TaskExample(f"{text} {PROBE}", " " + KIND[noun], KIND[noun], noun, story))
    return out


def chance_level() -> float:
    """Exact match of guessing one of the 8 labels uniformly at random: 1/8."""
    return 1.0 / len(LABELS)
