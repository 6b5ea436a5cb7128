"""Replay limits per tenant: a bounded window, a bounded number of events per call, one running replay per
webhook, and a per-tenant budget of replayed events (a token bucket in QuotaTable, MAIP_REPLAY_BUDGET).

A call reserves up to MAX_EVENTS_PER_CALL events of the budget before it reads anything, replays at most that
many (the response says `truncated` when the window held more), and gives back what it did not use."""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator

from maip_events.errors import InvalidRequest, RateLimited
from maip_events.events import event_filter
from maip_events.ids import format_time, utc_now
from maip_events.quota import parse_quota
from maip_events.settings import get_settings
from maip_events.store.quota import QuotaStore

MAX_EVENTS_PER_CALL = 1000
MAX_WINDOW = timedelta(days=7)
HOLD_SECONDS = 60.0  # longer than WebhooksFunction's 29 s timeout: a crashed call frees its slot within a minute


@dataclass
class Allowance:
    max_events: int  # what this call may enqueue
    used: int = 0  # set by the caller: what it enqueued


def budget() -> tuple[float, float]:
    """(events per second, burst) from MAIP_REPLAY_BUDGET = "events per hour,burst"."""
    per_hour, burst = parse_quota(get_settings().replay_budget)
    return per_hour / 3600.0, burst


def check_window(time_from: str, time_to: str | None) -> None:
    """400 when the window is malformed or longer than MAX_WINDOW."""
    flt = event_filter("-", None, None, time_from, time_to or format_time(utc_now()))
    if flt.time_from is not None and flt.time_to is not None and flt.time_to - flt.time_from > MAX_WINDOW:
        raise InvalidRequest(f"A replay window is at most {MAX_WINDOW.days} days; replay a longer period in parts.",
                             details=[{"field": "from", "issue": f"window longer than {MAX_WINDOW.days} days"}])


@contextmanager
def replay_allowance(tenant_id: str, webhook_id: str, time_from: str, time_to: str | None,
                     store: QuotaStore | None = None) -> Iterator[Allowance]:
    """The events one replay call may send; 400 for a too-long window, 429 `rate_limited` (Retry-After) while
    another replay of the webhook runs or the tenant's replay budget is spent."""
    check_window(time_from, time_to)
    store = store or QuotaStore()
    rate, burst = budget()
    now = time.time()
    slot, until = f"replay#{tenant_id}#{webhook_id}", now + HOLD_SECONDS
    wait = store.hold(slot, until, now)
    if wait:
        raise _limited("A replay of this webhook is already running", wait)
    try:
        grant = store.take(f"replays#{tenant_id}", min(MAX_EVENTS_PER_CALL, math.floor(burst)), rate, burst, now)
        if not grant.tokens:
            raise _limited("The tenant's replay budget is spent", grant.retry_after)
        allowance = Allowance(max_events=grant.tokens)
        try:
            yield allowance
        finally:
            store.give_back(f"replays#{tenant_id}", grant.tokens - allowance.used, rate, time.time())
    finally:
        store.release(slot, until)


def _limited(reason: str, wait: float) -> RateLimited:
    retry_after = str(max(1, math.ceil(wait)))
    return RateLimited(f"{reason}; retry after {retry_after} s.", headers={"Retry-After": retry_after})
