"""Reads the archive (layout.py) the way the list path reads the table: a tenant's events of a window, in id order,
matching an EventFilter, as the same attribute-value items store/events.py writes, so lists, exports, totals and
proofs read both tiers alike.

Day by day, lazily: the tenant's day prefixes are listed once, then each day is read when the reader reaches it
(a first page reads one or two days, never a year). A day is every file under its prefix (parts, and the
compacted `day-` files), deduplicated by event id; each file is read through its footer, skipping row groups
whose event-id range misses the window, and only the columns needed. pyarrow is imported on first use: Lambdas
that never read the archive do not load it.
"""
from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator

from ulid import ULID

from maip_events import aws
from maip_events.ids import EVENT_PREFIX, highest_event_id_ms, lowest_event_id_ms
from maip_events.settings import get_settings

if TYPE_CHECKING:
    import pyarrow as pa

    from maip_events.store.events import EventFilter

DAY_MS = 86_400_000
# What a listed item holds (to_item's attributes without the index keys and TTL).
ITEM_COLUMNS = ["event_id", "tenant_id", "shard", "event_type", "agent_id", "resource_id", "severity", "created_at", "payload"]
WHOLE_OBJECT_MAX = 8 * 1024 * 1024  # smaller files are fetched in one GET; larger ones by ranges (footer, columns)
ROWS_PER_SLICE = 512  # rows turned into items at a time: a page of 50 does not build a whole day's dicts


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, timezone.utc).strftime("%Y-%m-%d")


def _day_start(date: str) -> int:
    return int(datetime.fromisoformat(date).replace(tzinfo=timezone.utc).timestamp() * 1000)


def _id_ms(event_id: str) -> int | None:
    """The creation millisecond of an event id (None: not an event id)."""
    if not event_id.startswith(EVENT_PREFIX):
        return None
    try:
        return ULID.from_str(event_id[len(EVENT_PREFIX):]).milliseconds
    except ValueError:
        return None


def predicate(flt: "EventFilter", id_low: str, id_high: str, after: str | None = None,
              ascending: bool = False) -> tuple[Any, list[str]]:
    """The filter as one pyarrow expression over ids in [id_low, id_high] (strictly past `after` in the read order),
    and the columns it reads. The one definition of an EventFilter on archived rows (items, counts)."""
    import pyarrow.compute as pc

    field = pc.field
    expr = (field("event_id") >= id_low) & (field("event_id") <= id_high)
    columns = ["event_id"]
    if after:
        expr &= (field("event_id") > after) if ascending else (field("event_id") < after)
    types = flt.type_set()
    if types is not None:
        expr &= field("event_type").isin(sorted(types))
        columns.append("event_type")
    if flt.severities is not None:
        expr &= field("severity").isin(sorted(flt.severities))
        columns.append("severity")
    for name, value, excluded in (("agent_id", flt.agent_id, flt.not_agents), ("resource_id", flt.resource_id, flt.not_resources)):
        if value is not None:
            expr &= field(name) == value
        if excluded:  # an event without an agent (resource) matches a negation of agents (resources)
            expr &= field(name).is_null() | ~field(name).isin(sorted(excluded))
        if value is not None or excluded:
            columns.append(name)
    return expr, columns


def _item(row: dict[str, Any]) -> dict[str, Any]:
    """An archived row as the item store/events.py to_item writes (no index keys, no TTL: it is not in the table)."""
    item: dict[str, Any] = {
        "event_id": {"S": row["event_id"]},
        "tenant_id": {"S": row["tenant_id"]},
        "shard": {"N": str(row["shard"])},
        "event_type": {"S": row["event_type"]},
        "severity": {"S": row["severity"]},
        "created_at": {"S": row["created_at"]},
        "payload": {"S": row["payload"]},
    }
    if row["agent_id"] is not None:
        item["agent_id"] = {"S": row["agent_id"]}
    if row["resource_id"] is not None:
        item["resource_id"] = {"S": row["resource_id"]}
    return item


