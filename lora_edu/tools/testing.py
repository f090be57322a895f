"""The test run's model pin: ``make test`` never probes or contacts the Hugging Face hub.

:func:`pin_test_environment` sets, in the test process and before any notebook kernel starts (so
every nbval kernel inherits it):

* ``LORA_EDU_MODEL=fallback``: the GPT-2 notebooks load the shipped offline model, whose outputs the
  committed notebooks check - on a connected laptop exactly as in offline CI;
* ``HF_HUB_OFFLINE=1``: no library call waits on the network;
* ``HF_HUB_CACHE`` = an empty folder: a gpt2 the developer downloaded earlier is not picked up by a
  test that names "gpt2" explicitly (the result must not depend on what this machine has cached).

``tests/conftest.py`` calls it. This module is also a pytest plugin (``-p lora_edu.tools.testing`` in
pyproject's ``addopts``), so that running one notebook alone (``pytest notebooks/06_...ipynb``, which
does not load ``tests/conftest.py``) is pinned too.

To run the notebooks against real gpt2, use ``make execute`` or ``make lab`` (see the README), not
the tests: the checked outputs are the offline model's.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

#: An always-empty Hugging Face cache for test runs (offline mode never writes to it).
EMPTY_HF_CACHE = Path(tempfile.gettempdir()) / "lora_edu-tests-empty-hf-cache"


def pinned_environment() -> dict[str, str]:
    """The variables every test run (and every kernel it starts) gets."""
    return {"LORA_EDU_MODEL": "fallback", "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(EMPTY_HF_CACHE)}


def pin_test_environment() -> None:
    """Set :func:`pinned_environment` in ``os.environ`` (over the caller's values); if huggingface_hub is
    already imported, switch its offline flag and cache folder too. Idempotent."""
    from lora_edu import hub

    EMPTY_HF_CACHE.mkdir(parents=True, exist_ok=True)
    os.environ.update(pinned_environment())
    hub.set_offline()
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_CACHE = str(EMPTY_HF_CACHE)


def pytest_configure(config) -> None:  # pytest plugin hook: runs before collection and before any kernel
    pin_test_environment()
