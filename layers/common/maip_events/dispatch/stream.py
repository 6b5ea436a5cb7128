"""The one dispatcher on the EventsTable stream (the other reader is the aggregation): each inserted event
becomes one webhook delivery message per matching, enabled subscription of its tenant, and the batch's
events become one log-stream batch message per matching, enabled stream (several when large), and every
tenant's events of the batch one archive message (several when large) for the S3 archive writer. It only
queues work; every outbound request happens in the SQS consumers (webhook delivery, log-stream delivery),
so no receiver can slow the stream or another tenant.

Isolation: a record that cannot be read is parked in the dispatch failure queue (with its keys and the
reason) and skipped; a tenant whose settings cannot be read, or messages that cannot be queued, fail from
that record on (partial batch response): records before it are done and never re-queued. Queueing is at
least once: when SQS fails part-way, messages already queued for later records may be queued again."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger

from maip_events.archive import messages as archive_messages
from maip_events.dispatch.ratelimit import TenantRateLimiter
from maip_events.ids import new_id
from maip_events.integrity import seal
from maip_events.models.events import StoredEvent
from maip_events.settings import get_settings
from maip_events.siem import queue as stream_queue
from maip_events.store.events import from_item
from maip_events.store.streams import LogStream, StreamStore
from maip_events.store.webhooks import Subscription, SubscriptionStore
from maip_events.webhooks import matching
from maip_events.webhooks import queue as webhook_queue
from maip_events.webhooks.queue import queue_url, send_entries
from maip_events.webhooks.subscriptions import DELIVERY_PREFIX

logger = Logger(service="maip-events")


@lru_cache(maxsize=4)
def _limiter(rate: float, burst: float) -> TenantRateLimiter:
    return TenantRateLimiter(rate, burst)  # kept while the instance is warm


def limiter() -> TenantRateLimiter:
    settings = get_settings()
    return _limiter(settings.fanout_rate, settings.fanout_burst)


@dataclass
class _Targets:
    webhooks: list[Subscription]
    streams: list[LogStream]


@dataclass
class _Outbox:
    webhook: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (first record index, SQS entry)
    stream: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    archive: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def handle_batch(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    records = event.get("Records") or []
    if not records:  # Lambda never sends an empty batch; the local poller and tests might
        return {"batchItemFailures": []}
    failed_at = Dispatcher().run(records)
    if failed_at is None:
        return {"batchItemFailures": []}
    return {"batchItemFailures": [{"itemIdentifier": records[failed_at]["dynamodb"]["SequenceNumber"]}]}


def _request_seals(accepted: list[tuple[int, StoredEvent]]) -> int | None:
    """One delayed "seal tenant T" message per tenant of the batch (integrity/seal.py): the sealer rides on this
    reader of the stream instead of being a third one. Returns the first record to retry if one could not be sent."""
    first: dict[str, int] = {}
    for index, event in accepted:
        first.setdefault(event.tenant_id, index)
    try:
        unsent = seal.request_seal(list(first))
    except Exception:  # noqa: BLE001 - the queue is unreachable: retry the batch from the first such record
        logger.exception("dispatch: queueing seal requests failed")
        unsent = set(first)
    return min((first[t] for t in unsent), default=None)


class Dispatcher:
    def __init__(self) -> None:
        self.subscriptions, self.streams = SubscriptionStore(), StreamStore()
        self.targets: dict[str, _Targets] = {}

    def run(self, records: list[dict[str, Any]]) -> int | None:
        """Queues the batch's work; returns the index of the first record that must be retried, or None."""
        accepted: list[tuple[int, StoredEvent]] = []
        failed_at: int | None = None
        for index, record in enumerate(records):
            if record.get("eventName") != "INSERT":  # the template filters these out already
                continue
            try:
                event = from_item(record["dynamodb"]["NewImage"])
            except Exception as err:  # noqa: BLE001 - a record that can never be read: park it, go on
                try:
                    self._park(record, f"unreadable record: {type(err).__name__}: {err}")
                except Exception:  # noqa: BLE001 - could not even park it: retry from here
                    logger.exception("dispatch: parking a record failed")
                    failed_at = index
                    break
                continue
            try:
                self._targets_of(event.tenant_id)
            except Exception:  # noqa: BLE001 - transient (throttling): retry from this record
                logger.exception("dispatch: reading the tenant's webhooks/streams failed", extra={"tenant_id": event.tenant_id})
                failed_at = index
                break
            accepted.append((index, event))
        outbox = self._plan(accepted)
        unsent_at = self._send(outbox)
        if unsent_at is not None:
            failed_at = unsent_at if failed_at is None else min(failed_at, unsent_at)
        unsealed_at = _request_seals(accepted)
        if unsealed_at is not None:
            failed_at = unsealed_at if failed_at is None else min(failed_at, unsealed_at)
        return failed_at

    def _targets_of(self, tenant_id: str) -> _Targets:
        if tenant_id not in self.targets:
            self.targets[tenant_id] = _Targets(
                webhooks=[s for s in self.subscriptions.by_tenant(tenant_id) if s.status == "enabled"],
                streams=[s for s in self.streams.by_tenant(tenant_id) if s.status == "enabled"],
            )
        return self.targets[tenant_id]

    def _plan(self, accepted: list[tuple[int, StoredEvent]]) -> _Outbox:
        outbox, rate = _Outbox(), limiter()
        groups: dict[tuple[str, str], list[tuple[int, StoredEvent]]] = {}
        tenants: dict[str, list[tuple[int, StoredEvent]]] = {}
        for index, event in accepted:
            tenants.setdefault(event.tenant_id, []).append((index, event))
            targets = self.targets[event.tenant_id]
            for sub in targets.webhooks:
                if matching.matches(event.event_type, sub.event_types):
                    message = webhook_queue.DeliveryMessage(
                        delivery_id=new_id(DELIVERY_PREFIX), tenant_id=event.tenant_id, webhook_id=sub.webhook_id, event=event,
                        not_before=rate.not_before(event.tenant_id, 1))
                    outbox.webhook.append((index, {"Id": f"w{len(outbox.webhook)}", "MessageBody": message.body(),
                                                   "DelaySeconds": webhook_queue.delay_seconds(0, message.not_before, time.time())}))
            for stream in targets.streams:
                if matching.matches(event.event_type, stream.event_types):
                    groups.setdefault((event.tenant_id, stream.stream_id), []).append((index, event))
        for (tenant_id, stream_id), members in groups.items():
            first = members[0][0]
            for message in stream_queue.batches(tenant_id, stream_id, [e for _, e in members]):
                message.not_before = rate.not_before(tenant_id, len(message.events))
                outbox.stream.append((first, stream_queue.entry(f"s{len(outbox.stream)}", message)))
        for tenant_id, members in tenants.items():  # every event is archived, whatever its targets
            for archived in archive_messages.messages(tenant_id, [e for _, e in members]):
                outbox.archive.append((members[0][0], {"Id": f"a{len(outbox.archive)}", "MessageBody": archived.body()}))
        return outbox

    def _send(self, outbox: _Outbox) -> int | None:
        settings, failed_at = get_settings(), None
        for name, planned in ((settings.webhook_queue, outbox.webhook), (settings.stream_queue, outbox.stream),
                              (settings.archive_queue, outbox.archive)):
            if not planned:
                continue
            try:
                unsent = send_entries(queue_url(name), [entry for _, entry in planned])
            except Exception:  # noqa: BLE001 - the queue is unreachable: everything for it waits for the retry
                logger.exception("dispatch: queueing failed", extra={"queue": name})
                unsent = {entry["Id"] for _, entry in planned}
            for index, entry in planned:
                if entry["Id"] in unsent:
                    failed_at = index if failed_at is None else min(failed_at, index)
        return failed_at

    def _park(self, record: dict[str, Any], reason: str) -> None:
        logger.error("dispatch: record parked", extra={"reason": reason})
        body = json.dumps({"reason": reason[:1000], "keys": record.get("dynamodb", {}).get("Keys"),
                           "sequence_number": record.get("dynamodb", {}).get("SequenceNumber"),
                           "event_source_arn": record.get("eventSourceARN")})
        if send_entries(queue_url(get_settings().dispatch_failure_queue), [{"Id": "0", "MessageBody": body}]):
            raise RuntimeError("a parked record could not be queued")
