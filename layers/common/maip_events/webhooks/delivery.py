"""Delivery queue consumer (live and replay lanes): POSTs each message's event to its subscription, signed,
concurrently within a batch; records every attempt; schedules the next one with backoff, or dead-letters
(status `dead_lettered` in the deliveries log); disables endpoints that keep failing.

Isolation: each message is one (event, endpoint). Whatever an endpoint or a stored subscription does
(timeouts, refused addresses, a secret that cannot sign) is that message's failed attempt, retried on its own
schedule; nothing it does fails or delays the other messages of the batch beyond the one request deadline.
Only an infrastructure error on that one message (e.g. its retry could not be queued) returns it to SQS,
which redrives it to the dead-letter queue after 5 receives."""
from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from maip_events import aws
from maip_events.ids import format_time, new_id, parse_time, utc_now
from maip_events.settings import get_settings
from maip_events.store.webhooks import Attempt, DeliveryStore, Subscription, SubscriptionStore
from maip_events.http import client, signing
from maip_events.webhooks import queue, retry

logger = Logger(service="maip-events")

ATTEMPT_PREFIX = "maip-att:"
RETENTION = 30 * 86400  # attempts stay visible this long


def handle_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = event.get("Records") or []
    if not records:  # Lambda never sends an empty batch; the local poller and tests might
        return {"batchItemFailures": []}
    aws.client("sqs"), aws.client("dynamodb")  # built once here, shared by the worker threads
    batch = DeliveryBatch(records)
    with ThreadPoolExecutor(max_workers=max(1, min(get_settings().webhook_concurrency, len(records)))) as pool:

        async def deliver(record: SQSRecord) -> str:
            return await asyncio.get_running_loop().run_in_executor(pool, batch.deliver, record.body)

        processor = AsyncBatchProcessor(event_type=EventType.SQS)
        response = async_process_partial_response(event=event, record_handler=deliver, processor=processor, context=context)
    # Successful attempts are logged in bulk, after the fact: a failing log write never re-sends a delivered event.
    batch.flush()
    return response


