"""Log-stream consumer. Two event sources, one function:

- the EventsTable stream: a batch's INSERTs are grouped per tenant and per enabled, matching log stream,
  and each destination gets ONE request for the batch;
- the stream retry queue (SQS): a failed batch comes back as a message naming its events, after the
  delay of `MAIP_STREAM_RETRY_SCHEDULE` for that attempt; it is sent again (same events, same batch id)
  until it succeeds or the schedule is exhausted, then it goes to the stream dead-letter queue.

Only the failed destination is retried, so a receiver that fails and recovers gets every event once.
If the retry cannot even be queued, the stream batch is reported failed and Lambda retries all of it
(receivers may then see a batch twice: every record carries its event id for de-duplication)."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel

from maip_events import aws
from maip_events.ids import format_time, utc_now
from maip_events.models.events import StoredEvent
from maip_events.settings import get_settings
from maip_events.siem import destinations
from maip_events.store.events import from_item
from maip_events.store.streams import LogStream, StreamStore, get_events
from maip_events.webhooks.matching import matches
from maip_events.webhooks.queue import MAX_SQS_DELAY, queue_url

logger = Logger(service="maip-events")

MAX_PARALLEL_REQUESTS = 8


class RetryMessage(BaseModel):
    tenant_id: str
    stream_id: str
    event_ids: list[str]
    attempt: int  # retries already scheduled before this one (0 = a fresh schedule, e.g. after a DLQ redrive)
    last_error: str | None = None


def handle_batch(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    records = event.get("Records") or []
    if not records:
        return {"batchItemFailures": []}
    if records[0].get("eventSource") == "aws:sqs":
        return _handle_retries(records)
    return _handle_stream(records)


def _handle_stream(records: list[dict[str, Any]]) -> dict[str, Any]:
    inserted = [r for r in records if r.get("eventName") == "INSERT"]
    by_tenant: dict[str, list[StoredEvent]] = {}
    for r in inserted:
        stored = from_item(r["dynamodb"]["NewImage"])
        by_tenant.setdefault(stored.tenant_id, []).append(stored)
    try:
        store = StreamStore()
        jobs = []
        for tenant_id, events in by_tenant.items():
            for stream in store.by_tenant(tenant_id):
                matched = [e for e in events if matches(e.event_type, stream.event_types)]
                if stream.status == "enabled" and matched:
                    jobs.append((stream, matched))
        _run(store, [(stream, matched, 0) for stream, matched in jobs])
    except Exception:
        logger.exception("log streams: batch failed, Lambda retries it", extra={"records": len(records)})
        return {"batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]}
    return {"batchItemFailures": []}


def _handle_retries(records: list[dict[str, Any]]) -> dict[str, Any]:
    store = StreamStore()
    failures = []
    for r in records:
        try:
            message = RetryMessage.model_validate_json(r["body"])
            stream = store.get(message.tenant_id, message.stream_id)
            if stream is None or stream.status != "enabled":
                continue  # deleted or disabled: delivery stops, pending retries included
            events = get_events(message.tenant_id, message.event_ids)
            if events:
                _run(store, [(stream, events, message.attempt)])
        except Exception:
            logger.exception("log streams: retry message failed, SQS redelivers it")
            failures.append({"itemIdentifier": r["messageId"]})
    return {"batchItemFailures": failures}


def _run(store: StreamStore, jobs: list[tuple[LogStream, list[StoredEvent], int]]) -> None:
    """Sends the batches concurrently (each request is bounded by MAIP_STREAM_TIMEOUT); re-raises the first error."""
    if len(jobs) == 1:
        deliver(store, *jobs[0])
        return
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_REQUESTS, max(1, len(jobs)))) as pool:
        for future in [pool.submit(deliver, store, *job) for job in jobs]:
            future.result()


def deliver(store: StreamStore, stream: LogStream, events: list[StoredEvent], attempt: int) -> bool:
    outcome = destinations.send(stream, events)
    now = format_time(utc_now())
    if outcome.ok:
        store.record(stream.tenant_id, stream.stream_id, now=now, delivered_events=len(events), delivered_batches=1,
                     retried_batches=1 if attempt else 0)
        return True
    error = outcome.error or "failed"
    schedule = get_settings().stream_retry_schedule
    message = RetryMessage(tenant_id=stream.tenant_id, stream_id=stream.stream_id, event_ids=[e.event_id for e in events],
                           attempt=attempt + 1, last_error=error)
    if attempt < len(schedule):
        _send(get_settings().stream_retry_queue, message, delay=schedule[attempt])
        store.record(stream.tenant_id, stream.stream_id, now=now, error=error, failed_attempts=1)
    else:
        _send(get_settings().stream_dlq, message.model_copy(update={"attempt": 0}))  # a redrive starts a fresh schedule
        store.record(stream.tenant_id, stream.stream_id, now=now, error=f"dead-lettered after {attempt + 1} attempts: {error}",
                     failed_attempts=1, dead_lettered_events=len(events))
        logger.warning("log streams: batch dead-lettered", extra={"stream_id": stream.stream_id, "events": len(events)})
    return False


def _send(queue: str, message: RetryMessage, delay: int = 0) -> None:
    aws.client("sqs").send_message(QueueUrl=queue_url(queue), MessageBody=message.model_dump_json(exclude_none=True),
                                   DelaySeconds=min(MAX_SQS_DELAY, max(0, int(delay))))
