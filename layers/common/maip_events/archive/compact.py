"""Compaction and expiry of the archive, run hourly (CompactFunction's schedule).

For every tenant-day prefix that holds `part-` files and is closed (its UTC day ended more than
CLOSE_AFTER_MS ago, so the writer's late batches have landed): read every file of the day, keep one row per
event id (the one with a leaf index if any), fill `leaf_index` where the tenant's integrity log has sealed the
event, sort by id and write `day-NNNN.parquet` files of about layout.COMPACT_TARGET_BYTES in row groups of
layout.ROW_GROUP_ROWS, THEN delete the day's earlier files and parts (old day files first, in the same request
order, so whenever an earlier file survives a crash a part does too and the next run cleans it up). A crash in
between only leaves repeats that readers drop. New day files take numbers above the existing ones, so a file
readers may be reading is never overwritten with other rows. A day whose parts add nothing to its (unique) day
files, e.g. after such a crash, only loses its parts. A compacted day without parts is never touched again.

The day is processed in hourly slices of event ids (ids are time-ordered), so memory holds the day's compressed
files plus one hour of rows, not the whole day decoded.

Expiry by each tenant's archive days with no lifecycle rule per tenant: the day prefixes older than the
tenant's Tiers.visible_from (TenantSettingsStore().tiers()) are deleted here; the bucket's one lifecycle rule
is only a backstop (3,660 days)."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from aws_lambda_powertools import Logger

from maip_events import aws
from maip_events.archive import layout
from maip_events.ids import lowest_event_id_ms
from maip_events.integrity.store import IntegrityStore
from maip_events.integrity.tree import TILE_WIDTH
from maip_events.settings import get_settings
from maip_events.store.tenants import DAY_MS, TenantSettingsStore

logger = Logger(service="maip-events")

CLOSE_AFTER_MS = 15 * 60 * 1000
SLICE_MS = 3_600_000
RESERVE_MS = 120_000  # a run starts no new day with less time than this left (the next run goes on)
DELETE_MAX_KEYS = 1000  # DeleteObjects' limit
FETCH_THREADS = 16  # a day may hold thousands of parts: GETs in parallel (boto3 clients are thread-safe)


@dataclass
class _Object:
    key: str
    size: int

    @property
    def is_part(self) -> bool:
        return self.key.rsplit("/", 1)[-1].startswith("part-")


@dataclass
class _File:
    key: str
    parquet: pq.ParquetFile
    size: int


def run(context: Any = None, now: datetime | None = None) -> dict[str, int]:
    """One pass over every tenant of the bucket; returns what it did."""
    moment = now or datetime.now(timezone.utc)
    compactor = Compactor()
    done = {"days_compacted": 0, "days_expired": 0}
    for tenant_id in compactor.tenants():
        try:
            for kind in compactor.tenant(tenant_id, moment, context):
                done[kind] += 1
        except Exception:  # noqa: BLE001 - e.g. its settings unreadable: the other tenants go on, the next run retries
            logger.exception("archive: tenant failed", extra={"tenant_id": tenant_id})
    logger.info("archive: compaction run", extra=done)
    return done


class Compactor:
    def __init__(self, s3: Any = None, bucket: str | None = None, integrity: IntegrityStore | None = None,
                 tenants: TenantSettingsStore | None = None):
        self.s3 = s3 or aws.client("s3")
        self.bucket = bucket or get_settings().archive_bucket
        self.integrity = integrity or IntegrityStore()
        self.tenant_settings = tenants or TenantSettingsStore()

    # ---- listing ----------------------------------------------------------------------------------------------

    def tenants(self) -> Iterator[str]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=layout.PREFIX, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(layout.PREFIX):].rstrip("/")
                if name.startswith("tenant="):
                    yield name[len("tenant="):]

    def days(self, tenant_id: str) -> dict[str, list[_Object]]:
        """The tenant's objects by UTC date (one listing of its prefix, ~1 request per 1,000 files)."""
        found: dict[str, list[_Object]] = {}
        prefix = layout.tenant_prefix(tenant_id)
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                folder = item["Key"][len(prefix):].split("/", 1)[0]
                if folder.startswith("date="):
                    found.setdefault(folder[len("date="):], []).append(_Object(item["Key"], item["Size"]))
        return found

    # ---- one tenant --------------------------------------------------------------------------------------------

    def tenant(self, tenant_id: str, now: datetime, context: Any = None) -> Iterator[str]:
        now_ms = int(now.timestamp() * 1000)
        oldest = _date(self.tenant_settings.tiers(tenant_id).visible_from(now_ms))
        for date, objects in sorted(self.days(tenant_id).items()):
            if context is not None and context.get_remaining_time_in_millis() < RESERVE_MS:
                return
            try:
                if date < oldest:
                    self._delete([o.key for o in objects])
                    logger.info("archive: day expired", extra={"tenant_id": tenant_id, "date": date, "files": len(objects)})
                    yield "days_expired"
                elif any(o.is_part for o in objects) and _day_start(date) + DAY_MS + CLOSE_AFTER_MS <= now_ms:
                    self.compact(tenant_id, date, objects)
                    yield "days_compacted"
            except Exception:  # noqa: BLE001 - one broken day never blocks the others; the next run retries it
                logger.exception("archive: day failed", extra={"tenant_id": tenant_id, "date": date})

    # ---- one day -------------------------------------------------------------------------------------------------

    def compact(self, tenant_id: str, date: str, objects: list[_Object]) -> list[str]:
        """Compacts one tenant-day; returns the keys of its day files."""
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
            bodies = list(pool.map(self._get, [o.key for o in objects]))
        files = [_File(o.key, pq.ParquetFile(pa.BufferReader(body)), o.size) for o, body in zip(objects, bodies)]
        part_keys = {o.key for o in objects if o.is_part}
        parts, days = [f for f in files if f.key in part_keys], [f for f in files if f.key not in part_keys]
        stats = {"tenant_id": tenant_id, "date": date, "files_in": len(files), "bytes_in": sum(f.size for f in files),
                 "rows_in": sum(f.parquet.metadata.num_rows for f in files)}
        if days and _adds_nothing(days, parts):  # e.g. a crash after the day files were written
            self._delete([f.key for f in parts])
            logger.info("archive: parts already compacted, deleted", extra={
                **stats, "rows_out": sum(f.parquet.metadata.num_rows for f in days), "files_out": len(days)})
            return [f.key for f in days]
        numbers = [int(f.key.rsplit("day-", 1)[1].split(".")[0]) for f in days]
        out = _DayWriter(self, tenant_id, date, max(numbers) + 1 if numbers else 0)
        start = _day_start(date)
        for hour in range(24):  # ids are time-ordered: the inner bounds are hours, the outer ones open
            low = lowest_event_id_ms(start + hour * SLICE_MS) if hour else None
            high = lowest_event_id_ms(start + (hour + 1) * SLICE_MS) if hour < 23 else None
            rows = _slice(files, low, high)
            if rows is not None:
                out.add(self._with_leaves(tenant_id, _unique(rows)))
        keys = out.close()
        # Earlier day files first: if this stops half-way, a part survives and the next run finishes the day.
        self._delete([f.key for f in days] + [f.key for f in parts])
        logger.info("archive: day compacted", extra={**stats, "rows_out": out.rows, "files_out": len(keys),
                                                     "bytes_out": out.bytes, "seconds": round(time.monotonic() - started, 3)})
        return keys

    def _with_leaves(self, tenant_id: str, table: pa.Table) -> pa.Table:
        """`leaf_index` filled for the rows the integrity log has sealed (the others stay null)."""
        leaves = table.column("leaf_index").to_pylist()
        ids = table.column("event_id").to_pylist()
        missing = [event_id for event_id, leaf in zip(ids, leaves) if leaf is None]
        if not missing:
            return table
        found = self._leaf_indexes(tenant_id, missing)
        filled = pa.array([found.get(event_id) if leaf is None else leaf for event_id, leaf in zip(ids, leaves)], pa.int64())
        return table.set_column(layout.SCHEMA.get_field_index("leaf_index"), layout.SCHEMA.field("leaf_index"), filled)

    def _leaf_indexes(self, tenant_id: str, ids: list[str]) -> dict[str, int]:
        """event id -> leaf index for the sorted `ids` that are sealed: the id chunks from the one holding ids[0]
        on (leaves are in id order), read 100 per request, until past ids[-1] or the end of the log."""
        size = self.integrity.head(tenant_id).tree_size
        if not size:
            return {}
        located = self.integrity.locate(tenant_id, ids[0])
        chunk, last = (located[0] // TILE_WIDTH if located else 0), (size - 1) // TILE_WIDTH
        wanted, found = set(ids), dict[str, int]()
        while chunk <= last:
            numbers = list(range(chunk, min(chunk + 100, last + 1)))
            chunks = self.integrity.id_chunks(tenant_id, numbers)
            for number in numbers:
                for offset, event_id in enumerate(chunks.get(number, [])):
                    if event_id in wanted:
                        found[event_id] = number * TILE_WIDTH + offset
            tail = chunks.get(numbers[-1])
            if not tail or tail[-1] >= ids[-1]:
                break
            chunk = numbers[-1] + 1
        return found

    # ---- S3 ------------------------------------------------------------------------------------------------------

    def _get(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), DELETE_MAX_KEYS):
            chunk = keys[start:start + DELETE_MAX_KEYS]
            response = self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
            if response.get("Errors"):
                raise RuntimeError(f"{len(response['Errors'])} archive objects could not be deleted")


