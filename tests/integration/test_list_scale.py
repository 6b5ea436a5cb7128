"""Issue 6: exact totals, deep offsets, stable cursors and retention, against moto tables built from template.yaml."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from functions.emit.app import lambda_handler as emit
from functions.list.app import lambda_handler as list_events
from maip_events.events import build_event
from maip_events.ids import parse_time
from maip_events.models.events import EmitEventRequest
from maip_events.settings import get_settings
from maip_events.store import counts
from maip_events.store.events import EventFilter, EventStore
from maip_events.store.tenants import TenantSettingsStore
from aggregation import aggregate, settle
from support import invoke

EVENTS = "/v1/observability/events"
NOW = datetime.now(timezone.utc).replace(microsecond=0)
TYPES = ["agent.registered", "session.created", "trust.computed"]
AGENTS = [None, "a-1", "a#2"]


@pytest.fixture(autouse=True)
def fast_transactions():
    from maip_events_local import moto_patches

    moto_patches.install()  # moto's own TransactWriteItems copies whole tables per item


def event(tenant: str, at: datetime, event_type: str = "agent.registered", agent: str | None = None):
    return build_event(tenant, EmitEventRequest(event_type=event_type, agent_id=agent), at)


def brute(events, flt: EventFilter):
    """What the answer must be: every match, newest first."""
    def keep(e):
        at = parse_time(e.created_at)
        return ((flt.agent_id is None or e.agent_id == flt.agent_id) and (flt.event_type is None or e.event_type == flt.event_type)
                and (flt.time_from is None or at >= flt.time_from) and (flt.time_to is None or at <= flt.time_to))
    return sorted((e.event_id for e in events if keep(e)), reverse=True)


moments = st.integers(min_value=0, max_value=3 * 86_400_000).map(lambda ms: NOW - timedelta(milliseconds=ms))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    rows=st.lists(st.tuples(moments, st.sampled_from(TYPES), st.sampled_from(AGENTS)), min_size=0, max_size=40),
    agent=st.sampled_from(AGENTS), event_type=st.sampled_from([None, *TYPES]),
    time_from=st.none() | moments, time_to=st.none() | moments,
    offset=st.integers(min_value=0, max_value=45), limit=st.integers(min_value=1, max_value=8),
)
def test_total_and_any_offset_match_a_brute_force_count_for_every_filter_combination(aws, rows, agent, event_type, time_from, time_to, offset, limit):
    # Given events spread over three days (ms-precise times, windows not aligned to any bucket)
    tenant = f"p-{uuid.uuid4().hex[:12]}"
    events = [event(tenant, at, t, a) for at, t, a in rows]
    store = EventStore()
    store.put_many(events)
    settle()
    if time_from and time_to and time_from > time_to:
        time_from, time_to = time_to, time_from
    flt = EventFilter(tenant, agent_id=agent, event_type=event_type, time_from=time_from, time_to=time_to)
    expected = brute(events, flt)
    # When the page at `offset` is read
    page = store.page(flt, limit=limit, offset=offset)
    # Then the total is exact and the page is exactly that slice of the matches
    assert page.total == len(expected) == store.count(flt)
    assert [e.event_id for e in page.events] == expected[offset : offset + limit]
    assert (page.next_token is not None) == (offset + limit < len(expected))


class ReadCounter:
    """boto3 client proxy adding up the items each Query read (ScannedCount), as DynamoDB bills them."""

    def __init__(self, client):
        self._client, self.events_read, self.counters_read = client, 0, 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    @property
    def items_read(self):
        return self.events_read + self.counters_read

    def reset(self):
        self.events_read = self.counters_read = 0

    def query(self, **kwargs):
        response = self._client.query(**kwargs)
        if kwargs["TableName"] == get_settings().events_table:
            self.events_read += response["ScannedCount"]
        else:
            self.counters_read += response["ScannedCount"]
        return response


def test_deep_offsets_over_days_read_only_inside_one_minute(aws):
    # Given 600 events over 5 days for one tenant, two agents
    events = [event("deep", NOW - timedelta(minutes=12 * i, milliseconds=7 * i), TYPES[i % 3], AGENTS[1 + i % 2]) for i in range(600)]
    client = ReadCounter(aws)
    store = EventStore(client=client)
    store.put_many(events)
    aggregate(store.prepare(events))
    for flt in (EventFilter("deep"), EventFilter("deep", agent_id="a#2"), EventFilter("deep", event_type=TYPES[1], agent_id="a-1",
                                                                                        time_from=NOW - timedelta(days=3, seconds=7))):
        expected = brute(events, flt)
        for limit in (10, 50):
            client.reset()
            store.page(flt, limit=limit, offset=0)
            first_page = client.items_read
            for offset in (0, 1, len(expected) // 2, len(expected) - 10, len(expected) - 1, len(expected), len(expected) + 5):
                # When any offset is asked for
                client.reset()
                page = store.page(flt, limit=limit, offset=offset)
                # Then the page is the brute-force slice
                assert page.total == len(expected)
                assert [e.event_id for e in page.events] == expected[offset : offset + limit]
                # And it read about one page of events, never the skipped ones, and (for a page of the default size)
                # at most twice the items (events + counters) of the first page
                assert client.events_read <= limit + 1 + 2 * counts.SPLIT, (offset, client.events_read)
                if limit == 50:
                    assert client.items_read <= 2 * first_page, (offset, client.events_read, client.counters_read, first_page)


@pytest.mark.parametrize("spread, n", [(timedelta(minutes=1), 2000), (timedelta(seconds=1), 1200)])
def test_deep_offsets_in_a_dense_minute_or_second_read_at_most_twice_the_first_page(aws, spread, n):
    # Given 2,000 events of one tenant inside one minute (or 1,200 in one second), plus a few older ones
    start = NOW - timedelta(hours=1)
    step = spread / n
    events = [event("dense", start + i * step, TYPES[i % 3], AGENTS[1 + i % 2]) for i in range(n)]
    events += [event("dense", start - timedelta(hours=h)) for h in range(1, 4)]
    client = ReadCounter(aws)
    store = EventStore(client=client)
    store.put_many(events)
    aggregate(store.prepare(events))
    inner_from, inner_to = start + spread * 0.1234, start + spread * 0.8765  # edges aligned to nothing
    for flt in (EventFilter("dense"), EventFilter("dense", agent_id="a#2"),
                EventFilter("dense", time_from=inner_from, time_to=inner_to)):
        expected = brute(events, flt)
        client.reset()
        store.page(flt, limit=50, offset=0)
        first_page = client.items_read
        for offset in (17, len(expected) // 2, len(expected) * 2 // 3, len(expected) - 60, len(expected) - 3):
            # When a deep page is read
            client.reset()
            page = store.page(flt, limit=50, offset=offset)
            # Then it is exact and read at most twice the items (events + counters) of the page at offset 0
            assert page.total == len(expected)
            assert [e.event_id for e in page.events] == expected[offset : offset + 50]
            assert client.items_read <= 2 * first_page, (offset, client.events_read, client.counters_read, first_page)


def test_pages_offsets_and_cursors_across_write_shards_are_exact_and_stable(aws, monkeypatch):
    monkeypatch.setenv("MAIP_SHARD_SWITCH_DELAY", "0")
    # Given a tenant writing to 4 shards, 300 events over a day from two agents
    TenantSettingsStore().set_write_shards("s", 4)
    client = ReadCounter(aws)
    store = EventStore(client=client)
    events = store.prepare([event("s", NOW - timedelta(seconds=290 * i, milliseconds=i), TYPES[i % 3], AGENTS[1 + i % 2])
                            for i in range(300)])
    assert len({e.shard for e in events}) == 4
    store.put_many(events, prepared=True)
    aggregate(events)
    for flt in (EventFilter("s"), EventFilter("s", agent_id="a#2"), EventFilter("s", time_from=NOW - timedelta(hours=7, seconds=3))):
        expected = brute(events, flt)
        # When pages are read at offsets; Then each is the exact slice, reading about one page across the shards
        for offset in (0, 49, len(expected) // 2, len(expected) - 5):
            client.reset()
            page = store.page(flt, limit=20, offset=offset)
            assert page.total == len(expected) and [e.event_id for e in page.events] == expected[offset : offset + 20]
            assert client.events_read <= 20 + 1 + 2 * counts.SPLIT + 4 * 2, (offset, client.events_read)
    # When the tenant is paged with next_token while new events keep arriving (on every shard)
    seen, token, arrived = [], None, []
    while True:
        page = store.page(EventFilter("s"), limit=23, next_token=token)
        seen += [e.event_id for e in page.events]
        fresh = store.prepare([event("s", NOW + timedelta(milliseconds=len(arrived) + i)) for i in range(4)])
        store.put_many(fresh, prepared=True)
        arrived += fresh
        token = page.next_token
        if not token:
            break
    # Then the 300 original events were served once each, newest first: no duplicates, no gaps
    assert seen == brute(events, EventFilter("s"))


def test_a_page_stops_before_5_mb_and_continues_with_next_token(aws, headers):
    # Given 500 events of 16 KiB metadata each (~8 MB of list items)
    blob = "x" * (16 * 1024 - 20)
    for _ in range(5):
        status, body, _ = invoke(emit, "POST", EVENTS + ":batch", headers=headers,
                                 body={"events": [{"event_type": "agent.updated", "metadata": {"blob": blob}} for _ in range(100)]})
        assert status == 200 and body["succeeded"] == 100, body
    settle()
    # When the whole list is asked for in one page of 500
    response = batch_list(headers, {"limit": "500"})
    # Then the body stays under ~5 MB (Lambda's limit is 6 MB), with a next_token that continues exactly
    assert response["statusCode"] == 200 and len(response["body"].encode()) <= 5_000_000
    first = json.loads(response["body"])
    assert first["total"] == 500 and 0 < len(first["items"]) < 500 and first["next_token"]
    rest = json.loads(batch_list(headers, {"limit": "500", "next_token": first["next_token"]})["body"])
    ids = [i["event_id"] for i in first["items"] + rest["items"]]
    assert len(ids) == len(set(ids)) == 500 and ids == sorted(ids, reverse=True) and rest["next_token"] is None
    assert all(i["payload"] == {"blob": blob} for i in first["items"][:3])


def batch_list(headers, query):
    from support import Ctx, http_event

    return list_events(http_event("GET", EVENTS, headers=headers, query=query), Ctx())


def test_cursor_pages_have_no_duplicates_or_gaps_while_events_arrive(aws, headers):
    # Given 30 stored events
    store = EventStore()
    store.put_many([event("t1", NOW - timedelta(seconds=i), TYPES[i % 3], "a-1") for i in range(30)])
    settle()
    status, page, _ = invoke(list_events, "GET", EVENTS, headers=headers, query={"limit": "7"})
    assert status == 200 and page["total"] == 30
    seen = [i["event_id"] for i in page["items"]]
    # When new events are emitted between every page
    while page["next_token"]:
        assert invoke(emit, "POST", EVENTS, headers=headers, body={"event_type": "session.created", "agent_id": "a-1"})[0] == 201
        settle()
        status, page, _ = invoke(list_events, "GET", EVENTS, headers=headers, query={"limit": "7", "next_token": page["next_token"]})
        assert status == 200
        seen += [i["event_id"] for i in page["items"]]
    # Then exactly the 30 original events were served once each, newest first, and the total saw the new ones
    assert len(seen) == len(set(seen)) == 30 and seen == sorted(seen, reverse=True)
    assert page["total"] > 30


def test_an_emitted_event_is_listed_at_once_and_counted_once_the_stream_is_aggregated(aws, headers):
    for n in range(1, 4):
        # Given an event just emitted, and the stream aggregated (AggregateFunction; ~1 s in the local stack)
        status, created, _ = invoke(emit, "POST", EVENTS, headers=headers, body={"event_type": "agent.registered", "agent_id": "x"})
        assert status == 201
        status, page, _ = invoke(list_events, "GET", EVENTS, headers=headers)
        assert page["items"][0]["event_id"] == created["id"]
        settle()
        # Then the next reads count it and show it first, with and without filters
        for query in ({}, {"agent_id": "x"}, {"event_type": "agent.registered"}, {"agent_id": "x", "event_type": "agent.registered"},
                      {"from": created["created_at"], "to": created["created_at"]}):
            status, page, _ = invoke(list_events, "GET", EVENTS, headers=headers, query=query)
            assert status == 200 and page["items"][0]["event_id"] == created["id"]
            assert page["total"] == (1 if "from" in query else n)


def test_tampered_or_foreign_cursors_are_refused(aws, headers):
    from support import key_headers

    # Given a real next_token for t1's unfiltered listing
    for i in range(5):
        invoke(emit, "POST", EVENTS, headers=headers, body={"event_type": "agent.registered", "agent_id": "a"})
    token = invoke(list_events, "GET", EVENTS, headers=headers, query={"limit": "2"})[1]["next_token"]
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    other = key_headers("t2", ["*"])
    # When it is altered, replayed with other filters, or by another tenant; Then 400 invalid_request
    for hdrs, query in ((headers, {"next_token": flipped}), (headers, {"next_token": "garbage!"}),
                        (headers, {"next_token": token, "agent_id": "a"}), (other, {"next_token": token})):
        status, doc, _ = invoke(list_events, "GET", EVENTS, headers=hdrs, query=query)
        assert (status, doc["error"]["code"]) == (400, "invalid_request")


def _counter_expiries(aws, tenant):
    """TTL of each day's counts (the hourly metrics buckets and the minute maps), by UTC day."""
    from maip_events.store import counts

    found = {}
    for pk in (counts.metric_pk(tenant, "total"), counts.minute_pk(tenant, False)):
        for item in aws.query(TableName=get_settings().counters_table, KeyConditionExpression="pk = :p",
                              ExpressionAttributeValues={":p": {"S": pk}})["Items"]:
            found.setdefault(item["sk"]["S"][:10], set()).add(int(item["expires_at"]["N"]))
    return {day: values.pop() for day, values in found.items() if len(values) == 1}


