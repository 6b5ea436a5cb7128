"""Issue 19: the S3 archive's write side against in-process moto. Events reach the archive through the
dispatcher's archive messages and the archive writer (Parquet parts, zstd, layout.SCHEMA); duplicated deliveries
and a writer that dies between PutObject and its acknowledgement are deduplicated by compaction, which also
fills the Merkle leaf of sealed events, survives a crash of its own half-way, changes nothing when re-run and
expires each tenant's days by its own archive days."""
from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import boto3
import pyarrow.parquet as pq
import pytest

from functions.archive.app import lambda_handler as archive_writer
from functions.archive_compact.app import lambda_handler as compact
from functions.dispatch.app import lambda_handler as dispatch
from maip_events.archive import layout
from maip_events.events import build_event
from maip_events.integrity.seal import Sealer
from maip_events.integrity.store import IntegrityStore
from maip_events.models.events import EmitEventRequest
from maip_events.settings import get_settings
from maip_events.siem.ocsf import uids
from maip_events.store.events import EventStore
from maip_events.store.tenants import TenantSettingsStore
from maip_events_local.template import bucket_names
from siem_harness import drain, stream_batch
from support import Ctx

DAY = (datetime.now(timezone.utc) - timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
class CompactCtx(Ctx):
    """CompactFunction's context: 15 minutes to run."""

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 900_000


TYPES = ["agent.registered", "session.created", "guardrail.violation", "orchestration.failed"]


@pytest.fixture
def archive(log):
    """The template's queues, signing key and archive bucket; yields the archive queue's URL."""
    s3 = boto3.client("s3", region_name="us-east-1")
    for bucket in bucket_names():
        s3.create_bucket(Bucket=bucket)
    sqs = boto3.client("sqs", region_name="us-east-1")
    return sqs.get_queue_url(QueueName=get_settings().archive_queue)["QueueUrl"]


def events_at(tenant: str, start: datetime, count: int, step=timedelta(seconds=7)):
    """`count` stored events of `tenant` from `start`, ~1 KB each."""
    events = [build_event(tenant, EmitEventRequest(event_type=TYPES[i % 4], agent_id=f"agent-{i % 3}",
                                                   resource_id=None if i % 5 else "res-1",
                                                   metadata={"i": i, "note": "ü" + "x" * 900}), now=start + i * step)
              for i in range(count)]
    EventStore().put_many(events)
    return events


def objects(prefix: str = layout.PREFIX) -> dict[str, bytes]:
    s3, bucket = boto3.client("s3", region_name="us-east-1"), get_settings().archive_bucket
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def read_day(tenant: str, date: str) -> list[dict]:
    """What a reader of the prefix sees: every file's rows, the first row of each event id kept, by id."""
    seen: dict[str, dict] = {}
    for body in objects(layout.day_prefix(tenant, date)).values():
        for row in pq.read_table(io.BytesIO(body)).to_pylist():
            seen.setdefault(row["event_id"], row)
    return [seen[k] for k in sorted(seen)]


def all_rows(tenant: str, date: str) -> list[dict]:
    return [row for body in objects(layout.day_prefix(tenant, date)).values() for row in pq.read_table(io.BytesIO(body)).to_pylist()]


def test_dispatched_events_land_as_zstd_parquet_parts_with_the_archive_schema(archive):
    # Given 40 stored events of t1 (~1 KB each) and 3 of t2, in one stream batch
    mine, theirs = events_at("t1", DAY, 40), events_at("t2", DAY, 3)
    # When the dispatcher handles the batch and the archive writer its queue
    assert dispatch(stream_batch(mine + theirs), Ctx()) == {"batchItemFailures": []}
    assert drain(archive, archive_writer) >= 2
    # Then each tenant's day holds part files only, under its own prefix
    date = layout.date_of(mine[0].created_at)
    parts = objects(layout.day_prefix("t1", date))
    assert parts and all(k.rsplit("/", 1)[1].startswith("part-") and k.endswith(".parquet") for k in parts)
    for body in parts.values():
        parquet = pq.ParquetFile(io.BytesIO(body))
        # with exactly the archive's schema, every column chunk compressed with zstd
        assert parquet.schema_arrow == layout.SCHEMA
        columns = [parquet.metadata.row_group(g).column(c) for g in range(parquet.metadata.num_row_groups)
                   for c in range(parquet.metadata.num_columns)]
        assert {c.compression for c in columns} == {"ZSTD"}
        ids = parquet.read().column("event_id").to_pylist()
        assert ids == sorted(ids)  # rows sorted by event id
    # And the rows are the events, field by field, with their OCSF class and type and no leaf yet
    rows = read_day("t1", date)
    assert [r["event_id"] for r in rows] == sorted(e.event_id for e in mine)
    by_id = {e.event_id: e for e in mine}
    for row in rows:
        event = by_id[row["event_id"]]
        assert row == {"event_id": event.event_id, "tenant_id": "t1", "event_type": event.event_type,
                       "agent_id": event.agent_id, "resource_id": event.resource_id, "severity": event.severity,
                       "created_at": event.created_at, "payload": event.payload_json, "shard": event.shard,
                       "class_uid": uids(event.event_type)[0], "type_uid": uids(event.event_type)[1], "leaf_index": None}
    assert [r["event_id"] for r in read_day("t2", date)] == sorted(e.event_id for e in theirs)


def test_duplicated_deliveries_and_a_writer_crash_compact_to_one_row_per_event_with_its_leaf(archive):
    sqs = boto3.client("sqs", region_name="us-east-1")
    # Given 300 events of t1 that the integrity log sealed, then 20 later ones it has not sealed yet
    sealed = events_at("t1", DAY, 300)
    assert Sealer().seal("t1")
    unsealed = events_at("t1", DAY + timedelta(hours=2), 20)
    # And the stream delivered the batch twice (at least once)
    batch = stream_batch(sealed + unsealed)
    for _ in range(2):
        assert dispatch(batch, Ctx()) == {"batchItemFailures": []}
    # And the writer died after its PutObject but before acknowledging: the messages come back
    received = sqs.receive_message(QueueUrl=archive, MaxNumberOfMessages=10).get("Messages", [])
    # (each delivery of ~350 KB of events was split into messages under SQS's 256 KiB)
    assert len(received) == 4 and all(len(m["Body"].encode()) < 256 * 1024 for m in received)
    records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"]} for m in received]
    assert archive_writer({"Records": records}, Ctx()) == {"batchItemFailures": []}
    for m in received:
        sqs.change_message_visibility(QueueUrl=archive, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    drain(archive, archive_writer)
    date = layout.date_of(sealed[0].created_at)
    ids = sorted(e.event_id for e in sealed + unsealed)
    assert len(all_rows("t1", date)) > len(ids)  # the parts repeat events

    # When compaction runs (the day is closed)
    assert compact({}, CompactCtx())["days_compacted"] == 1
    # Then the day is one day file, one row per event id, sorted
    files = objects(layout.day_prefix("t1", date))
    assert list(files) == [layout.day_key("t1", date, 0)]
    rows = pq.read_table(io.BytesIO(files[layout.day_key("t1", date, 0)])).to_pylist()
    assert [r["event_id"] for r in rows] == ids
    # And sealed events carry their leaf index in the log, the others none
    store = IntegrityStore()
    leaves = {r["event_id"]: r["leaf_index"] for r in rows}
    assert [leaves[e.event_id] for e in sealed] == [store.leaf_index("t1", e.event_id) for e in sealed] == list(range(300))
    assert all(leaves[e.event_id] is None for e in unsealed)

    # When compaction runs again; Then nothing changes
    assert compact({}, CompactCtx())["days_compacted"] == 0
    assert objects(layout.day_prefix("t1", date)) == files


def test_a_crash_between_the_day_file_and_deleting_the_parts_still_reads_each_event_once(archive):
    # Given a day of t1 archived twice over (duplicated stream delivery)
    events = events_at("t1", DAY, 50)
    for _ in range(2):
        dispatch(stream_batch(events), Ctx())
    drain(archive, archive_writer)
    date, ids = layout.date_of(events[0].created_at), sorted(e.event_id for e in events)
    # When compaction stops after writing the day file, before deleting the parts
    from maip_events import aws

    s3 = aws.client("s3")

    def crash(**_):
        raise ConnectionError("the compaction stopped here")

    s3.meta.events.register("before-call.s3.DeleteObjects", crash, unique_id="crash")
    try:
        compact({}, CompactCtx())
    finally:
        s3.meta.events.unregister("before-call.s3.DeleteObjects", unique_id="crash")
    names = sorted(k.rsplit("/", 1)[1] for k in objects(layout.day_prefix("t1", date)))
    assert names[0] == "day-0000.parquet" and names[1].startswith("part-")
    # Then a reader of the prefix still finds every event exactly once
    assert [r["event_id"] for r in read_day("t1", date)] == ids
    # When the next run comes; Then it finishes the day: the day file alone, each event once
    compact({}, CompactCtx())
    assert list(objects(layout.day_prefix("t1", date))) == [layout.day_key("t1", date, 0)]
    assert [r["event_id"] for r in all_rows("t1", date)] == ids


def test_expiry_deletes_only_the_tenants_days_older_than_its_archive_days(archive):
    now = datetime.now(timezone.utc).replace(hour=12, minute=0)  # three events 7 s apart never straddle midnight
    # Given tenant "old" (archive 365 days) with events 400 and 100 days old, and tenant "keep" (3,653 days)
    # with events 400 days old
    TenantSettingsStore().set_tiers("old", hot_days=30, archive_days=365)
    TenantSettingsStore().set_tiers("keep", hot_days=30, archive_days=3653)
    ancient, recent = events_at("old", now - timedelta(days=400), 3), events_at("old", now - timedelta(days=100), 3)
    kept = events_at("keep", now - timedelta(days=400), 3)
    dispatch(stream_batch(ancient + recent + kept), Ctx())
    drain(archive, archive_writer)
    day = {name: layout.date_of(events[0].created_at) for name, events in (("ancient", ancient), ("recent", recent), ("kept", kept))}
    # When compaction runs
    done = compact({}, CompactCtx())
    # Then the 400-day-old day of "old" is gone, its 100-day-old day is compacted, "keep" is untouched by expiry
    assert done["days_expired"] == 1
    assert objects(layout.day_prefix("old", day["ancient"])) == {}
    assert [r["event_id"] for r in read_day("old", day["recent"])] == sorted(e.event_id for e in recent)
    assert [r["event_id"] for r in read_day("keep", day["kept"])] == sorted(e.event_id for e in kept)
    # When "old" lowers its archive days to 50; Then the next run deletes its 100-day-old day too, nothing of "keep"
    TenantSettingsStore().set_tiers("old", archive_days=50)
    assert compact({}, CompactCtx())["days_expired"] == 1
    assert objects(layout.tenant_prefix("old")) == {}
    assert [r["event_id"] for r in read_day("keep", day["kept"])] == sorted(e.event_id for e in kept)


def test_a_part_that_cannot_be_written_fails_its_messages_only(archive):
    # Given an archive message of t1 and one of t2 in one SQS batch, and S3 refusing t1's part
    dispatch(stream_batch(events_at("t1", DAY, 2) + events_at("t2", DAY, 2)), Ctx())
    sqs = boto3.client("sqs", region_name="us-east-1")
    received = sqs.receive_message(QueueUrl=archive, MaxNumberOfMessages=10)["Messages"]
    records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"]} for m in received]
    from maip_events import aws

    s3 = aws.client("s3")

    def refuse(params, **_):
        if "tenant=t1/" in params["Key"]:
            raise ConnectionError("S3 is unreachable")

    s3.meta.events.register("before-parameter-build.s3.PutObject", refuse, unique_id="refuse")
    try:
        response = archive_writer({"Records": records}, Ctx())
    finally:
        s3.meta.events.unregister("before-parameter-build.s3.PutObject", unique_id="refuse")
    # Then t1's message is reported failed (it comes back), t2's part is written
    t1 = [r["messageId"] for r in records if '"tenant_id":"t1"' in r["body"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": i} for i in t1]}
    date = layout.date_of(DAY.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    assert objects(layout.day_prefix("t1", date)) == {} and len(read_day("t2", date)) == 2


def test_late_parts_of_a_compacted_day_are_compacted_into_it_again(archive):
    # Given a compacted day of t1
    first = events_at("t1", DAY, 30)
    dispatch(stream_batch(first), Ctx())
    drain(archive, archive_writer)
    compact({}, CompactCtx())
    date = layout.date_of(first[0].created_at)
    # When a late batch arrives for it: new events, and some already compacted
    late = events_at("t1", DAY + timedelta(hours=5), 5)
    dispatch(stream_batch(first[:10] + late), Ctx())
    drain(archive, archive_writer)
    assert compact({}, CompactCtx())["days_compacted"] == 1
    # Then the day is one new day file (numbered after the old one, which is gone) holding each event once
    files = objects(layout.day_prefix("t1", date))
    assert list(files) == [layout.day_key("t1", date, 1)]
    assert [r["event_id"] for r in all_rows("t1", date)] == sorted(e.event_id for e in first + late)
