"""Log-stream delivery: the SQS consumer of the stream delivery queue. Each message is one batch of events
for one destination (queued by the dispatcher, or a retry); it is sent in the destination's wire format
within MAIP_STREAM_TIMEOUT (one deadline for the whole request). A failure is that destination's failure
only: the same batch comes back after the delay of `MAIP_STREAM_RETRY_SCHEDULE` for that attempt, and after
the last one it is parked in the stream dead-letter queue, counted in the stream's `status`.

Anything a stream's configuration or its endpoint does (bad credentials, a refused address, a timeout, an
exception while building the request) is caught per message; only an infrastructure error on that one
message (its retry could not be queued) returns it to SQS (redriven to the dead-letter queue after 5 receives).
A receiver sees a batch again only then: every record carries its event id for de-duplication."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger

from maip_events.ids import format_time, utc_now
from maip_events.settings import get_settings
from maip_events.siem import destinations, queue
from maip_events.store.streams import LogStream, StreamStore

logger = Logger(service="maip-events")

MAX_PARALLEL_REQUESTS = 10


def handle_batch(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    records = event.get("Records") or []
    if not records:
        return {"batchItemFailures": []}
    store = StreamStore()
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_REQUESTS, len(records))) as pool:
        done = list(pool.map(lambda r: handle_message(store, r["body"]), records))
    return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r, ok in zip(records, done) if not ok]}


def handle_message(store: StreamStore, body: str) -> bool:
    """True when the message is finished with (delivered, rescheduled or parked); False: SQS redelivers it."""
    try:
        try:
            message = queue.parse(body)
        except ValueError:  # malformed: it can never succeed, park it as it is
            queue.dead_letter_raw(body)
            return True
        if message.not_before and message.not_before - time.time() > 1:
            queue.enqueue(message)  # delayed past SQS's 15 minutes: wait again
            return True
        stream = store.get(message.tenant_id, message.stream_id)
        if stream is None or stream.status != "enabled":
            return True  # deleted or disabled: delivery stops, pending retries included
        deliver(store, stream, message)
        return True
    except Exception:  # noqa: BLE001 - fails this message only
        logger.exception("log streams: message failed, SQS redelivers it")
        return False


def deliver(store: StreamStore, stream: LogStream, message: queue.StreamBatchMessage) -> bool:
    try:
        outcome = destinations.send(stream, message.events)
    except Exception as err:  # noqa: BLE001 - e.g. a stored config that cannot become a request
        outcome = destinations.Outcome(ok=False, error=f"not sent: {type(err).__name__}: {err}"[:500])
    now = format_time(utc_now())
    events = len(message.events)
    if outcome.ok:
        _record(store, stream, now=now, delivered_events=events, delivered_batches=1, retried_batches=1 if message.attempt else 0)
        return True
    error = outcome.error or "failed"
    schedule = get_settings().stream_retry_schedule
    if message.attempt < len(schedule):
        queue.enqueue(message.model_copy(update={"attempt": message.attempt + 1, "last_error": error, "not_before": None}),
                      delay=schedule[message.attempt])
        _record(store, stream, now=now, error=error, failed_attempts=1)
    else:
        queue.dead_letter(message.model_copy(update={"attempt": 0, "last_error": error, "not_before": None}))  # a redrive starts afresh
        _record(store, stream, now=now, error=f"dead-lettered after {message.attempt + 1} attempts: {error}",
                failed_attempts=1, dead_lettered_events=events)
        logger.warning("log streams: batch dead-lettered", extra={"stream_id": stream.stream_id, "events": events})
    return False


def _record(store: StreamStore, stream: LogStream, **kwargs: Any) -> None:
    """Status counters are best effort: the batch is already delivered or rescheduled; never send it twice for them."""
    try:
        store.record(stream.tenant_id, stream.stream_id, **kwargs)
    except Exception:  # noqa: BLE001
        logger.exception("log streams: could not update the delivery status", extra={"stream_id": stream.stream_id})