class _DayWriter:
    """Streams sorted rows into day files: row groups of ROW_GROUP_ROWS, a new file past COMPACT_TARGET_BYTES."""

    def __init__(self, compactor: Compactor, tenant_id: str, date: str, first_number: int):
        self.compactor, self.tenant_id, self.date, self.number = compactor, tenant_id, date, first_number
        self.pending: list[pa.Table] = []
        self.pending_rows = self.rows = self.bytes = 0
        self.keys: list[str] = []
        self.sink: pa.BufferOutputStream | None = None
        self.writer: pq.ParquetWriter | None = None

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self.pending.append(table)
            self.pending_rows += table.num_rows
        while self.pending_rows >= layout.ROW_GROUP_ROWS:
            self._group(layout.ROW_GROUP_ROWS)

    def _group(self, rows: int) -> None:
        table = pa.concat_tables(self.pending)
        rest = table.slice(rows)
        self.pending, self.pending_rows = ([rest] if rest.num_rows else []), rest.num_rows
        if self.writer is None:
            self.sink = pa.BufferOutputStream()
            self.writer = pq.ParquetWriter(self.sink, layout.SCHEMA, compression=layout.COMPRESSION)
        self.writer.write_table(table.slice(0, rows), row_group_size=layout.ROW_GROUP_ROWS)
        self.rows += rows
        if self.sink.tell() >= layout.COMPACT_TARGET_BYTES:
            self._file()

    def _file(self) -> None:
        self.writer.close()
        body = self.sink.getvalue().to_pybytes()
        key = layout.day_key(self.tenant_id, self.date, self.number)
        self.compactor.put(key, body)
        self.keys.append(key)
        self.number, self.bytes, self.writer, self.sink = self.number + 1, self.bytes + len(body), None, None

    def close(self) -> list[str]:
        if self.pending_rows:
            self._group(self.pending_rows)
        if self.writer is not None:
            self._file()
        return self.keys


