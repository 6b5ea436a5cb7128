"""EventsTable stream consumer: each inserted event becomes one delivery message per matching, enabled
subscription of its tenant (read by the tenant's partition, once per tenant per batch)."""
from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from maip_events.ids import new_id
from maip_events.store.events import from_item
from maip_events.store.webhooks import Subscription, SubscriptionStore
from maip_events.webhooks import matching, queue
from maip_events.webhooks.subscriptions import DELIVERY_PREFIX


def handle_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Partial batch response: only the records that failed are retried (bisected) by Lambda."""
    if not event.get("Records"):  # Lambda never sends an empty batch; the local poller and tests might
        return {"batchItemFailures": []}
    store, by_tenant = SubscriptionStore(), {}

    def fan_out(record: DynamoDBRecord) -> int:
        return fan_out_record(record.raw_event, store, by_tenant)

    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    return process_partial_response(event=event, record_handler=fan_out, processor=processor, context=context)


def fan_out_record(record: dict[str, Any], store: SubscriptionStore, by_tenant: dict[str, list[Subscription]]) -> int:
    if record.get("eventName") != "INSERT":  # the template filters these out already; updates are not new events
        return 0
    event = from_item(record["dynamodb"]["NewImage"])
    if event.tenant_id not in by_tenant:
        by_tenant[event.tenant_id] = store.by_tenant(event.tenant_id)
    targets = [s for s in by_tenant[event.tenant_id] if s.status == "enabled" and matching.matches(event.event_type, s.event_types)]
    return queue.enqueue(
        queue.DeliveryMessage(delivery_id=new_id(DELIVERY_PREFIX), tenant_id=event.tenant_id, webhook_id=s.webhook_id, event=event)
        for s in targets
    )
