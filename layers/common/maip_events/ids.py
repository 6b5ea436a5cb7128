"""Identifiers and timestamps: `maip-evt:<ULID>` ids whose order is creation order, ISO 8601 UTC times."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ulid import ULID

EVENT_PREFIX = "maip-evt:"


def new_ulid(now: datetime | None = None) -> ULID:
    return ULID.from_datetime(now) if now else ULID()


def new_id(prefix: str, now: datetime | None = None) -> str:
    return f"{prefix}{new_ulid(now)}"


def new_event_id(now: datetime | None = None) -> tuple[str, str]:
    """A fresh event id and its `created_at`, both from one ULID so they can never disagree."""
    ulid = new_ulid(now)
    return f"{EVENT_PREFIX}{ulid}", format_time(ulid.datetime)


def format_time(moment: datetime) -> str:
    """UTC ISO 8601 with milliseconds and `Z`, e.g. 2026-11-23T07:36:56.123Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def parse_time(text: str) -> datetime:
    """ISO 8601 date or date-time; no offset means UTC. Raises ValueError when malformed."""
    if not text or len(text) > 64:
        raise ValueError("not an ISO 8601 date-time")
    moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-23:59 is past datetime.max in UTC
        raise ValueError("date-time out of range") from None


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


ULID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base 32


def ulid_time(ms: int) -> str:
    """The 10 base-32 characters a ULID of millisecond `ms` starts with."""
    a = ULID_ALPHABET
    return (a[ms >> 45 & 31] + a[ms >> 40 & 31] + a[ms >> 35 & 31] + a[ms >> 30 & 31] + a[ms >> 25 & 31]
            + a[ms >> 20 & 31] + a[ms >> 15 & 31] + a[ms >> 10 & 31] + a[ms >> 5 & 31] + a[ms & 31])


def _event_id_at(millis: int, fill: str) -> str:
    """The id of `millis` whose 80 random bits are all `fill` ('0': all zero, 'Z': all one)."""
    return EVENT_PREFIX + ulid_time(min(max(millis, 0), 2**48 - 1)) + fill * 16


def lowest_event_id_ms(millis: int) -> str:
    """The smallest event id created in epoch millisecond `millis` or later."""
    return _event_id_at(millis, "0")


def highest_event_id_ms(millis: int) -> str:
    """The largest event id created in epoch millisecond `millis` or earlier."""
    return _event_id_at(millis, "Z")


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def lowest_event_id(moment: datetime) -> str:
    """The smallest event id created at or after `moment` (ids have millisecond precision: round up)."""
    return lowest_event_id_ms(-(-_micros(moment) // 1000))


def highest_event_id(moment: datetime) -> str:
    """The largest event id created at or before `moment` (round down to the millisecond)."""
    return highest_event_id_ms(_micros(moment) // 1000)
