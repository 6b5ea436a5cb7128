"""Bucket arithmetic of the count buckets and the retention policy (no AWS)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from maip_events.events import build_event
from maip_events.models.events import EmitEventRequest
from maip_events.store import counts
from maip_events.store.counts import LEVELS, block_ms
from maip_events.store.tenants import Retention

DAY_MS = 86_400_000
BASE = 1_795_000_000_000  # a fixed moment in 2026


def test_prefixes_are_the_event_ids_own_and_sort_like_time():
    # Given events one block apart at every level
    for level in LEVELS:
        moments = [BASE + i * block_ms(level) for i in range(-3, 4)]
        labels = [counts.prefix(ms, level) for ms in moments]
        # Then lexical order is time order, a prefix maps back to its block start, and it is the event id's own prefix
        assert labels == sorted(labels)
        assert counts.prefix_start(labels[3]) == (BASE // block_ms(level)) * block_ms(level)
        event = build_event("t", EmitEventRequest(event_type="agent.registered"), datetime.fromtimestamp(moments[3] / 1000, timezone.utc))
        assert counts.event_prefix(event.event_id, level) == labels[3]


HOSTILE = ["\U0001F600" * 256, "a#b#c", "a/b=c", "\x00\x01\n\t#", "=" * 256, "ta=agent.registered=x"]


def test_every_key_is_bounded_whatever_the_agent_id():
    # Given events whose agent ids are maximal or hostile (1,024 bytes of emoji, '#', '/', '=', controls)
    events = [build_event("t" * 128, EmitEventRequest(event_type="agent.registered", agent_id=a)) for a in HOSTILE]
    # When their bucket updates are computed
    updates = counts.bucket_updates(events)
    # Then every key is short, printable ASCII, and distinct agents never share a bucket
    for pk, sk in updates:
        assert len(pk.encode()) <= 128 + 80 and len(sk.encode()) <= 64 and (pk + sk).isascii() and (pk + sk).isprintable()
    agent_buckets = {pk for pk, _ in updates if "#a=" in pk}
    assert len(agent_buckets) == len(HOSTILE) * len(LEVELS)
    # And the raw agent id is kept as the metrics bucket's value
    assert {u.value for (pk, _), u in updates.items() if pk.endswith("#m#agent_id")} == set(HOSTILE)


def test_dimensions_map_each_filter_to_one_bucket_the_event_feeds():
    # Given an event with an agent; Then every filter that matches it names one of its dimensions
    dims = counts.dimensions("agent.registered", "a#1")
    for agent in (None, "a#1"):
        for event_type in (None, "agent.registered"):
            assert counts.dimension(event_type, agent) in dims
    # And an event without an agent only feeds the tenant and type dimensions
    assert counts.dimensions("agent.registered", None) == ["all", "t=agent.registered"]


def test_a_batch_is_coalesced_to_one_update_per_bucket():
    # Given 100 events of one agent within 30 ms
    start = datetime.fromtimestamp((BASE - BASE % 32) / 1000, timezone.utc)
    events = [build_event("t", EmitEventRequest(event_type="agent.registered", agent_id="a", severity="warn"),
                          start + timedelta(microseconds=300 * i)) for i in range(100)]
    # When their updates are computed; Then each bucket gets one ADD of 100: 7 levels x 7 dimensions (all, type,
    # agent, severity and the three pairs) + 4 metrics
    found = counts.bucket_updates(events)
    assert len(found) == len(LEVELS) * 7 + 4 and {u.n for u in found.values()} == {100}


def test_retention_expiry_is_whole_days_and_visibility_follows_the_current_setting():
    day = BASE - BASE % DAY_MS
    # The hot tier defaults to 30 days (the archive keeps a year): no setting, no env -> 30
    assert Retention().days == Retention().default == 30
    policy = Retention(days=365, default=365)
    # Given a 365-day deployment default: an event's TTL is the end of its UTC day + 365 days
    assert policy.expires_at(day + 5) == (day + DAY_MS + 365 * DAY_MS) // 1000
    # And today plus the 365 previous days are visible
    assert policy.visible_from(day + 10) == day - 365 * DAY_MS
    # When retention becomes 30 days; Then older days are hidden at once, TTLs change from tomorrow
    shorter = policy.with_days(30, day + 10)
    assert shorter.visible_from(day + 10) == day - 30 * DAY_MS
    assert shorter.expires_at(day + 5) == policy.expires_at(day + 5)
    assert shorter.expires_at(day + DAY_MS + 5) == (day + 2 * DAY_MS + 30 * DAY_MS) // 1000
    # When it goes back up to 365 days 40 days later; Then the days stored with a 30-day TTL stay gone
    longer = shorter.with_days(365, day + 40 * DAY_MS)
    assert longer.visible_from(day + 40 * DAY_MS + 10) == day + 10 * DAY_MS
