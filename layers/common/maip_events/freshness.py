"""How long a per-process cache entry (API keys, tenant settings) may be served.

Deployed: for its TTL (MAIP_API_KEY_CACHE_TTL, MAIP_TENANT_SETTINGS_TTL), which bounds how late a revocation or a
settings change is seen. The local stack promises "at once" (TTL 0) yet caches too: its worker processes install
a change counter of the tables holding keys and tenant settings (bumped by the embedded DynamoDB after each write
to them), and an entry is served only while that counter has not moved since before the item was read.
"""
from __future__ import annotations

import math
import time
from typing import Callable

_counter: Callable[[], int] | None = None


def install(counter: Callable[[], int] | None) -> None:
    """Local stack workers only: `counter()` changes after every write to the cached tables."""
    global _counter
    _counter = counter


def stamp() -> int | None:
    """Take before reading the item to cache: a write that lands after the read moves the counter past it."""
    return _counter() if _counter is not None else None


def expiry(ttl: float) -> float | None:
    """Monotonic deadline of a new entry, or None when nothing may be cached."""
    if ttl > 0:
        return time.monotonic() + ttl
    return math.inf if _counter is not None else None


def fresh(deadline: float, stamped: int | None) -> bool:
    if _counter is not None and _counter() != stamped:
        return False
    return deadline > time.monotonic()
