"""When to try again: the configured schedule (MAIP_WEBHOOK_RETRY_SCHEDULE) with jitter, never sooner
than a receiver's Retry-After asks. After the last entry the delivery is dead-lettered."""
from __future__ import annotations

import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from maip_events.settings import get_settings

JITTER = 0.2  # +-20 %: spreads retries of many deliveries that failed together
MAX_RETRY_AFTER = 86400  # a Retry-After further out than a day is treated as a day


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return min(max((moment - now).total_seconds(), 0.0), MAX_RETRY_AFTER)


def next_delay(attempt: int, retry_after: str | None, now: datetime) -> float | None:
    """Seconds to wait after failed attempt number `attempt` (1-based), or None when retries are exhausted."""
    schedule = get_settings().webhook_retry_schedule
    if attempt > len(schedule):
        return None
    delay = schedule[attempt - 1] * random.uniform(1 - JITTER, 1 + JITTER)
    asked = parse_retry_after(retry_after, now)
    return max(delay, asked) if asked is not None else delay
