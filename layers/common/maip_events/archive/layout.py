"""Where archived events live and what their files hold: the one contract of the writer, the compaction and
the readers.

Keys: `events/tenant=<tenant id>/date=<YYYY-MM-DD>/<kind>-<name>.parquet` in the archive bucket, so one
tenant's day is one prefix (tenant ids are 1-128 of [A-Za-z0-9._:-], never '/'):
- `part-<ULID>.parquet`: written by the archive writer, one per writer batch and tenant-day. The stream is at
  least once, so parts may repeat events (and a retried batch may write a second part with the same events).
- `day-<NNNN>.parquet`: the compacted day (written by compaction once the day is closed), events unique by id
  and sorted by id, row groups of `ROW_GROUP_ROWS`; `NNNN` counts from 0000 when a day exceeds one file (a day
  compacted again because late parts arrived gets numbers above its current ones, which are then deleted).
Readers read every file of a day and keep the first row of each event id, so a day mid-compaction (new file
written, parts not yet deleted) or an uncompacted day still reads each event once.
"""
from __future__ import annotations

import pyarrow as pa

PREFIX = "events/"
COMPRESSION = "zstd"
ROW_GROUP_ROWS = 100_000
COMPACT_TARGET_BYTES = 64 * 1024 * 1024  # a compacted day is split into files of about this size

# One row per event; every list field, the payload as its stored JSON text, OCSF class/type, the Merkle leaf.
SCHEMA = pa.schema([
    pa.field("event_id", pa.string(), nullable=False),  # maip-evt:<ULID>, time-ordered
    pa.field("tenant_id", pa.string(), nullable=False),
    pa.field("event_type", pa.string(), nullable=False),
    pa.field("agent_id", pa.string()),
    pa.field("resource_id", pa.string()),
    pa.field("severity", pa.string(), nullable=False),
    pa.field("created_at", pa.string(), nullable=False),  # UTC ISO 8601 with ms and Z, as listed
    pa.field("payload", pa.string(), nullable=False),  # the metadata's stored (canonical) JSON text, "{}" if none
    pa.field("shard", pa.int32(), nullable=False),  # the write shard it was stored under
    pa.field("class_uid", pa.int32(), nullable=False),  # OCSF (siem/ocsf.py)
    pa.field("type_uid", pa.int64(), nullable=False),
    pa.field("leaf_index", pa.int64()),  # its index in the tenant's Merkle log, once sealed (filled by compaction)
])


def day_prefix(tenant_id: str, date: str) -> str:
    """`date` is YYYY-MM-DD (UTC)."""
    return f"{PREFIX}tenant={tenant_id}/date={date}/"


def tenant_prefix(tenant_id: str) -> str:
    return f"{PREFIX}tenant={tenant_id}/"


def part_key(tenant_id: str, date: str, name: str) -> str:
    return f"{day_prefix(tenant_id, date)}part-{name}.parquet"


def day_key(tenant_id: str, date: str, number: int) -> str:
    return f"{day_prefix(tenant_id, date)}day-{number:04d}.parquet"


def date_of(created_at: str) -> str:
    return created_at[:10]  # "2026-11-23" of "2026-11-23T07:36:56.123Z"
