"""The archive writer: ArchiveQueue (the dispatcher's archive messages) -> one Parquet part per tenant and UTC
day of each SQS batch, in the archive bucket (layout.part_key, layout.SCHEMA, zstd, rows sorted by event id).

At least once, like every queue consumer here: a group whose PutObject fails reports its messages as failed
(SQS hands them back; after 5 receives they go to ArchiveDeadLetterQueue), and a crash after PutObject but
before the batch is acknowledged writes the same events again in another part. Parts may therefore repeat
events; compaction (compact.py) keeps one row per event id and readers drop repeats until then.

Why this writer costs least per event (us-east-1 list prices, 2025; ~1 KB events, one tenant at 5 events/s):
- Amazon Data Firehose bills each record rounded up to 5 KB: 10^6 events are 4.77 GB of ingestion at $0.029/GB
  = $0.138, Parquet conversion $0.018/GB on the same = $0.086, dynamic partitioning (tenant/date prefixes)
  $0.020/GB = at least $0.019, plus $0.005 per 1,000 objects: >= $0.24 per million events at ANY rate, before
  what feeds it (Firehose cannot read DynamoDB Streams: a Kinesis stream, or a Lambda calling PutRecordBatch).
- This writer rides on the dispatcher, which already reads the stream: per stream batch (~1 s, ~5 events) and
  tenant one ~5.5 KB SQS message. 10^6 events = 200,000 SendMessageBatch requests + ~40,000 receives/deletes
  (10 messages per call, under 64 KB) at $0.40/million = $0.096; with a 60 s batching window one invocation
  per ~300 events: 3,334 invocations ($0.0007) of ~0.5 s at 1 GB arm64 ($0.0000133/GB-s: $0.022) and 3,334
  PUTs at $0.005/1,000 ($0.017). About $0.14 per million, and it falls with the rate (SQS bills per 64 KB,
  not per record: at 100 events/s ~$0.015), where Firehose's per-record price stays. Compaction adds about
  $0.001 (one rewrite per tenant-day). S3 storage is the same Parquet either way.
"""
from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from aws_lambda_powertools import Logger

from maip_events import aws
from maip_events.archive import layout
from maip_events.archive.messages import parse
from maip_events.ids import new_ulid
from maip_events.models.events import StoredEvent
from maip_events.settings import get_settings
from maip_events.siem.ocsf import uids

logger = Logger(service="maip-events")


def row(event: StoredEvent) -> dict[str, Any]:
    class_uid, type_uid = uids(event.event_type)
    return {"event_id": event.event_id, "tenant_id": event.tenant_id, "event_type": event.event_type,
            "agent_id": event.agent_id, "resource_id": event.resource_id, "severity": event.severity,
            "created_at": event.created_at, "payload": event.payload_json or "{}", "shard": event.shard,
            "class_uid": class_uid, "type_uid": type_uid, "leaf_index": None}  # the leaf: filled by compaction


def table_of(events: list[StoredEvent]) -> pa.Table:
    """The events as rows of layout.SCHEMA, one per event id, sorted by id."""
    unique = {e.event_id: e for e in events}
    return pa.Table.from_pylist([row(unique[i]) for i in sorted(unique)], schema=layout.SCHEMA)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=layout.COMPRESSION, row_group_size=layout.ROW_GROUP_ROWS)
    return sink.getvalue().to_pybytes()


def write_part(tenant_id: str, date: str, events: list[StoredEvent]) -> str:
    """One new part (a fresh ULID name, so a retry never overwrites another writer's part); its key."""
    key = layout.part_key(tenant_id, date, str(new_ulid()))
    aws.client("s3").put_object(Bucket=get_settings().archive_bucket, Key=key, Body=parquet_bytes(table_of(events)))
    return key


def handle_batch(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    records = event.get("Records") or []
    groups: dict[tuple[str, str], tuple[list[StoredEvent], set[str]]] = {}
    failed: set[str] = set()
    for record in records:
        try:
            message = parse(record["body"])
        except Exception:  # noqa: BLE001 - never readable: fails until SQS moves it to the dead-letter queue
            logger.exception("archive: unreadable message", extra={"message_id": record.get("messageId")})
            failed.add(record["messageId"])
            continue
        for stored in message.events:
            events, ids = groups.setdefault((stored.tenant_id, layout.date_of(stored.created_at)), ([], set()))
            events.append(stored)
            ids.add(record["messageId"])
    for (tenant_id, date), (events, ids) in groups.items():
        try:
            key = write_part(tenant_id, date, events)
        except Exception:  # noqa: BLE001 - S3 refused: these messages come back, the other groups are done
            logger.exception("archive: writing a part failed", extra={"tenant_id": tenant_id, "date": date})
            failed |= ids
            continue
        logger.info("archive: part written", extra={"tenant_id": tenant_id, "date": date, "events": len(events), "key": key})
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in sorted(failed)]}
