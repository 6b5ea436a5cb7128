"""Wire formats of the log-stream destinations. One call sends one batch (one request; S3: one object per
hour partition the batch touches). Every record carries its event id (OCSF `metadata.uid`, jsonl `event_id`)
and a batch keeps the same id on every retry, so receivers can de-duplicate."""
from __future__ import annotations

import gzip
import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from maip_events import aws
from maip_events.http import client, signing
from maip_events.ids import parse_time
from maip_events.models.events import StoredEvent
from maip_events.settings import get_settings
from maip_events.siem import buckets
from maip_events.siem.records import line, record
from maip_events.store.metrics import hour_of
from maip_events.store.streams import LogStream

HEC_PATH = "/services/collector/event"
VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")  # what a credential sent in a header may contain
DATADOG_PATH = "/api/v2/logs"


@dataclass
class Outcome:
    ok: bool
    error: str | None = None
    status_code: int | None = None


def batch_id(stream_id: str, events: list[StoredEvent]) -> str:
    """Stable for the same events: the oldest event's ULID plus a digest of all ids (S3 key, `webhook-id`)."""
    ids = sorted(e.event_id for e in events)
    digest = hashlib.sha256("\n".join([stream_id, *ids]).encode()).hexdigest()[:16]
    return f"{ids[0].rsplit(':', 1)[-1]}-{digest}"


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return url if parts.path.rstrip("/").endswith(path) else url.rstrip("/") + path


def _post(url: str, headers: dict[str, str], body: bytes) -> Outcome:
    result = client.post(url, headers, body, get_settings().stream_timeout)
    return Outcome(ok=result.ok, error=result.error, status_code=result.status_code)


def _credential(value: object, name: str) -> str:
    """A header-bound credential as stored; one that is not visible ASCII fails this destination, never the batch."""
    if not isinstance(value, str) or not VISIBLE_ASCII.fullmatch(value):
        raise ValueError(f"`{name}` must be visible ASCII (fix it with PATCH)")
    return value


def splunk_hec(stream: LogStream, events: list[StoredEvent], _: str) -> Outcome:
    """HEC event endpoint: concatenated JSON event objects, `Authorization: Splunk <token>`."""
    cfg = stream.config
    objects = []
    for event in events:
        obj: dict[str, Any] = {"time": round(parse_time(event.created_at).timestamp(), 3), "host": cfg.get("host", "maip-events"),
                               "source": cfg.get("source", "maip-events"), "sourcetype": cfg.get("sourcetype", "maip:events")}
        if cfg.get("index"):
            obj["index"] = cfg["index"]
        obj["event"] = record(event, stream.format)
        objects.append(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
    body = "\n".join(objects).encode()
    headers = {"authorization": f"Splunk {_credential(cfg.get('token'), 'token')}", "content-type": "application/json"}
    return _post(_with_path(cfg["url"], HEC_PATH), headers, body)


def datadog(stream: LogStream, events: list[StoredEvent], _: str) -> Outcome:
    """Logs intake v2: a JSON array of log entries, `DD-API-KEY`, optionally gzip."""
    cfg = stream.config
    base = cfg.get("url") or f"https://http-intake.logs.{cfg.get('site', 'datadoghq.com')}"
    entries = []
    for event in events:
        tags = [f"tenant_id:{event.tenant_id}", f"event_type:{event.event_type}", f"severity:{event.severity}", *cfg.get("tags", [])]
        entries.append({"ddsource": "maip-events", "ddtags": ",".join(tags), "hostname": "maip-events",
                        "service": cfg.get("service", "maip-events"), "message": line(event, stream.format)})
    body = json.dumps(entries, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"dd-api-key": _credential(cfg.get("api_key"), "api_key"), "content-type": "application/json"}
    if cfg.get("compress", True):
        body, headers["content-encoding"] = gzip.compress(body, mtime=0), "gzip"
    return _post(_with_path(base, DATADOG_PATH), headers, body)


def https(stream: LogStream, events: list[StoredEvent], batch: str) -> Outcome:
    """Generic HTTPS: NDJSON body, signed with the Standard Webhooks headers (`webhook-id` = the batch id)."""
    body = "".join(f"{line(e, stream.format)}\n" for e in events).encode()
    timestamp = int(time.time())
    headers = {"content-type": "application/x-ndjson", **signing.headers([stream.config["secret"]], batch, timestamp, body),
               "maip-stream-id": stream.stream_id, "maip-event-count": str(len(events))}
    return _post(stream.config["url"], headers, body)


def object_key(stream: LogStream, hour: str, batch: str) -> str:
    """<prefix>tenant=<own id>/dt=YYYY-MM-DD/hour=HH/<batch id>.ndjson.gz (Hive-style partitions for Athena/Glue)."""
    return buckets.object_key(stream.tenant_id, stream.config.get("prefix", ""), hour, batch)


def s3(stream: LogStream, events: list[StoredEvent], batch: str) -> Outcome:
    """One gzip NDJSON object per hour partition; same batch, same key and same bytes: a retry overwrites."""
    by_hour: dict[str, list[StoredEvent]] = {}
    for event in events:
        by_hour.setdefault(hour_of(event.created_at), []).append(event)
    bucket = stream.config.get("bucket", "")
    if problem := buckets.bucket_problem(stream.tenant_id, bucket):  # the operator may have withdrawn it since
        return Outcome(ok=False, error=f"not sent: bucket {bucket!r} {problem}")
    try:
        keys = {hour: object_key(stream, hour, batch) for hour in by_hour}
    except ValueError as err:
        return Outcome(ok=False, error=f"not sent: {err}")
    s3_client = aws.client("s3")
    try:
        for hour, group in sorted(by_hour.items()):
            body = gzip.compress("".join(f"{line(e, stream.format)}\n" for e in group).encode(), mtime=0)
            s3_client.put_object(Bucket=bucket, Key=keys[hour], Body=body,
                              ContentType="application/x-ndjson", ContentEncoding="gzip")
    except Exception as err:  # botocore ClientError / connection errors: retried like an HTTP failure
        return Outcome(ok=False, error=f"S3 PutObject failed: {type(err).__name__}: {err}"[:500])
    return Outcome(ok=True)


SENDERS: dict[str, Callable[[LogStream, list[StoredEvent], str], Outcome]] = {
    "splunk_hec": splunk_hec, "datadog": datadog, "https": https, "s3": s3,
}


def send(stream: LogStream, events: list[StoredEvent]) -> Outcome:
    return SENDERS[stream.type](stream, events, batch_id(stream.stream_id, events))
