"""Can the Hugging Face hub be used right now? Asked the way ``from_pretrained`` itself would ask.

:func:`probe_hub` sends the request that ``from_pretrained(repo)`` sends first - a ``HEAD`` of
``{HF_ENDPOINT}/{repo}/resolve/main/config.json`` - through huggingface_hub's own HTTP client, so it
honours everything that client honours: ``HF_ENDPOINT`` (a mirror), ``HTTPS_PROXY``/``HTTP_PROXY``/
``ALL_PROXY``/``NO_PROXY``, a saved token, and ``HF_HUB_OFFLINE``. It gives up after ``timeout``
seconds in total (DNS included: the request runs in a helper thread), so a machine with no network
learns that in seconds, not after the ~46 s of retries ``from_pretrained`` spends before failing.

When the hub cannot be used, :func:`set_offline` turns on huggingface_hub's offline mode. The
libraries read ``HF_HUB_OFFLINE`` from the environment once, when they are imported; transformers and
peft then consult ``huggingface_hub.constants.HF_HUB_OFFLINE`` (and peft the environment) at call
time, so setting both makes the switch effective whether or not transformers is already imported.

Nothing here imports huggingface_hub at module level: ``import lora_edu.hub`` stays cheap and leaves
the environment variables for the libraries to read later.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

#: The public hub's host (for messages); the endpoint really used is :func:`hub_endpoint`.
HUB_HOST = "huggingface.co"
DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_TIMEOUT = 3.0
_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's own spelling of "true"
# HTTP answers that mean "the hub cannot serve us now" (rather than "it answered: no such repo").
_UNAVAILABLE_STATUS = {407, 408, 429}


@dataclass(frozen=True)
class HubStatus:
    """The answer of :func:`probe_hub`.

    ``online``: the hub (or the mirror/proxy in front of it) answered the request, so
    ``from_pretrained`` may use the network. ``url``: what was asked. ``answer``: what came back,
    in words ("HTTP 200", "HTTP 503", "no answer within 3 s", "HF_HUB_OFFLINE=1 is set", ...).
    """

    online: bool
    url: str
    answer: str

    def __str__(self) -> str:
        return f"{'online' if self.online else 'unavailable'}: HEAD {self.url} -> {self.answer}"


def offline_requested() -> bool:
    """True when offline mode is on: ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) set to a true
    value, or huggingface_hub's own flag already switched on in this process."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in _TRUE:
            return True
    constants = sys.modules.get("huggingface_hub.constants")
    return bool(constants is not None and constants.HF_HUB_OFFLINE)


def set_offline() -> None:
    """Turn on offline mode for this process and the processes it starts (kernels, torchrun).

    Sets ``HF_HUB_OFFLINE=1`` for libraries not imported yet and huggingface_hub's flag for those
    that are: after this no library call waits on the network.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True


@contextlib.contextmanager
def offline_mode() -> Iterator[None]:
    """Offline mode inside the ``with`` block only (used to read the cache with no network at all)."""
    from huggingface_hub import constants

    old_env, old_flag = os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE
    set_offline()
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old_flag
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


def hub_endpoint() -> str:
    """The hub address huggingface_hub uses: ``HF_ENDPOINT`` as read when it was imported, else
    https://huggingface.co."""
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        return constants.ENDPOINT
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def hub_cache() -> str:
    """The folder of the Hugging Face cache (``HF_HUB_CACHE``, ``HF_HOME``/hub, ~/.cache/huggingface/hub)."""
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def probe_hub(repo_id: str = "gpt2", timeout: float = DEFAULT_TIMEOUT, endpoint: str | None = None) -> HubStatus:
    """Ask the hub for ``repo_id``'s ``config.json`` (HEAD, no download) and say whether it answered.

    Args:
        repo_id: the repository ``from_pretrained`` will load.
        timeout: seconds in total before giving up (name resolution, connection, redirects, answer).
        endpoint: the hub address; default :func:`hub_endpoint` (``HF_ENDPOINT``), as huggingface_hub.

    Returns:
        A :class:`HubStatus`. ``online`` is True when an answer came back, including "no such
        repository" (then ``from_pretrained`` raises its own clear error); False with
        ``HF_HUB_OFFLINE`` set (nothing is sent), on a network or proxy error, a timeout, or an
        answer that means "not now" (5xx, 407, 408, 429).
    """
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    endpoint = (endpoint or hub_endpoint()).rstrip("/")
    url = f"{endpoint}/{repo_id}/resolve/main/config.json"  # huggingface_hub's HUGGINGFACE_CO_URL_TEMPLATE
    if offline_requested():
        return HubStatus(False, url, "not sent: HF_HUB_OFFLINE=1 is set")

    from huggingface_hub import get_hf_file_metadata  # imported here, not in the thread: not on the clock

    result: list[HubStatus] = []

    def ask() -> None:
        result.append(_head(get_hf_file_metadata, url, endpoint, timeout))

    worker = threading.Thread(target=ask, name="lora_edu hub probe", daemon=True)
    worker.start()
    worker.join(timeout)
    if not result:  # still waiting (a hung server, a slow DNS): the thread ends by itself later
        return HubStatus(False, url, f"no answer within {timeout:g} s")
    return result[0]


def _head(get_hf_file_metadata, url: str, endpoint: str, timeout: float) -> HubStatus:
    try:
        get_hf_file_metadata(url, timeout=timeout, endpoint=endpoint)
    except Exception as exc:  # noqa: BLE001 - every failure is an answer to report, not a crash
        # Classified by what the exception carries, not by its class: huggingface_hub's HTTP library
        # (requests, httpx, httpx2) changes between the versions the course supports.
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(status, int):
            return HubStatus(status < 500 and status not in _UNAVAILABLE_STATUS, url, f"HTTP {status}")
        names = [cls.__name__ for cls in type(exc).__mro__]
        if "OfflineModeIsEnabled" in names:
            return HubStatus(False, url, "not sent: huggingface_hub's offline mode is on")
        if any("Timeout" in name for name in names):
            return HubStatus(False, url, f"no answer within {timeout:g} s")
        return HubStatus(False, url, f"{type(exc).__name__}: {exc}")  # DNS, refused, proxy refused, TLS ...
    return HubStatus(True, url, "answered: config.json is there")


def hub_reachable(timeout: float = DEFAULT_TIMEOUT) -> bool:
    """True if :func:`probe_hub` says the hub can be used for gpt2 now."""
    return probe_hub(timeout=timeout).online


def ensure_offline_if_unreachable(timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Probe the hub; if it cannot be used, :func:`set_offline`. Returns True when online."""
    online = hub_reachable(timeout=timeout)
    if not online:
        set_offline()
    return online
