"""Bucket arithmetic of the count buckets and the retention policy (no AWS)."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from maip_events.store import counts
from maip_events.store.counts import DAY_MS, HOUR_MS, MINUTE_MS, RAW, segments
from maip_events.store.tenants import Retention

BASE = 1_795_000_000_000  # a fixed moment in 2026
LENGTH = {"m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS}


@settings(max_examples=300)
@given(low=st.integers(0, 40 * DAY_MS), size=st.integers(0, 40 * DAY_MS), open_ended=st.booleans())
def test_segments_tile_any_window_with_aligned_buckets_and_few_pieces(low, size, open_ended):
    # Given any window [low, high), possibly open-ended
    low += BASE
    high = None if open_ended else low + size
    # When it is split
    pieces = segments(low, high)
    # Then the pieces are contiguous, cover exactly the window, and every non-raw piece is whole buckets
    if high is not None and size == 0:
        assert pieces == []
        return
    assert pieces[0][1] == low and pieces[-1][2] == high
    for (_, _, end), (_, start, _) in zip(pieces, pieces[1:]):
        assert end == start
    for code, start, end in pieces:
        if code != RAW:
            assert start % LENGTH[code] == 0 and (end is None or end % LENGTH[code] == 0)
        else:
            assert end - start < 2 * MINUTE_MS  # edges: only partial minutes are counted from events
    # And at most one run per granularity and side: raw, m, h, d, h, m, raw
    assert len(pieces) <= 7


def test_labels_sort_like_time_and_round_trip():
    # Given bucket labels of consecutive buckets at every granularity
    for code, length, _ in counts.GRANULARITIES:
        labels = [counts.label(code, BASE + i * length) for i in range(-3, 4)]
        # Then lexical order is time order, and a label maps back to its bucket start
        assert labels == sorted(labels)
        assert counts.label_start(code, labels[3]) == (BASE // length) * length


def test_dimensions_map_each_filter_to_one_counter_the_event_increments():
    # Given an event with an agent; Then every filter that matches it names one of its dimensions
    dims = counts.dimensions("agent.registered", "a#1")
    for agent in (None, "a#1"):
        for event_type in (None, "agent.registered"):
            assert counts.dimension(event_type, agent) in dims
    # And an event without an agent only feeds the tenant and type dimensions
    assert counts.dimensions("agent.registered", None) == ["all", "type:agent.registered"]


def test_increments_aggregate_a_batch_per_bucket():
    # Given three events of one agent in the same minute
    rows = [("t", "agent.registered", "a", BASE + i, 99) for i in range(3)]
    # When increments are computed; Then each of the 12 buckets is incremented by 3 in one update
    found = counts.increments(rows)
    assert len(found) == 12 and all(n == 3 and exp == 99 for n, exp in found.values())


def test_retention_expiry_is_whole_days_and_visibility_follows_the_current_setting():
    day = BASE - BASE % DAY_MS
    policy = Retention()
    # Given the default policy: an event's TTL is the end of its UTC day + 365 days
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
