"""The archive writer: ArchiveQueue (the dispatcher's archive messages) -> one Parquet part per tenant and UTC
day of each SQS batch, in the archive bucket (layout.part_key, layout.SCHEMA, zstd, rows sorted by event id).

At least once, like every queue consumer here: a group whose PutObject fails reports its messages as failed
(SQS hands them back; after 5 receives they go to ArchiveDeadLetterQueue), and a crash after PutObject but
before the batch is acknowledged writes the same events again in another part. Parts may therefore repeat
events; compaction (compact.py) keeps one row per event id and readers drop repeats until then.

Why this writer costs least per event (us-east-1 list prices, 2025; ~1 KB events, one tenant):
- Amazon Data Firehose bills each record rounded up to 5 KB: 10^6 events are 4.77 GB of ingestion at $0.029/GB
  = $0.138, Parquet conversion $0.018/GB on the same = $0.086, dynamic partitioning (tenant/date prefixes)
  $0.020/GB on the real 0.95 GB = $0.019, plus $0.005 per 1,000 objects (and JQ hours if it parses the keys):
  >= $0.24 per million events at EVERY rate. It would still need a feeder (it cannot read DynamoDB Streams:
  the dispatcher calling PutRecordBatch is the cheapest), a transform Lambda for the OCSF columns, and the
  same deduplication (it is at least once too).
- This writer rides on the dispatcher, and SQS bills per request of up to 64 KB, not per record: per stream
  batch (~1 s) and tenant one message = one send, about one receive (Lambda long-polls while its 60 s window
  fills) and a tenth of a delete batch. At 5 events/s (~5 events per message) 10^6 events are 200,000 messages
  = ~420,000 requests at $0.40/million = $0.168; with at most two batches in flight (MaximumConcurrency 2) two
  invocations a minute: 6,667 invocations of ~0.3 s at 1 GB arm64 ($0.0000133/GB-s) = $0.028 and 6,667 PUTs at
  $0.005/1,000 = $0.033. About $0.23 per million: on par with Firehose at this rate. At 100 events/s (~100
  events, 2 x 64 KB per message): 10,000 messages = ~42,000 requests ($0.017), ~360 invocations that fill 6 MB
  ($0.010) and ~360 PUTs ($0.002): about $0.03 per million, an eighth of Firehose, and less again at 1,000/s.
  Compaction adds about $0.001 per million (one rewrite per tenant-day). S3 storage is the same Parquet.
  The cliff: a tenant sending less than an event per minute gets about one part (one PUT) per event until
  compaction, as Firehose's per-partition buffers would give one object per event.
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