def _slice(files: list[_File], low: str | None, high: str | None) -> pa.Table | None:
    """Rows of every file with low <= event_id < high (None: unbounded), reading only row groups that may hold some."""
    tables = []
    for f in files:
        groups = _row_groups(f.parquet, low, high)
        if not groups:
            continue
        table = f.parquet.read_row_groups(groups).select(layout.SCHEMA.names).cast(layout.SCHEMA)
        ids = table.column("event_id")
        mask = None
        for bound, test in ((low, pc.greater_equal), (high, pc.less)):
            if bound is not None:
                condition = test(ids, pa.scalar(bound))
                mask = condition if mask is None else pc.and_(mask, condition)
        tables.append(table.filter(mask) if mask is not None else table)
    return pa.concat_tables(tables) if tables else None


def _row_groups(parquet: pq.ParquetFile, low: str | None, high: str | None) -> list[int]:
    column = parquet.schema_arrow.get_field_index("event_id")
    chosen = []
    for index in range(parquet.metadata.num_row_groups):
        stats = parquet.metadata.row_group(index).column(column).statistics
        if stats is None or not stats.has_min_max or ((high is None or stats.min < high) and (low is None or stats.max >= low)):
            chosen.append(index)
    return chosen


def _unique(table: pa.Table) -> pa.Table:
    """One row per event id, sorted by id; of repeats, the one with a leaf index if any."""
    table = table.sort_by([("event_id", "ascending"), ("leaf_index", "descending")])  # nulls sort last
    ids = table.column("event_id").combine_chunks()
    if len(ids) < 2:
        return table
    changed = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1))
    return table.filter(pa.concat_arrays([pa.array([True]), changed]))


def _adds_nothing(days: list[_File], parts: list[_File]) -> bool:
    """The day files hold every event id once and every part's events are among them."""
    day_ids: set[str] = set()
    rows = 0
    for f in days:
        ids = f.parquet.read(columns=["event_id"]).column("event_id").to_pylist()
        rows += len(ids)
        day_ids.update(ids)
    if rows != len(day_ids):
        return False
    return all(set(f.parquet.read(columns=["event_id"]).column("event_id").to_pylist()) <= day_ids for f in parts)


def _day_start(date: str) -> int:
    return int(datetime.fromisoformat(date).replace(tzinfo=timezone.utc).timestamp() * 1000)


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d")
