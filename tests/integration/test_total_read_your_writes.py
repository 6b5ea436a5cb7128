"""`total` counts a 201'd event at once: the buckets the stream aggregation keeps, plus the events newer than
the buckets' marks (what the aggregation has not counted yet), never one event twice."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from functions.emit.app import lambda_handler as emit
from functions.list.app import lambda_handler as list_events
from maip_events.events import build_event
from maip_events.models.events import EmitEventRequest
from maip_events.store import events as events_store
from maip_events.store.events import EventFilter, EventStore
from maip_events.store.tenants import TenantSettingsStore
from aggregation import aggregate, settle
from support import invoke, key_headers

EVENTS = "/v1/observability/events"
NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture(autouse=True)
def fast_transactions():
    from maip_events_local import moto_patches

    moto_patches.install()


def emit_some(headers, n: int, start: int = 0) -> list[dict]:
    created = []
    for i in range(start, start + n):
        body = {"event_type": ("agent.registered", "session.created")[i % 2], "agent_id": f"agent-{i % 3}",
                "severity": ("info", "warn", "error")[i % 3]}
        status, document, _ = invoke(emit, "POST", EVENTS, headers=headers, body=body)
        assert status == 201, document
        created.append(document)
    return created


QUERIES = [
    ({}, lambda e: True),
    ({"agent_id": "agent-1"}, lambda e: e["agent_id"] == "agent-1"),
    ({"event_type": "session.created"}, lambda e: e["event_type"] == "session.created"),
    ({"event_type": "session.created", "agent_id": "agent-1"}, lambda e: e["event_type"] == "session.created" and e["agent_id"] == "agent-1"),
    ({"severity": "info,warn"}, lambda e: e["severity"] in ("info", "warn")),
    ({"q": "-agent:agent-0"}, lambda e: e["agent_id"] != "agent-0"),
]


def totals_are_exact(headers, created: list[dict]) -> None:
    for query, keep in QUERIES:
        expected = [e["id"] for e in reversed(created) if keep(e)]
        for limit in (1, 2, 50):
            # When the first page and every next_token page are read
            status, page, _ = invoke(list_events, "GET", EVENTS, headers=headers, query={**query, "limit": str(limit)})
            assert status == 200, page
            served = [item["event_id"] for item in page["items"]]
            totals = [page["total"]]
            while page["next_token"]:
                status, page, _ = invoke(list_events, "GET", EVENTS, headers=headers,
                                         query={**query, "limit": str(limit), "next_token": page["next_token"]})
                served += [item["event_id"] for item in page["items"]]
                totals.append(page["total"])
            # Then every page says the exact total, and the pages hold exactly the matches
            assert served == expected, (query, limit)
            assert set(totals) == {len(expected)}, (query, limit, totals)
        # When pages are read at every offset: Then each is the exact slice, with the exact total
        for offset in range(1, len(expected) + 1):
            status, page, _ = invoke(list_events, "GET", EVENTS, headers=headers, query={**query, "limit": "2", "offset": str(offset)})
            assert [item["event_id"] for item in page["items"]] == expected[offset:offset + 2], (query, offset)
            assert page["total"] == len(expected), (query, offset)


def test_total_is_exact_right_after_201_before_and_after_the_aggregation_catches_up(aws):
    headers = key_headers("ryw", ["*"])
    # Given 7 events just emitted, none counted by the stream aggregation yet
    created = emit_some(headers, 7)
    totals_are_exact(headers, created)
    # Given the aggregation has counted them, and 5 more arrive that it has not counted
    settle()
    created += emit_some(headers, 5, start=7)
    totals_are_exact(headers, created)
    # When the aggregation catches up: nothing is counted twice
    settle()
    totals_are_exact(headers, created)
    flt = EventFilter("ryw", time_from=datetime.fromisoformat(created[3]["created_at"].replace("Z", "+00:00")))
    assert EventStore().count(flt) == len(created) - 3


def event(tenant: str, ms: int):
    return build_event(tenant, EmitEventRequest(event_type="agent.registered"), NOW + timedelta(milliseconds=ms))


def test_events_stored_late_into_a_counted_minute_are_counted_once_when_their_records_arrive(aws):
    # Given a closed minute (two minutes ago) whose three events are counted, their records arriving out of order
    store = EventStore()
    base = -120_000 - NOW.second * 1000
    first, second, third = (event("order", base + ms) for ms in (10, 20, 30))
    store.put_many([first, second, third])
    aggregate([third], first_sequence=100)
    aggregate([first, second], first_sequence=200)
    assert store.page(EventFilter("order"), limit=1).total == store.count(EventFilter("order")) == 3
    # When an emit slower than the grace stores a fourth event into that minute after it was counted
    fourth = event("order", base + 40)
    store.put_many([fourth])
    # Then its record makes the minute counted again: each event once, also when records are replayed
    aggregate([fourth], first_sequence=300)
    aggregate([first, second, third, fourth], first_sequence=100)
    assert store.page(EventFilter("order"), limit=1).total == store.count(EventFilter("order")) == 4
    assert store.page(EventFilter("order"), limit=2, offset=2).events[-1].event_id == first.event_id


def test_totals_are_exact_across_write_shards_with_part_of_them_counted(aws, monkeypatch):
    monkeypatch.setenv("MAIP_SHARD_SWITCH_DELAY", "0")
    # Given a tenant on 4 write shards with 120 events, the older 80 counted by the aggregation
    TenantSettingsStore().set_write_shards("sh", 4)
    store = EventStore()
    stored = store.prepare([event("sh", i) for i in range(120)])
    assert len({e.shard for e in stored}) == 4
    store.put_many(stored, prepared=True)
    aggregate(stored[:80])
    newest_first = [e.event_id for e in reversed(stored)]
    # When pages are read newest first (the uncounted 40 are beyond a page of 10) and oldest first
    for order in ("desc", "asc"):
        served, token = [], None
        while True:
            page = store.page(EventFilter("sh"), limit=10, next_token=token, order=order)
            assert page.total == 120
            served += [e.event_id for e in page.events]
            token = page.next_token
            if not token:
                break
        # Then every page says 120 and the pages hold every event once
        assert served == (newest_first if order == "desc" else newest_first[::-1])
    # When pages are read at offsets inside and past the 40 uncounted events: Then each is the exact slice
    for offset in (1, 25, 39, 40, 41, 79, 110):
        page = store.page(EventFilter("sh"), limit=7, offset=offset)
        assert [e.event_id for e in page.events] == newest_first[offset:offset + 7] and page.total == 120, offset
    assert store.page(EventFilter("sh"), limit=50).total == store.page(EventFilter("sh"), limit=500).total == 120


def test_a_stalled_aggregation_bounds_what_a_total_counts_from_the_events(aws, monkeypatch):
    # Given more uncounted events on a shard than a total counts from the events (20,000; 5 here)
    monkeypatch.setattr(events_store, "UNCOUNTED_MAX", 5)
    store = EventStore()
    store.put_many([event("stall", -120_000 + i) for i in range(12)])  # in a minute the aggregation may close
    # Then the total trails the writes by what is beyond the bound, until the aggregation catches up
    assert store.page(EventFilter("stall"), limit=2).total == 5
    settle()
    assert store.page(EventFilter("stall"), limit=2).total == 12


def test_a_warm_lambda_reuses_count_buckets_and_its_totals_stay_exact(aws, monkeypatch):
    from maip_events import aws as maip_aws, settings

    monkeypatch.setenv("MAIP_COUNTS_CACHE_TTL", "60")  # as a deployed Lambda (10 s there)
    settings.reset()
    counter_reads = []
    client = maip_aws.dynamodb()
    client.meta.events.register("before-parameter-build.dynamodb.Query",
                                lambda params, **_: counter_reads.append(params["TableName"] == settings.get_settings().counters_table),
                                unique_id="count-reads")
    headers = key_headers("warm", ["*"])
    # Given counted events of earlier minutes and events of the newest minute, not counted yet
    store = EventStore()
    older = [event("warm", -600_000 + 1000 * i) for i in range(5)]
    store.put_many(older)
    aggregate(store.prepare(older))
    created = [{"id": e.event_id, "event_type": e.event_type, "agent_id": e.agent_id, "severity": e.severity}
               for e in older] + emit_some(headers, 6)

    def first_page(limit: int) -> tuple[int, int]:
        counter_reads.clear()
        status, page, _ = invoke(list_events, "GET", EVENTS, headers=headers, query={"limit": str(limit)})
        assert status == 200
        return page["total"], sum(counter_reads)

    # Given a first page that read the counts
    total, reads = first_page(2)
    assert total == 11 and 1 <= reads <= 2
    # When more events arrive than a page shows
    created += emit_some(headers, 4, start=6)
    # Then the next first pages reuse the counts, counting the newest events from the table, never twice
    assert first_page(2) == (15, 0)
    settle()
    assert first_page(50) == (15, 0)
    totals_are_exact(headers, created)


def test_a_first_page_costs_three_requests_and_counts_the_newest_minute_from_what_it_read(aws):
    from maip_events import aws as maip_aws
    from maip_events.metrics.aggregate import Closer

    # Given a tenant emitting 2 events/s: an hour and a minute counted (the aggregation ran at :50 of the newest
    # minute), 100 events of the newest minute not counted yet
    minute = (NOW - timedelta(minutes=10)).replace(second=0)
    at = [minute - timedelta(minutes=61) + timedelta(milliseconds=500 * i) for i in range(240)]
    at += [minute - timedelta(minutes=1) + timedelta(milliseconds=500 * i) for i in range(120)]
    at += [minute + timedelta(milliseconds=500 * i) for i in range(100)]
    events = [build_event("steady", EmitEventRequest(event_type="agent.registered"), t) for t in at]
    clock = minute + timedelta(seconds=50)
    store = EventStore(clock=lambda: clock)
    store.put_many(events)
    assert Closer("steady", now_ms=int(clock.timestamp() * 1000)).run()
    requests = []
    # (Queries: the tenant's settings are a cached GetItem in a Lambda; tests read them every time)
    maip_aws.dynamodb().meta.events.register("before-parameter-build.dynamodb.Query", lambda params, **_: requests.append(1),
                                             unique_id="requests")
    try:
        # When the first page is read
        page = store.page(EventFilter("steady"), limit=10)
    finally:
        maip_aws.dynamodb().meta.events.unregister("before-parameter-build.dynamodb.Query", unique_id="requests")
    # Then the total is exact, from three requests: the minute maps, the hour buckets and one events Query
    assert page.total == 460 and len(page.events) == 10
    assert len(requests) == 3