def test_retention_hides_old_days_and_events_and_counters_share_one_expiry(aws, monkeypatch):
    # Given events 400, 100 and 10 days old and one from today, with a deployment default of 365 hot days
    monkeypatch.setenv("MAIP_HOT_DAYS_DEFAULT", "365")
    get_settings.cache_clear()
    now = [NOW]
    store = EventStore(clock=lambda: now[0])
    old = [event("r", NOW - timedelta(days=d)) for d in (400, 100, 10)] + [event("r", NOW - timedelta(seconds=5))]
    store.put_many(old)
    settle()
    flt = EventFilter("r")
    # Then the 400-day-old event is neither counted nor listed, whether or not TTL has deleted it
    page = store.page(flt, limit=10)
    assert page.total == 3 and [e.event_id for e in page.events] == brute(old[1:], flt)
    # And every counted event's TTL equals its day's counts: end of its UTC day + 365 days (the newest minute is
    # not counted yet: it is counted from the events)
    stored = {e.event_id: e for e in store.iterate(EventFilter("r", time_from=NOW - timedelta(days=500)))}
    expiries = _counter_expiries(aws, "r")
    for e in old[1:3]:
        day = e.created_at[:10]
        end_of_day = datetime.fromisoformat(day).replace(tzinfo=timezone.utc) + timedelta(days=1)
        assert stored[e.event_id].expires_at == expiries[day] == int((end_of_day + timedelta(days=365)).timestamp())

    # When the tenant keeps 30 days in both tiers (lowering the hot tier alone hides nothing: test_tiers_read.py)
    TenantSettingsStore().set_tiers("r", hot_days=30, archive_days=30, now=NOW)
    # Then older days disappear from totals and pages at once
    page = store.page(flt, limit=10)
    assert page.total == 2 and [e.event_id for e in page.events] == brute(old[2:], flt)
    assert store.page(EventFilter("r", time_from=NOW - timedelta(days=200)), limit=10).total == 2
    # And events from the next UTC day on get a 30-day TTL
    tomorrow = event("r", NOW + timedelta(days=1))
    store.put(tomorrow)
    settle()
    day = tomorrow.created_at[:10]
    fresh = next(e for e in store.iterate(flt) if e.event_id == tomorrow.event_id)
    assert fresh.expires_at == int(
        (datetime.fromisoformat(day).replace(tzinfo=timezone.utc) + timedelta(days=31)).timestamp())
    # When that day is past the archive days (moto never deletes: the horizon is computed)
    now[0] = NOW + timedelta(days=33)
    # Then nothing of it is counted or listed
    assert store.page(flt, limit=10).total == 0 and store.count(flt) == 0


