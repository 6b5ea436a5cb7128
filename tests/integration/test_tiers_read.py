"""Issue 19 item 3: lists, exports, totals and proofs read across the hot tier (DynamoDB) and the S3 archive alike.

The archive files are written here with pyarrow, as archive/layout.py defines them (parts repeating events,
compacted `day-` files, days mid-compaction holding both), into moto's S3; the events of days past the hot tier
are deleted from the table, as TTL would."""
from __future__ import annotations

import io
import itertools
import json
import random
from datetime import datetime, timedelta, timezone

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from maip_events.archive import layout
from maip_events.archive.reader import ArchiveReader
from maip_events.events import build_event
from maip_events.models.events import EmitEventRequest
from maip_events.query import build_filter
from maip_events.settings import get_settings
from maip_events.siem.export import export
from maip_events.siem.ocsf import to_ocsf
from maip_events.store.events import EventFilter, EventStore, event_key
from maip_events.store.tenants import TenantSettingsStore
from aggregation import aggregate

NOW = datetime(2026, 12, 4, 15, 30, 12, 345000, tzinfo=timezone.utc)
DAY_MS = 86_400_000
TYPES = ["agent.registered", "session.created", "trust.computed", "guardrail.violation"]
AGENTS = [None, "a-1", "a-2", "a#3"]
RESOURCES = [None, "r-1", "r-2"]
SEVERITIES = ["info", "warn", "error"]


