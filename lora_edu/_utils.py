"""Small utilities shared by the teaching modules (private: notebooks use the public modules).

* :func:`progress` - the one progress bar of the course (plain text, so a committed notebook stores
  the finished bar, never a frozen "0%" widget);
* :func:`quiet_libraries` - silence, once and at their source, library messages that are known to
  be harmless here, so they neither alarm a learner nor clutter committed notebooks.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

# (logger name, text that identifies the harmless message, why it is harmless)
HARMLESS_MESSAGES: tuple[tuple[str, str, str], ...] = (
    ("bitsandbytes.backends.cpu.ops", "kernels-community",
     "bitsandbytes looks for an optional faster CPU kernel on the hub; its own CPU code is used instead"),
    ("transformers.modeling_utils", "loss_type=",
     "GPT-2's config carries no loss_type; transformers picks the causal-LM loss, which is what we use"),
)


class _DropMatching(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


_quieted = False


def quiet_libraries() -> None:
    """Drop the messages in :data:`HARMLESS_MESSAGES` and transformers' weight-loading bars.

    Idempotent. Only exactly these messages are dropped: every other warning still shows.
    """
    global _quieted
    if _quieted:
        return
    for name, text, _why in HARMLESS_MESSAGES:
        logging.getLogger(name).addFilter(_DropMatching(text))
    if "transformers" in sys.modules or _importable("transformers"):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights: 0%| 0/52" would be stored in notebooks
    _quieted = True


def _importable(name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(name) is not None


def progress(iterable: Iterable[T], desc: str, total: int | None = None, disable: bool = False) -> Iterator[T]:
    """A plain-text progress bar on stdout (tqdm), for loops that take more than a second.

    Text rather than a widget: a notebook saved after the loop then shows the finished bar
    ("100%| 40/40"), where a widget bar would be stored as its first frame ("0%| 0/40").
    """
    from tqdm.std import tqdm

    return iter(tqdm(iterable, desc=desc, total=total, disable=disable, file=sys.stdout, ncols=90,
                     mininterval=0.5, delay=0.5, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}]"))
