"""Is the Hugging Face hub reachable? Decide once, before transformers is imported.

Without this, ``from_pretrained("gpt2")`` on a machine with no internet stalls for ~46 s of
retries before failing. A TCP connect with a short timeout answers in milliseconds; when it fails
we set ``HF_HUB_OFFLINE=1`` so that transformers fails (or falls back) at once, and we say so.
"""

from __future__ import annotations

import os
import socket

HUB_HOST = "huggingface.co"
HUB_PORT = 443


def hub_reachable(host: str = HUB_HOST, port: int = HUB_PORT, timeout: float = 1.5) -> bool:
    """True if a TCP connection to ``host:port`` opens within ``timeout`` seconds.

    ``HF_HUB_OFFLINE=1`` already set by the user counts as "not reachable" (they asked for it).
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_offline_if_unreachable(timeout: float = 1.5) -> bool:
    """Probe the hub; if unreachable set ``HF_HUB_OFFLINE=1``. Returns True when online.

    Must run before ``transformers``/``huggingface_hub`` are imported: they read the variable
    once, at import time.
    """
    online = hub_reachable(timeout=timeout)
    if not online:
        os.environ["HF_HUB_OFFLINE"] = "1"
    return online
