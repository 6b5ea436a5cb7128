"""LogStreamsTable: one partition per tenant holding its log-stream destinations, each with its delivery
status counters (kept on the same item with atomic ADDs). Keys are bounded by construction: the tenant id
(<= 128 characters of [A-Za-z0-9._:-], checked at authentication) and a generated `maip-str:<ULID>`; no
user-supplied text is ever part of a key."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from maip_events import aws
from maip_events.settings import get_settings
from maip_events.store import query_items
from maip_events.store.versioned import VersionedItems, version_of

COUNTERS = ("delivered_events", "delivered_batches", "failed_attempts", "retried_batches", "dead_lettered_events")


@dataclass
class LogStream:
    tenant_id: str
    stream_id: str
    type: str
    config: dict[str, Any]  # destination settings, secrets included (never returned unmasked)
    event_types: list[str]
    format: str
    status: str
    created_at: str
    updated_at: str
    description: str | None = None
    counters: dict[str, int] = field(default_factory=dict)
    last_success_at: str | None = None
    last_error_at: str | None = None
    last_error: str | None = None
    version: int = 0  # bumped by every API change (PATCH); not by the delivery path's counters and status


def _item(stream: LogStream) -> dict[str, Any]:
    item: dict[str, Any] = {
        "tenant_id": {"S": stream.tenant_id},
        "stream_id": {"S": stream.stream_id},
        "type": {"S": stream.type},
        "config": {"S": json.dumps(stream.config, separators=(",", ":"))},
        "event_types": {"L": [{"S": p} for p in stream.event_types]},
        "format": {"S": stream.format},
        "status": {"S": stream.status},
        "created_at": {"S": stream.created_at},
        "updated_at": {"S": stream.updated_at},
        "version": {"N": str(max(stream.version, 1))},
    }
    if stream.description is not None:
        item["description"] = {"S": stream.description}
    return item


def _from(item: dict[str, Any]) -> LogStream:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    return LogStream(
        tenant_id=item["tenant_id"]["S"], stream_id=item["stream_id"]["S"], type=item["type"]["S"],
        config=json.loads(item["config"]["S"]), event_types=[p["S"] for p in item["event_types"]["L"]],
        format=item["format"]["S"], status=item["status"]["S"], created_at=item["created_at"]["S"],
        updated_at=item["updated_at"]["S"], description=text("description"),
        counters={name: int(item[name]["N"]) if name in item else 0 for name in COUNTERS},
        last_success_at=text("last_success_at"), last_error_at=text("last_error_at"), last_error=text("last_error"),
        version=version_of(item),
    )


class StreamStore:
    def __init__(self, client: Any = None, table: str | None = None):
        self.client = client or aws.dynamodb()
        self.table = table or get_settings().streams_table

    def _key(self, tenant_id: str, stream_id: str) -> dict[str, Any]:
        return {"tenant_id": {"S": tenant_id}, "stream_id": {"S": stream_id}}

    def put(self, stream: LogStream) -> None:
        self.client.put_item(TableName=self.table, Item=_item(stream), ConditionExpression="attribute_not_exists(stream_id)")

    def modify(self, tenant_id: str, stream_id: str, change: Callable[[LogStream], dict[str, Any]]) -> LogStream | None:
        """Applies `change(current) -> {attribute: value or None to remove}` (a `config` dict is stored as JSON) as a
        versioned conditional update touching only those attributes, so the delivery path's counters and status
        writes are never overwritten; None when the stream does not exist."""
        def read(key: dict[str, Any]) -> dict[str, Any] | None:
            return self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")

        def stored(current: LogStream) -> dict[str, Any]:
            changes = change(current)
            if isinstance(changes.get("config"), dict):
                changes["config"] = json.dumps(changes["config"], separators=(",", ":"))
            return changes

        return VersionedItems(self.client, self.table, read, _from).modify(self._key(tenant_id, stream_id), stored, "log stream")

    def get(self, tenant_id: str, stream_id: str) -> LogStream | None:
        item = self.client.get_item(TableName=self.table, Key=self._key(tenant_id, stream_id), ConsistentRead=True).get("Item")
        return _from(item) if item else None

    def by_tenant(self, tenant_id: str) -> list[LogStream]:
        items = query_items(self.client, TableName=self.table, KeyConditionExpression="tenant_id = :t",
                            ExpressionAttributeValues={":t": {"S": tenant_id}})
        return [_from(i) for i in items]

    def delete(self, tenant_id: str, stream_id: str) -> bool:
        response = self.client.delete_item(TableName=self.table, Key=self._key(tenant_id, stream_id), ReturnValues="ALL_OLD")
        return "Attributes" in response

    def record(self, tenant_id: str, stream_id: str, *, now: str, error: str | None = None, **increments: int) -> None:
        """Adds to the delivery counters and stamps the last success or error; a deleted stream stays deleted."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        adds = []
        for name, amount in increments.items():
            if amount:
                names[f"#{name}"], values[f":{name}"] = name, {"N": str(amount)}
                adds.append(f"#{name} :{name}")
        if error is None:
            sets = ["last_success_at = :now"]
        else:
            sets = ["last_error_at = :now", "last_error = :error"]
            values[":error"] = {"S": error[:500]}
        values[":now"] = {"S": now}
        expression = "SET " + ", ".join(sets) + (" ADD " + ", ".join(adds) if adds else "")
        try:
            self.client.update_item(TableName=self.table, Key=self._key(tenant_id, stream_id), UpdateExpression=expression,
                                    ExpressionAttributeValues=values, **({"ExpressionAttributeNames": names} if names else {}),
                                    ConditionExpression="attribute_exists(stream_id)")
        except self.client.exceptions.ConditionalCheckFailedException:
            pass

