"""EventsTable access: one put per accepted event, keyed queries for every list (never a Scan)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from maip_events import aws
from maip_events.ids import EVENT_PREFIX, highest_event_id, lowest_event_id
from maip_events.models.events import StoredEvent
from maip_events.settings import get_settings
from maip_events.store import cursor


@dataclass(frozen=True)
class EventFilter:
    tenant_id: str
    agent_id: str | None = None
    event_type: str | None = None
    time_from: Any = None  # datetime | None
    time_to: Any = None

    def scope(self) -> dict[str, Any]:
        """What a cursor is bound to."""
        return {
            "tenant": self.tenant_id,
            "agent": self.agent_id,
            "type": self.event_type,
            "from": self.time_from.isoformat() if self.time_from else None,
            "to": self.time_to.isoformat() if self.time_to else None,
        }


@dataclass
class Page:
    events: list[StoredEvent]
    total: int
    offset: int
    next_token: str | None


# Index name, partition-key attribute and how its value is built; tenant first so no query crosses tenants.
def _index_for(flt: EventFilter) -> tuple[str | None, str, str]:
    if flt.agent_id is not None and flt.event_type is not None:
        return "by_type_agent", "tenant_type_agent", f"{flt.tenant_id}#{flt.event_type}#{flt.agent_id}"
    if flt.agent_id is not None:
        return "by_agent", "tenant_agent", f"{flt.tenant_id}#{flt.agent_id}"
    if flt.event_type is not None:
        return "by_type", "tenant_type", f"{flt.tenant_id}#{flt.event_type}"
    return None, "tenant_id", flt.tenant_id


def to_item(event: StoredEvent) -> dict[str, Any]:
    item: dict[str, Any] = {
        "tenant_id": {"S": event.tenant_id},
        "event_id": {"S": event.event_id},
        "event_type": {"S": event.event_type},
        "severity": {"S": event.severity},
        "created_at": {"S": event.created_at},
        "payload": {"S": event.payload_json},
        "tenant_type": {"S": f"{event.tenant_id}#{event.event_type}"},
    }
    if event.agent_id is not None:
        item["agent_id"] = {"S": event.agent_id}
        item["tenant_agent"] = {"S": f"{event.tenant_id}#{event.agent_id}"}
        item["tenant_type_agent"] = {"S": f"{event.tenant_id}#{event.event_type}#{event.agent_id}"}
    if event.resource_id is not None:
        item["resource_id"] = {"S": event.resource_id}
    if event.expires_at is not None:
        item["expires_at"] = {"N": str(event.expires_at)}
    return item


def from_item(item: dict[str, Any]) -> StoredEvent:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    return StoredEvent(
        tenant_id=item["tenant_id"]["S"],
        event_id=item["event_id"]["S"],
        event_type=item["event_type"]["S"],
        agent_id=text("agent_id"),
        resource_id=text("resource_id"),
        severity=item["severity"]["S"],
        created_at=item["created_at"]["S"],
        payload_json=text("payload") or "{}",
        expires_at=int(item["expires_at"]["N"]) if "expires_at" in item else None,
    )


class EventStore:
    def __init__(self, client: Any = None, table: str | None = None):
        self.client = client or aws.dynamodb()
        self.table = table or get_settings().events_table

    def put(self, event: StoredEvent) -> None:
        """One write; the condition makes a (practically impossible) id collision fail instead of overwrite."""
        self.client.put_item(
            TableName=self.table,
            Item=to_item(event),
            ConditionExpression="attribute_not_exists(event_id)",
        )

    def put_many(self, events: list[StoredEvent]) -> None:
        """Batch path: BatchWriteItem in chunks of 25, unprocessed items retried with backoff."""
        import time

        for start in range(0, len(events), 25):
            requests = [{"PutRequest": {"Item": to_item(e)}} for e in events[start : start + 25]]
            for attempt in range(8):
                response = self.client.batch_write_item(RequestItems={self.table: requests})
                requests = response.get("UnprocessedItems", {}).get(self.table, [])
                if not requests:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RuntimeError(f"{len(requests)} events stayed unprocessed after retries")

    def _query_args(self, flt: EventFilter) -> dict[str, Any]:
        index, key_attr, key_value = _index_for(flt)
        low = lowest_event_id(flt.time_from) if flt.time_from else EVENT_PREFIX
        high = highest_event_id(flt.time_to) if flt.time_to else EVENT_PREFIX + "\U0010ffff"
        args: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#pk = :pk AND event_id BETWEEN :low AND :high",
            "ExpressionAttributeNames": {"#pk": key_attr},
            "ExpressionAttributeValues": {":pk": {"S": key_value}, ":low": {"S": low}, ":high": {"S": high}},
            "ScanIndexForward": False,  # newest first
        }
        if index:
            args["IndexName"] = index
        return args

    def _start_key(self, flt: EventFilter, event_id: str) -> dict[str, Any]:
        index, key_attr, key_value = _index_for(flt)
        key = {"tenant_id": {"S": flt.tenant_id}, "event_id": {"S": event_id}}
        if index:
            key[key_attr] = {"S": key_value}
        return key

    def count(self, flt: EventFilter) -> int:
        total, args = 0, {**self._query_args(flt), "Select": "COUNT"}
        while True:
            response = self.client.query(**args)
            total += response["Count"]
            if "LastEvaluatedKey" not in response:
                return total
            args["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def iterate(self, flt: EventFilter, after_event_id: str | None = None, page_size: int = 500) -> Iterator[StoredEvent]:
        """Every matching event, newest first, starting after `after_event_id`."""
        args = {**self._query_args(flt), "Limit": page_size}
        if after_event_id:
            args["ExclusiveStartKey"] = self._start_key(flt, after_event_id)
        while True:
            response = self.client.query(**args)
            for item in response["Items"]:
                yield from_item(item)
            if "LastEvaluatedKey" not in response:
                return
            args["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def page(self, flt: EventFilter, limit: int, offset: int = 0, next_token: str | None = None) -> Page:
        after, position = None, offset
        if next_token:
            state = cursor.decode(next_token, flt.scope())
            after, position = str(state["after"]), int(state["position"])
        events: list[StoredEvent] = []
        has_more = False
        skip = 0 if next_token else offset
        for event in self.iterate(flt, after, page_size=min(skip + limit + 1, 1000)):
            if skip:
                skip -= 1
                continue
            if len(events) == limit:
                has_more = True
                break
            events.append(event)
        token = None
        if has_more:
            token = cursor.encode(flt.scope(), {"after": events[-1].event_id, "position": position + len(events)})
        return Page(events=events, total=self.count(flt), offset=position, next_token=token)