def test_retrying_a_batch_counts_each_event_once(aws):
    # Given a batch written once
    events = [event("b", NOW - timedelta(seconds=i), TYPES[i % 3], AGENTS[i % 3]) for i in range(150)]
    store = EventStore()
    store.put_many(events)
    # When the same batch (plus two new events) is retried, and one event is put again
    extra = [event("b", NOW + timedelta(milliseconds=i)) for i in range(2)]
    store.put_many(events + extra)
    assert store.put(events[0]) is False
    settle()
    # Then every event is counted once, for every dimension
    for flt in (EventFilter("b"), EventFilter("b", agent_id="a-1"), EventFilter("b", event_type=TYPES[0]),
                EventFilter("b", event_type=TYPES[1], agent_id="a#2")):
        assert store.count(flt) == len(brute(events + extra, flt))


def test_cli_sets_a_tenants_retention(aws, capsys):
    import json

    from maip_events_local.cli import main

    # When an operator sets tenant t9's retention
    assert main(["tenants", "set-retention", "--tenant", "t9", "--days", "90", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    # Then it is stored and reported
    assert doc["tenant_id"] == "t9" and doc["retention_days"] == 90
    assert TenantSettingsStore().retention("t9").days == 90
    # And out-of-range values are refused
    assert main(["tenants", "set-retention", "--tenant", "t9", "--days", "0", "--json"]) == 2