def payload(event: Any) -> bytes:
    """The webhook body (CONTRACT §8): type, timestamp and the event as a list item."""
    doc = {"type": event.event_type, "timestamp": event.created_at, "data": event.list_item()}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class DeliveryBatch:
    def __init__(self, records: list[dict[str, Any]]):
        self.subscriptions = SubscriptionStore()
        self.attempts = DeliveryStore()
        keys = set()
        for record in records:
            try:
                message = queue.parse(record["body"])
                keys.add((message.tenant_id, message.webhook_id))
            except Exception:  # noqa: BLE001 - a malformed message fails on its own in deliver()
                continue
        try:
            self.subs: dict[tuple[str, str], Subscription] | None = self.subscriptions.get_many(keys) if keys else {}
        except Exception:  # noqa: BLE001 - read them one by one instead: a failure then fails only its message
            logger.exception("webhooks: batch read of subscriptions failed")
            self.subs = None
        self.succeeded: list[Attempt] = []  # written together by flush(); failures are written at once

    def flush(self) -> None:
        succeeded, self.succeeded = self.succeeded, []
        try:
            self.attempts.record_many(succeeded)
        except Exception:  # noqa: BLE001 - the events were delivered; losing log lines beats delivering twice
            logger.exception("webhooks: could not log %d successful attempts", len(succeeded))

    def deliver(self, body: str) -> str:
        try:
            message = queue.parse(body)
        except ValueError:  # malformed (pydantic's ValidationError is a ValueError): it can never succeed
            queue.dead_letter_raw(body)
            return "malformed"
        now = time.time()
        if message.not_before and message.not_before - now > 1:
            queue.enqueue([message], replay=bool(message.replay))  # SQS delays at most 15 minutes: wait again
            return "waiting"
        key = (message.tenant_id, message.webhook_id)
        sub = self.subs.get(key) if self.subs is not None else self.subscriptions.get(*key)
        if sub is None:
            return "subscription deleted"  # deleting a subscription stops its deliveries
        if sub.status != "enabled":
            self._dead_letter(message, sub, "not sent: the endpoint is disabled")
            return "dead_lettered"
        return self._attempt(message, sub)

    def _secrets(self, sub: Subscription, timestamp: int) -> list[str]:
        previous = sub.previous_secret if (sub.previous_secret_expires_at or 0) > timestamp else None
        return [sub.secret] + ([previous] if previous else [])

    def _send(self, message: queue.DeliveryMessage, sub: Subscription) -> client.Result:
        started = time.monotonic()
        try:
            body = payload(message.event)
            timestamp = int(time.time())
            headers = {"content-type": "application/json",
                       **signing.headers(self._secrets(sub, timestamp), message.event.event_id, timestamp, body)}
        except Exception as err:  # noqa: BLE001 - e.g. a corrupt stored secret: this endpoint's failure only
            return client.Result(ok=False, latency_ms=int((time.monotonic() - started) * 1000),
                                 error=f"not sent: {type(err).__name__}: {err}"[:500])
        return client.post(sub.url, headers, body, get_settings().webhook_timeout)

    def _attempt(self, message: queue.DeliveryMessage, sub: Subscription) -> str:
        started = utc_now()
        result = self._send(message, sub)
        attempt = Attempt(
            tenant_id=message.tenant_id, webhook_id=message.webhook_id, attempt_id=new_id(ATTEMPT_PREFIX),
            delivery_id=message.delivery_id, event_id=message.event.event_id, event_type=message.event.event_type,
            attempt=message.attempt, status="succeeded", attempted_at=format_time(started), latency_ms=result.latency_ms,
            status_code=result.status_code, error=result.error, response_body=result.response_body,
            expires_at=int(started.timestamp()) + RETENTION,
        )
        if result.ok:
            self.succeeded.append(attempt)
            if sub.failing_since:
                self.subscriptions.mark_healthy(sub.tenant_id, sub.webhook_id)
                sub.failing_since = None
            return "succeeded"

        failing_since = sub.failing_since or attempt.attempted_at
        failing_for = (started - parse_time(failing_since)).total_seconds()
        delay = retry.next_delay(message.attempt, result.retry_after, started)
        if failing_for >= get_settings().webhook_disable_after:
            reason = f"every delivery failed since {failing_since}"
            self.subscriptions.disable(sub.tenant_id, sub.webhook_id, reason, format_time(utc_now()))
            sub.status = "disabled"
            logger.warning("webhook disabled", extra={"webhook_id": sub.webhook_id, "tenant_id": sub.tenant_id})
            delay = None
        elif not sub.failing_since:
            self.subscriptions.mark_failing(sub.tenant_id, sub.webhook_id, failing_since)
            sub.failing_since = failing_since
        if delay is None:
            attempt.status = "dead_lettered"
            self.attempts.record(attempt)
            queue.dead_letter(message.model_copy(update={"dead_letter_reason": result.error}))
            return "dead_lettered"

        attempt.status = "retrying"
        attempt.next_retry_at = format_time(started + timedelta(seconds=delay))
        self.attempts.record(attempt)
        queue.enqueue([message.model_copy(update={"attempt": message.attempt + 1, "not_before": started.timestamp() + delay})],
                      delay=delay, replay=bool(message.replay))
        return "retrying"

    def _dead_letter(self, message: queue.DeliveryMessage, sub: Subscription, reason: str) -> None:
        now = utc_now()
        self.attempts.record(Attempt(
            tenant_id=message.tenant_id, webhook_id=message.webhook_id, attempt_id=new_id(ATTEMPT_PREFIX),
            delivery_id=message.delivery_id, event_id=message.event.event_id, event_type=message.event.event_type,
            attempt=message.attempt, status="dead_lettered", attempted_at=format_time(now), error=reason,
            expires_at=int(now.timestamp()) + RETENTION,
        ))
        queue.dead_letter(message.model_copy(update={"dead_letter_reason": reason}))
