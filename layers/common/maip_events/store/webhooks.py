"""WebhooksTable (subscriptions, one partition per tenant) and DeliveriesTable (one item per attempt,
one partition per subscription). Keyed queries only: a tenant's subscriptions are read by its partition.
Keys are bounded by construction: the tenant id (<= 128 characters of [A-Za-z0-9._:-], checked at
authentication) and generated ids (`maip-whk:`, `maip-att:` ULIDs); user-supplied text (URLs, descriptions,
event payloads, agent ids) is only ever an attribute."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from maip_events import aws
from maip_events.settings import get_settings
from maip_events.store import query_items
from maip_events.store.versioned import VersionedItems, version_of

DELIVERY_RETENTION_DAYS = 30


@dataclass
class Subscription:
    tenant_id: str
    webhook_id: str
    url: str
    event_types: list[str]
    status: str  # enabled | disabled
    secret: str
    created_at: str
    updated_at: str
    description: str | None = None
    previous_secret: str | None = None
    previous_secret_expires_at: int | None = None  # epoch seconds; both signatures are sent until then
    failing_since: str | None = None  # first failed attempt since the last success
    disabled_reason: str | None = None
    version: int = 0  # bumped by every API change (PATCH, rotation); not by the delivery path's status writes

    def public(self, with_secret: bool = False) -> dict[str, Any]:
        doc = {
            "id": self.webhook_id,
            "url": self.url,
            "event_types": list(self.event_types),
            "description": self.description,
            "status": self.status,
            "disabled_reason": self.disabled_reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if with_secret:
            doc["secret"] = self.secret
        return doc


def _sub_item(sub: Subscription) -> dict[str, Any]:
    item: dict[str, Any] = {
        "tenant_id": {"S": sub.tenant_id},
        "webhook_id": {"S": sub.webhook_id},
        "url": {"S": sub.url},
        "event_types": {"L": [{"S": t} for t in sub.event_types]},
        "status": {"S": sub.status},
        "secret": {"S": sub.secret},
        "created_at": {"S": sub.created_at},
        "updated_at": {"S": sub.updated_at},
        "version": {"N": str(sub.version)},
    }
    for name in ("description", "previous_secret", "failing_since", "disabled_reason"):
        if getattr(sub, name) is not None:
            item[name] = {"S": getattr(sub, name)}
    if sub.previous_secret_expires_at is not None:
        item["previous_secret_expires_at"] = {"N": str(sub.previous_secret_expires_at)}
    return item


def _sub_from(item: dict[str, Any]) -> Subscription:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    return Subscription(
        tenant_id=item["tenant_id"]["S"],
        webhook_id=item["webhook_id"]["S"],
        url=item["url"]["S"],
        event_types=[t["S"] for t in item["event_types"]["L"]],
        status=item["status"]["S"],
        secret=item["secret"]["S"],
        created_at=item["created_at"]["S"],
        updated_at=item["updated_at"]["S"],
        description=text("description"),
        previous_secret=text("previous_secret"),
        previous_secret_expires_at=int(item["previous_secret_expires_at"]["N"]) if "previous_secret_expires_at" in item else None,
        failing_since=text("failing_since"),
        disabled_reason=text("disabled_reason"),
        version=version_of(item),
    )


class SubscriptionStore:
    def __init__(self, client: Any = None, table: str | None = None):
        self.client = client or aws.dynamodb()
        self.table = table or get_settings().webhooks_table

    def _key(self, tenant_id: str, webhook_id: str) -> dict[str, Any]:
        return {"tenant_id": {"S": tenant_id}, "webhook_id": {"S": webhook_id}}

    def put(self, sub: Subscription) -> None:
        sub.version = max(sub.version, 1)
        self.client.put_item(TableName=self.table, Item=_sub_item(sub), ConditionExpression="attribute_not_exists(webhook_id)")

    def modify(self, tenant_id: str, webhook_id: str, change: Callable[[Subscription], dict[str, Any]]) -> Subscription | None:
        """Applies `change(current) -> {attribute: value or None to remove}` as a versioned conditional update
        that touches only those attributes (store.versioned); None when the subscription does not exist."""
        def read(key: dict[str, Any]) -> dict[str, Any] | None:
            return self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")

        return VersionedItems(self.client, self.table, read, _sub_from).modify(self._key(tenant_id, webhook_id), change, "webhook")

    def get(self, tenant_id: str, webhook_id: str) -> Subscription | None:
        item = self.client.get_item(TableName=self.table, Key=self._key(tenant_id, webhook_id), ConsistentRead=True).get("Item")
        return _sub_from(item) if item else None

    def get_many(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], Subscription]:
        """BatchGetItem for the subscriptions one delivery batch needs."""
        found: dict[tuple[str, str], Subscription] = {}
        pending = [self._key(t, w) for t, w in keys]
        while pending:
            chunk, pending = pending[:100], pending[100:]
            request: dict[str, Any] = {self.table: {"Keys": chunk, "ConsistentRead": True}}
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    sub = _sub_from(item)
                    found[(sub.tenant_id, sub.webhook_id)] = sub
                request = response.get("UnprocessedKeys") or {}
        return found

    def by_tenant(self, tenant_id: str) -> list[Subscription]:
        items = query_items(self.client, TableName=self.table, KeyConditionExpression="tenant_id = :t",
                            ExpressionAttributeValues={":t": {"S": tenant_id}})
        return [_sub_from(i) for i in items]

    def tenant_of(self, webhook_id: str) -> str | None:
        """The owning tenant of a subscription id (operator CLI only; the API always knows the tenant)."""
        response = self.client.query(
            TableName=self.table,
            IndexName="by_webhook_id",
            KeyConditionExpression="webhook_id = :w",
            ExpressionAttributeValues={":w": {"S": webhook_id}},
        )
        items = response.get("Items", [])
        return items[0]["tenant_id"]["S"] if items else None

    def delete(self, tenant_id: str, webhook_id: str) -> bool:
        response = self.client.delete_item(TableName=self.table, Key=self._key(tenant_id, webhook_id), ReturnValues="ALL_OLD")
        return "Attributes" in response

    def mark_failing(self, tenant_id: str, webhook_id: str, since: str) -> None:
        """Remember when the current run of failures began (kept if already set)."""
        self._update(tenant_id, webhook_id, "SET failing_since = if_not_exists(failing_since, :s)", {":s": {"S": since}})

    def mark_healthy(self, tenant_id: str, webhook_id: str) -> None:
        self._update(tenant_id, webhook_id, "REMOVE failing_since", {})

    def disable(self, tenant_id: str, webhook_id: str, reason: str, now: str) -> None:
        self._update(
            tenant_id, webhook_id, "SET #s = :d, disabled_reason = :r, updated_at = :n",
            {":d": {"S": "disabled"}, ":r": {"S": reason}, ":n": {"S": now}}, {"#s": "status"},
        )

    def _update(self, tenant_id: str, webhook_id: str, expression: str, values: dict, names: dict | None = None) -> None:
        args: dict[str, Any] = {
            "TableName": self.table,
            "Key": self._key(tenant_id, webhook_id),
            "UpdateExpression": expression,
            "ConditionExpression": "attribute_exists(webhook_id)",  # never resurrect a deleted subscription
        }
        if values:
            args["ExpressionAttributeValues"] = values
        if names:
            args["ExpressionAttributeNames"] = names
        try:
            self.client.update_item(**args)
        except self.client.exceptions.ConditionalCheckFailedException:
            pass


@dataclass
class Attempt:
    """One delivery attempt of one event to one subscription."""

    tenant_id: str
    webhook_id: str
    attempt_id: str  # maip-att:<ULID>, time-ordered: the table's sort key
    delivery_id: str  # maip-dlv:<ULID>, shared by every attempt of one (event, endpoint) delivery
    event_id: str
    event_type: str
    attempt: int
    status: str  # succeeded | retrying | dead_lettered
    attempted_at: str
    latency_ms: int | None = None
    status_code: int | None = None
    error: str | None = None
    response_body: str | None = None
    next_retry_at: str | None = None
    expires_at: int | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.attempt_id,
            "delivery_id": self.delivery_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "attempt": self.attempt,
            "status": self.status,
            "status_code": self.status_code,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "response_body": self.response_body,
            "attempted_at": self.attempted_at,
            "next_retry_at": self.next_retry_at,
        }


_ATTEMPT_TEXT = ("error", "response_body", "next_retry_at")
_ATTEMPT_NUMBERS = ("latency_ms", "status_code", "expires_at")


def _attempt_item(a: Attempt) -> dict[str, Any]:
    item: dict[str, Any] = {
        "webhook_id": {"S": a.webhook_id},
        "attempt_id": {"S": a.attempt_id},
        "tenant_id": {"S": a.tenant_id},
        "delivery_id": {"S": a.delivery_id},
        "event_id": {"S": a.event_id},
        "event_type": {"S": a.event_type},
        "attempt": {"N": str(a.attempt)},
        "status": {"S": a.status},
        "attempted_at": {"S": a.attempted_at},
    }
    for name in _ATTEMPT_TEXT:
        if getattr(a, name) is not None:
            item[name] = {"S": getattr(a, name)}
    for name in _ATTEMPT_NUMBERS:
        if getattr(a, name) is not None:
            item[name] = {"N": str(getattr(a, name))}
    return item


def _attempt_from(item: dict[str, Any]) -> Attempt:
    return Attempt(
        tenant_id=item["tenant_id"]["S"],
        webhook_id=item["webhook_id"]["S"],
        attempt_id=item["attempt_id"]["S"],
        delivery_id=item["delivery_id"]["S"],
        event_id=item["event_id"]["S"],
        event_type=item["event_type"]["S"],
        attempt=int(item["attempt"]["N"]),
        status=item["status"]["S"],
        attempted_at=item["attempted_at"]["S"],
        **{n: item[n]["S"] for n in _ATTEMPT_TEXT if n in item},
        **{n: int(item[n]["N"]) for n in _ATTEMPT_NUMBERS if n in item},
    )


class DeliveryStore:
    def __init__(self, client: Any = None, table: str | None = None):
        self.client = client or aws.dynamodb()
        self.table = table or get_settings().deliveries_table

    def record(self, attempt: Attempt) -> None:
        self.client.put_item(TableName=self.table, Item=_attempt_item(attempt))

    def record_many(self, attempts: list[Attempt]) -> None:
        """BatchWriteItem in chunks of 25 (one request instead of 25); unprocessed items retried with backoff."""
        import time

        for start in range(0, len(attempts), 25):
            requests = [{"PutRequest": {"Item": _attempt_item(a)}} for a in attempts[start : start + 25]]
            for retry in range(8):
                requests = self.client.batch_write_item(RequestItems={self.table: requests}).get("UnprocessedItems", {}).get(self.table, [])
                if not requests:
                    break
                time.sleep(min(0.05 * 2**retry, 1.0))
            else:
                raise RuntimeError(f"{len(requests)} delivery attempts stayed unprocessed after retries")

    def page(self, webhook_id: str, limit: int, after: str | None = None, event_id: str | None = None,
             status: str | None = None) -> tuple[list[Attempt], str | None]:
        """Attempts of one subscription, newest first; returns the page and the last attempt id if more follow."""
        args: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "webhook_id = :w",
            "ExpressionAttributeValues": {":w": {"S": webhook_id}},
            "ScanIndexForward": False,
        }
        filters = []
        if event_id:
            filters.append("event_id = :e")
            args["ExpressionAttributeValues"][":e"] = {"S": event_id}
        if status:
            filters.append("#st = :s")
            args["ExpressionAttributeValues"][":s"] = {"S": status}
            args["ExpressionAttributeNames"] = {"#st": "status"}
        if filters:
            args["FilterExpression"] = " AND ".join(filters)
        else:
            args["Limit"] = limit + 1
        if after:
            args["ExclusiveStartKey"] = {"webhook_id": {"S": webhook_id}, "attempt_id": {"S": after}}
        attempts: list[Attempt] = []
        while True:
            response = self.client.query(**args)
            attempts += [_attempt_from(i) for i in response.get("Items", [])]
            if len(attempts) > limit or "LastEvaluatedKey" not in response:
                break
            args["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        if len(attempts) > limit:
            return attempts[:limit], attempts[limit - 1].attempt_id
        return attempts, None