def make(tenant: str, count: int, days: float = 10.0, seed: int = 7, blob: int = 0) -> list:
    """`count` events of `tenant` over the last `days` days before NOW, in bursts of a few minutes (as real traffic
    comes, and cheaper for moto's count aggregation), with mixed types, agents, resources (and `blob` incompressible
    payload characters each)."""
    rng = random.Random(seed)
    spacing = int(days * DAY_MS) // max(2, int(days * 1.5))
    bursts = [NOW - timedelta(milliseconds=300_000 + k * spacing + rng.randrange(spacing - 300_000)) for k in range(max(2, int(days * 1.5)))]
    found = []
    for i in range(count):
        at = rng.choice(bursts) + timedelta(milliseconds=rng.randrange(300_000))
        request = EmitEventRequest(event_type=rng.choice(TYPES), agent_id=rng.choice(AGENTS), resource_id=rng.choice(RESOURCES),
                                   severity=rng.choice(SEVERITIES), metadata={"i": i, "text": "ü \"q\"", "blob": rng.randbytes(blob // 2).hex()})
        found.append(build_event(tenant, request, at))
    return found


def _rows(events) -> list[dict]:
    return [{"event_id": e.event_id, "tenant_id": e.tenant_id, "event_type": e.event_type, "agent_id": e.agent_id,
             "resource_id": e.resource_id, "severity": e.severity, "created_at": e.created_at, "payload": e.payload_json,
             "shard": e.shard, "class_uid": to_ocsf(e)["class_uid"], "type_uid": to_ocsf(e)["type_uid"], "leaf_index": None}
            for e in events]


def put_file(key: str, events, row_group_rows: int = layout.ROW_GROUP_ROWS) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(_rows(events), schema=layout.SCHEMA), buffer, compression=layout.COMPRESSION,
                   row_group_size=row_group_rows)
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=get_settings().archive_bucket, Key=key, Body=buffer.getvalue())


def archive(events) -> None:
    """Every event into the archive, by tenant-day, in three shapes: a compacted day (sorted, small row groups), a day of
    parts only (they repeat events, out of order), and a day mid-compaction (its compacted file and leftover parts)."""
    by_day: dict[tuple[str, str], list] = {}
    for e in events:
        by_day.setdefault((e.tenant_id, layout.date_of(e.created_at)), []).append(e)
    for n, ((tenant, date), day) in enumerate(sorted(by_day.items())):
        ordered = sorted(day, key=lambda e: e.event_id)
        if n % 3 != 1:
            put_file(layout.day_key(tenant, date, 0), ordered, row_group_rows=7)
        if n % 3 != 0:
            shuffled = random.Random(n).sample(day, len(day))
            half = len(shuffled) // 2
            put_file(layout.part_key(tenant, date, f"{n:026d}"), shuffled[: half + 3])
            put_file(layout.part_key(tenant, date, f"{n + 1:026d}"), shuffled[half - 3 :])  # 6 repeated
            put_file(layout.part_key(tenant, date, f"{n + 2:026d}"), shuffled[:2])  # a retried batch


def store_all(aws, events, counted: bool = False) -> EventStore:
    """The events in the table (counted by the aggregation if `counted`: totals need it) and in the archive."""
    store = EventStore(clock=lambda: NOW)
    prepared = store.prepare(events)
    assert not store.put_many(prepared, prepared=True).failed
    if counted:
        aggregate(prepared)
    archive(prepared)
    return store


def expire_hot(aws, store: EventStore, events, hot_days: int) -> None:
    """The hot tier becomes `hot_days` and the table loses the days past it, as TTL deletes them."""
    TenantSettingsStore().set_retention(events[0].tenant_id, hot_days, now=NOW)
    hot_from = store.tenants.tiers(events[0].tenant_id).hot_from(int(NOW.timestamp() * 1000))
    old = [e for e in events if int(datetime.fromisoformat(e.created_at.replace("Z", "+00:00")).timestamp() * 1000) < hot_from]
    assert 0.5 * len(events) < len(old) < len(events)  # most, not all, only in the archive now
    for e in old:
        aws.delete_item(TableName=store.table, Key=event_key(e.tenant_id, e.shard, e.event_id))


def matches(e, flt: EventFilter) -> bool:
    types = flt.type_set()
    at = datetime.fromisoformat(e.created_at.replace("Z", "+00:00"))
    return ((types is None or e.event_type in types) and (flt.agent_id is None or e.agent_id == flt.agent_id)
            and (flt.resource_id is None or e.resource_id == flt.resource_id)
            and (flt.severities is None or e.severity in flt.severities)
            and e.agent_id not in flt.not_agents and e.resource_id not in flt.not_resources
            and (flt.time_from is None or at >= flt.time_from)
            and (flt.time_to is None or at <= flt.time_to))


FILTERS = {
    "all": dict(),
    "agent": dict(agent_id="a-1"),
    "types": dict(event_type="agent.registered,session.created"),
    "severity": dict(severity="error"),
    "q negations": dict(q="-agent:a-2 -type:session.created severity:warn,error -resource:r-2"),
    "resource and type": dict(resource_id="r-1", event_type="trust.computed"),  # no count dimension: counted from events
    "window across the boundary": dict(time_from=(NOW - timedelta(days=6, hours=5, milliseconds=17)).isoformat(),
                                       time_to=(NOW - timedelta(days=1, hours=2, milliseconds=3)).isoformat(), q="-agent:a-1"),
}


def observe(store: EventStore, flt: EventFilter) -> dict:
    """What a user sees of `flt`: next_token page sequences both ways, offset pages, exports, the count."""
    seen: dict = {}
    for order in ("desc", "asc"):
        pages, token = [], None
        while True:
            page = store.page(flt, limit=40, next_token=token, order=order)
            pages.append(([e.json for e in page.events], page.total, page.offset, page.next_token))
            token = page.next_token
            if not token:
                break
        seen[f"pages {order}"] = pages
        for offset in (0, 37, 150):
            page = store.page(flt, limit=25, offset=offset, order=order)
            seen[f"offset {offset} {order}"] = ([e.json for e in page.events], page.total, page.next_token)
        for fmt in ("jsonl", "ocsf") if order == "desc" else ("jsonl",):
            chunks, token = [], None
            while True:
                chunk = export(flt, fmt, token, store=store, order=order)
                chunks.append(chunk.body)
                token = chunk.next_token
                if not token:
                    break
            seen[f"export {fmt} {order}"] = "".join(chunks)
    seen["count"] = store.count(flt)
    return seen


@pytest.fixture
def small_exports(monkeypatch):
    monkeypatch.setenv("MAIP_EXPORT_MAX_EVENTS", "50")  # several export pages, one crossing the tiers
    get_settings.cache_clear()


def test_a_window_spanning_both_tiers_lists_exports_and_counts_as_the_same_data_all_hot(aws, small_exports):
    # Given 260 events over 10 days, every one in the table and in the archive (parts with repeats, compacted days)
    events = make("t1", 260)
    store = store_all(aws, events, counted=True)
    filters = {name: build_filter("t1", **params) for name, params in FILTERS.items()}
    # When everything is read all hot (the default 365 hot days)
    hot = {name: observe(store, flt) for name, flt in filters.items()}
    # Then it is the truth: each match once, newest first, totals exact
    for name, flt in filters.items():
        expected = sorted((e.event_id for e in events if matches(e, flt)), reverse=True)
        listed = [json.loads(text)["event_id"] for page in hot[name]["pages desc"] for text in page[0]]
        assert listed == expected and len(expected) > 10, name
        assert hot[name]["count"] == len(expected) == hot[name]["pages desc"][0][1], name
    # When the hot tier drops to 3 days (the table still holds the older days: TTL deletes lazily)
    TenantSettingsStore().set_retention("t1", 3, now=NOW)
    lowered = {name: observe(store, filters[name]) for name in ("all", "q negations")}
    # And then TTL deletes them from the table, leaving most events only in the archive
    expire_hot(aws, store, events, 3)
    archived = {name: observe(store, flt) for name, flt in filters.items()}
    # Then every filter lists, pages (both cursors and offsets), exports and counts exactly as all hot
    for name in filters:
        for what in hot[name]:
            assert archived[name][what] == hot[name][what], (name, what)
            assert name not in lowered or lowered[name][what] == hot[name][what], (name, what)


class S3Requests:
    """The S3 requests a reader makes (operation, key or prefix, byte range), seen at the botocore boundary."""

    def __init__(self):
        self.client = boto3.client("s3", region_name="us-east-1")
        self.calls: list[tuple[str, str, str | None]] = []
        self.client.meta.events.register("provide-client-params.s3.*", self._record)

    def _record(self, params, model, **_):
        self.calls.append((model.name, params.get("Key") or params.get("Prefix") or "", params.get("Range")))

    def days_got(self, since: int = 0) -> set[str]:
        return {key.split("date=")[1][:10] for name, key, _ in self.calls[since:] if name == "GetObject"}


def test_pages_read_the_archive_only_when_they_reach_it_one_day_at_a_time(aws):
    # Given 300 events over 10 days, the hot tier 3 days, the older days only in the archive
    events = make("t1", 300)
    store = store_all(aws, events)
    expire_hot(aws, store, events, 3)
    s3 = S3Requests()
    store = EventStore(clock=lambda: NOW, archive=ArchiveReader(client=s3.client))
    # When the first page is read newest first
    page = store.page(EventFilter("t1"), limit=20)
    # Then it comes from the table alone: no S3 request
    assert len(page.events) == 20 and s3.calls == []
    # When pages are followed past the hot tier
    token, days_read, listed = page.next_token, [], 20
    while token:
        before = len(s3.calls)
        page = store.page(EventFilter("t1"), limit=20, next_token=token)
        days = {layout.date_of(json.loads(e.json)["timestamp"]) for e in page.events}
        days_read.append(len(s3.days_got(before) - days))  # days read beyond those the page shows
        listed += len(page.events)
        tenant_lists = [key for name, key, _ in s3.calls[before:] if name == "ListObjectsV2" and key == layout.tenant_prefix("t1")]
        assert len(tenant_lists) <= 1  # the day prefixes listed once a page (none while it reads the table)
        token = page.next_token
    # Then each page read the days it shows and at most one more (where the next page starts), and all 300 were listed
    assert listed == 300 and max(days_read) <= 1


def test_duplicated_parts_and_days_mid_compaction_list_and_count_each_event_once(aws):
    # Given archive days only (nothing in the table), the same events in several parts and in compacted files
    events = make("t1", 150, days=6)
    TenantSettingsStore().set_retention("t1", 1, now=NOW)
    store = EventStore(clock=lambda: NOW)
    old = [e for e in store.prepare(events) if e.created_at < "2026-12-03"]
    archive(old)
    expected = sorted((e.event_id for e in old), reverse=True)
    # When they are listed, exported and counted
    listed = [e.event_id for e in store.iterate(EventFilter("t1"))]
    ascending = [e.event_id for e in store.iterate(EventFilter("t1"), ascending=True)]
    # Then each event appears once, in order, and counts agree
    assert listed == expected and ascending == expected[::-1]
    assert store._count_range(EventFilter("t1"), 0, int(NOW.timestamp() * 1000)) == len(expected)
    reader = ArchiveReader()
    assert reader.count(build_filter("t1", q="-agent:a-1 severity:info"), 0, int(NOW.timestamp() * 1000)) == \
        sum(1 for e in old if e.agent_id != "a-1" and e.severity == "info")
    # And the items are shaped as the table's (without its index keys and TTL)
    item = next(reader.items(EventFilter("t1"), 0, int(NOW.timestamp() * 1000)))
    newest = max(old, key=lambda e: e.event_id)
    assert item == {"event_id": {"S": newest.event_id}, "tenant_id": {"S": "t1"}, "shard": {"N": "0"},
                    "event_type": {"S": newest.event_type}, "severity": {"S": newest.severity},
                    "created_at": {"S": newest.created_at}, "payload": {"S": newest.payload_json},
                    **({"agent_id": {"S": newest.agent_id}} if newest.agent_id else {}),
                    **({"resource_id": {"S": newest.resource_id}} if newest.resource_id else {})}


def test_get_many_reads_archived_events_by_id(aws):
    # Given events of which the older days are only in the archive
    events = make("t1", 120)
    store = store_all(aws, events)
    expire_hot(aws, store, events, 2)
    ids = [e.event_id for e in sorted(events, key=lambda e: e.event_id)]
    wanted = [ids[3], ids[-1], "maip-evt:01JD8X0Q6W1T3F4N5P6R7S8T9V", ids[50], ids[3]]
    # When they are fetched by id, hot and archived ones mixed with an unknown id
    found = store.get_many("t1", wanted)
    # Then each known one is returned as stored, in the order asked
    by_id = {e.event_id: e for e in store.prepare(events)}
    assert [e.event_id for e in found] == [ids[3], ids[-1], ids[50], ids[3]]
    for e in found:
        assert (e.event_type, e.agent_id, e.resource_id, e.severity, e.created_at, e.payload_json) == (
            by_id[e.event_id].event_type, by_id[e.event_id].agent_id, by_id[e.event_id].resource_id,
            by_id[e.event_id].severity, by_id[e.event_id].created_at, by_id[e.event_id].payload_json)
    # And another tenant's store finds none of them
    assert store.get_many("t2", wanted) == []


def test_a_tenant_reads_only_its_own_archive_prefix(aws):
    # Given three tenants with archives, two of them with ids that share a prefix
    mine, others = make("t1", 90, seed=1), make("t1x", 90, seed=2) + make("t2", 90, seed=3)
    for tenant_events in (mine, others[:90], others[90:]):
        store_all(aws, tenant_events)
        expire_hot(aws, EventStore(clock=lambda: NOW), tenant_events, 2)
    s3 = S3Requests()
    store = EventStore(clock=lambda: NOW, archive=ArchiveReader(client=s3.client))
    # When t1 lists, exports, counts and fetches (also the others' ids)
    listed = [e.event_id for e in store.iterate(EventFilter("t1"))]
    total = store._count_range(build_filter("t1", resource_id="r-1", event_type="trust.computed"), 0, int(NOW.timestamp() * 1000))
    fetched = store.get_many("t1", [e.event_id for e in others[:20]])
    # Then it sees its own events only
    assert listed == sorted((e.event_id for e in mine), reverse=True) and fetched == []
    assert total == sum(1 for e in mine if e.resource_id == "r-1" and e.event_type == "trust.computed")
    # And every S3 request named its own prefix
    assert s3.calls and all(key.startswith(layout.tenant_prefix("t1")) for _, key, _ in s3.calls)


def test_the_ranged_read_of_a_large_file_reads_footer_and_columns_not_the_object(aws, monkeypatch):
    # Given a compacted day of ~3,000 events of ~1 KB in row groups of 500 (read by ranges as if it were large)
    from maip_events.archive import reader as reader_module

    events = sorted(make("t1", 3000, days=0.5, seed=5, blob=1000), key=lambda e: e.event_id)
    date = layout.date_of(events[0].created_at)
    events = [e for e in events if layout.date_of(e.created_at) == date]
    put_file(layout.day_key("t1", date, 0), events, row_group_rows=500)
    monkeypatch.setattr(reader_module, "WHOLE_OBJECT_MAX", 0)
    s3 = S3Requests()
    reader = ArchiveReader(client=s3.client)
    size = boto3.client("s3", region_name="us-east-1").head_object(Bucket=get_settings().archive_bucket,
                                                                    Key=layout.day_key("t1", date, 0))["ContentLength"]
    end = int(NOW.timestamp() * 1000) + 1
    # When the 10 newest are read
    newest = [i["event_id"]["S"] for i in itertools.islice(reader.items(EventFilter("t1"), 0, end), 10)]
    # Then they are right, read from the footer and the last row group alone
    assert newest == [e.event_id for e in events[::-1][:10]]
    assert len(events) > 1500 and fetched(s3) < size / 2, (fetched(s3), size)
    # When the events of agent a-1 after the 1,000th are counted
    s3.calls.clear()
    flt = EventFilter("t1", agent_id="a-1")
    count = reader.count(flt, int(datetime.fromisoformat(events[1000].created_at.replace("Z", "+00:00")).timestamp() * 1000), end)
    assert count == sum(1 for e in events[1000:] if e.agent_id == "a-1" and e.created_at >= events[1000].created_at)
    # Then it fetched ranges only (footer, two columns of the row groups it needs): a fraction of the file
    assert fetched(s3) < size / 10, (fetched(s3), size)


def fetched(s3: S3Requests) -> int:
    """Bytes the GETs asked for (every one a ranged GET)."""
    ranges = [r for name, _, r in s3.calls if name == "GetObject"]
    assert ranges and None not in ranges
    return sum(int(r.split("-")[1]) - int(r.split("=")[1].split("-")[0]) + 1 for r in ranges)


def test_proofs_and_a_verified_export_cover_events_only_in_the_archive(log, monkeypatch, tmp_path):
    # Given 30 sealed events of five days ago and 20 of two hours ago, archived, the hot tier then 1 day and the
    # older ones deleted from the table (as TTL would)
    from functions.export.app import lambda_handler as export_handler
    from functions.integrity.app import lambda_handler as integrity_handler
    from maip_events.integrity import signing
    from maip_events.integrity.verify import verify_export
    from siem_harness import make_events
    from support import Ctx, http_event, invoke, key_headers
    from test_integrity import dispatch_and_seal

    now = datetime.now(timezone.utc)
    old = make_events("t1", [("agent.registered", "info", "a")] * 30, start=now - timedelta(days=5))
    recent = make_events("t1", [("session.created", "warn", "b")] * 20, start=now - timedelta(hours=2))
    dispatch_and_seal(old + recent)
    archive(old + recent)
    TenantSettingsStore().set_retention("t1", 1)
    for e in old:
        log.delete_item(TableName=get_settings().events_table, Key=event_key("t1", e.shard, e.event_id))
    headers = key_headers("t1", ["events:read"])
    # When an archived event's proof is asked for
    status, proof, _ = invoke(integrity_handler, "GET", f"/v1/observability/events/{old[5].event_id}/proof", headers=headers)
    # Then it is proven (not gone: the archive still holds it)
    assert status == 200 and proof["leaf_index"] == 5, proof
    # When a window across both tiers is exported with proofs, in pages of 9 lines, and verified
    monkeypatch.setenv("MAIP_EXPORT_MAX_EVENTS", "9")
    get_settings.cache_clear()
    lines, token = [], None
    while True:
        query = {"format": "jsonl", "proofs": "true", "from": old[10].created_at, "to": recent[14].created_at,
                 **({"next_token": token} if token else {})}
        response = export_handler(http_event("GET", "/v1/observability/events/export", headers=headers, query=query), Ctx())
        assert response["statusCode"] == 200, response["body"]
        lines += response["body"].splitlines()
        token = response["headers"].get("X-Next-Token")
        if not token:
            break
    (tmp_path / "audit.jsonl").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    result = verify_export(tmp_path / "audit.jsonl", signing.public_jwk(), "the API's key")
    # Then it verifies with every event present, none expired
    assert result.ok, result.summary()
    assert (result.events, result.expired, result.first_index, result.last_index) == (35, 0, 10, 44)
    assert [json.loads(line)["event_id"] for line in lines[:-1]] == [e.event_id for e in (old[10:] + recent[:15])[::-1]]