class _Ranged(io.RawIOBase):
    """One S3 object as a seekable file read by ranged GETs: pyarrow then fetches its footer and the column chunks
    it reads, not the whole object."""

    def __init__(self, client: Any, bucket: str, key: str, size: int):
        super().__init__()
        self.client, self.bucket, self.key, self.size, self.position = client, bucket, key, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.position)
        if n <= 0:
            return 0
        data = self.client.get_object(Bucket=self.bucket, Key=self.key,
                                      Range=f"bytes={self.position}-{self.position + n - 1}")["Body"].read()
        buffer[:len(data)] = data
        self.position += len(data)
        return len(data)


class ArchiveReader:
    def __init__(self, client: Any = None, bucket: str | None = None):
        self._client = client
        self.bucket = bucket or get_settings().archive_bucket

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("s3")
        return self._client

    # ---- listing -------------------------------------------------------------------------------------------

    def _days(self, tenant_id: str, low_ms: int, high_ms: int) -> list[str]:
        """The tenant's archived days (YYYY-MM-DD) meeting [low_ms, high_ms), oldest first: one LIST of its own
        prefix, started at the window's first day."""
        from maip_events.archive import layout

        prefix = layout.tenant_prefix(tenant_id)
        first, last = _date(low_ms), _date(high_ms - 1)
        start = len(layout.day_prefix(tenant_id, "")) - 1  # where the date begins in a day prefix
        found: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/", StartAfter=layout.day_prefix(tenant_id, first)[:-1])
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                date = common["Prefix"][start:-1]
                if date > last:
                    return found
                if date >= first:
                    found.append(date)
        return found

    def _files(self, tenant_id: str, date: str) -> list[tuple[str, int]]:
        """(key, size) of every Parquet file of the tenant's day."""
        from maip_events.archive import layout

        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=layout.day_prefix(tenant_id, date))
        return [(o["Key"], o["Size"]) for page in pages for o in page.get("Contents", []) if o["Key"].endswith(".parquet")]

    def _open(self, key: str, size: int) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if size <= WHOLE_OBJECT_MAX:
            return pq.ParquetFile(pa.BufferReader(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()))
        return pq.ParquetFile(pa.PythonFile(_Ranged(self.client, self.bucket, key, size), mode="r"), pre_buffer=True)

    # ---- one day -------------------------------------------------------------------------------------------

    def _day(self, tenant_id: str, date: str, columns: list[str], expr: Any, id_low: str, id_high: str,
             files: list[tuple[str, int]] | None = None) -> "pa.Table | None":
        """The day's matching rows (these columns), each event once, ascending by id; None if none match."""
        import pyarrow as pa
        import pyarrow.compute as pc

        tables = []
        for key, size in self._files(tenant_id, date) if files is None else files:
            parquet = self._open(key, size)
            groups = [i for i, _, _ in _groups_meeting(parquet, id_low, id_high)]
            if groups:
                tables.append(parquet.read_row_groups(groups, columns=columns).filter(expr))
        table = pa.concat_tables(tables).sort_by("event_id") if tables else None
        if table is None or not table.num_rows:
            return None
        ids = table.column("event_id").combine_chunks()
        if table.num_rows > 1:  # parts repeat events, a day mid-compaction holds them twice: keep the first row of each id
            table = table.filter(pa.concat_arrays([pa.array([True]), pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1))]))
        return table

    def _day_tables(self, tenant_id: str, date: str, expr: Any, id_low: str, id_high: str, ascending: bool) -> Iterator["pa.Table"]:
        """The day's matching items' rows in read order (each table ascending by id). A compacted day (sorted,
        unique, row groups not overlapping) is read one row group at a time from the end the read starts at,
        so a page holds one row group, not the day; any other day is read at once and deduplicated."""
        files = self._files(tenant_id, date)
        if files and all(_compacted(key) for key, _ in files):
            meeting = [(low, high, i, parquet) for parquet in (self._open(key, size) for key, size in files)
                       for i, low, high in _groups_meeting(parquet, id_low, id_high)]
            groups = sorted((g for g in meeting if g[0] is not None), key=lambda g: g[0])
            if len(groups) == len(meeting) and all(a[1] < b[0] for a, b in zip(groups, groups[1:])):
                for _, _, i, parquet in groups if ascending else reversed(groups):
                    table = parquet.read_row_group(i, columns=ITEM_COLUMNS).filter(expr)
                    if table.num_rows:
                        yield table.sort_by("event_id")
                return
        table = self._day(tenant_id, date, ITEM_COLUMNS, expr, id_low, id_high, files)
        if table is not None:
            yield table

    # ---- what the store reads ------------------------------------------------------------------------------

    def items(self, flt: "EventFilter", low_ms: int, high_ms: int, ascending: bool = False,
              after: str | None = None) -> Iterator[dict[str, Any]]:
        """The matching events of [low_ms, high_ms) as table items, newest first (or oldest first), strictly after
        `after`; a day is read when the iteration reaches it."""
        if flt.matches_nothing():
            return
        after_ms = _id_ms(after) if after else None
        if after_ms is not None:
            low_ms, high_ms = (max(low_ms, after_ms), high_ms) if ascending else (low_ms, min(high_ms, after_ms + 1))
        if low_ms >= high_ms:
            return
        id_low, id_high = lowest_event_id_ms(low_ms), highest_event_id_ms(high_ms - 1)
        expr, _ = predicate(flt, id_low, id_high, after, ascending)
        days = self._days(flt.tenant_id, low_ms, high_ms)
        for date in days if ascending else reversed(days):
            for table in self._day_tables(flt.tenant_id, date, expr, id_low, id_high, ascending):
                starts = range(0, table.num_rows, ROWS_PER_SLICE)
                for start in starts if ascending else reversed(starts):
                    rows = table.slice(start, ROWS_PER_SLICE).to_pylist()
                    for row in rows if ascending else reversed(rows):
                        yield _item(row)

    def count(self, flt: "EventFilter", low_ms: int, high_ms: int) -> int:
        """Matching events of [low_ms, high_ms), each id once: from the files' row counts for a whole compacted day
        with no condition, else from the id column (and the filtered columns) alone."""
        if flt.matches_nothing() or low_ms >= high_ms:
            return 0
        id_low, id_high = lowest_event_id_ms(low_ms), highest_event_id_ms(high_ms - 1)
        expr, columns = predicate(flt, id_low, id_high)
        unconditioned = columns == ["event_id"]
        total = 0
        for date in self._days(flt.tenant_id, low_ms, high_ms):
            files = self._files(flt.tenant_id, date)
            whole = low_ms <= _day_start(date) and _day_start(date) + DAY_MS <= high_ms
            if unconditioned and whole and files and all(_compacted(key) for key, _ in files):
                total += sum(self._open(key, size).metadata.num_rows for key, size in files)  # compacted: unique ids
                continue
            table = self._day(flt.tenant_id, date, columns, expr, id_low, id_high)
            total += table.num_rows if table is not None else 0
        return total

    def get_many(self, tenant_id: str, event_ids: list[str]) -> list[dict[str, Any]]:
        """The archived items with these ids, in the given order (ids not archived are skipped); each id's ULID time
        names its day, so only those days are read."""
        import pyarrow.compute as pc

        by_day: dict[str, list[str]] = {}
        for event_id in dict.fromkeys(event_ids):
            ms = _id_ms(event_id)
            if ms is not None:
                by_day.setdefault(_date(ms), []).append(event_id)
        found: dict[str, dict[str, Any]] = {}
        for date, ids in by_day.items():
            table = self._day(tenant_id, date, ITEM_COLUMNS, pc.field("event_id").isin(ids), min(ids), max(ids))
            for row in table.to_pylist() if table is not None else []:
                found[row["event_id"]] = _item(row)
        return [found[i] for i in event_ids if i in found]


def _compacted(key: str) -> bool:
    return key.rsplit("/", 1)[-1].startswith("day-")


def _groups_meeting(parquet: Any, id_low: str, id_high: str) -> list[tuple[int, str | None, str | None]]:
    """(index, lowest id, highest id) of the row groups whose event-id statistics meet [id_low, id_high] (every
    group without statistics, its ids None)."""
    meta = parquet.metadata
    column = parquet.schema_arrow.get_field_index("event_id")
    found: list[tuple[int, str | None, str | None]] = []
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(column).statistics
        if stats is None or not stats.has_min_max:
            found.append((i, None, None))
        elif stats.min <= id_high and stats.max >= id_low:
            found.append((i, stats.min, stats.max))
    return found
