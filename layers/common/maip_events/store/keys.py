"""ApiKeysTable access. Items are keyed by the SHA-256 hash of the secret; the secret itself is never stored."""
from __future__ import annotations

from typing import Any

from maip_events import aws
from maip_events.settings import get_settings
from maip_events.store import query_items


def _to_record(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "key_id": item["key_id"]["S"],
        "key_hash": item["key_hash"]["S"],
        "tenant_id": item["tenant_id"]["S"],
        "name": item.get("name", {}).get("S"),
        "scopes": list(item.get("scopes", {}).get("L") and [s["S"] for s in item["scopes"]["L"]] or []),
        "created_at": item["created_at"]["S"],
        "revoked_at": item.get("revoked_at", {}).get("S"),
    }


class ApiKeyStore:
    def __init__(self, client: Any = None, table: str | None = None):
        self.client = client or aws.dynamodb()
        self.table = table or get_settings().keys_table

    def put(self, record: dict[str, Any]) -> None:
        item = {
            "key_hash": {"S": record["key_hash"]},
            "key_id": {"S": record["key_id"]},
            "tenant_id": {"S": record["tenant_id"]},
            "scopes": {"L": [{"S": s} for s in record["scopes"]]},
            "created_at": {"S": record["created_at"]},
        }
        if record.get("name"):
            item["name"] = {"S": record["name"]}
        self.client.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(key_hash)")

    def by_hash(self, key_hash: str) -> dict[str, Any] | None:
        item = self.client.get_item(TableName=self.table, Key={"key_hash": {"S": key_hash}}, ConsistentRead=True).get("Item")
        return _to_record(item) if item else None

    def by_key_id(self, key_id: str) -> dict[str, Any] | None:
        response = self.client.query(
            TableName=self.table,
            IndexName="by_key_id",
            KeyConditionExpression="key_id = :k",
            ExpressionAttributeValues={":k": {"S": key_id}},
        )
        items = response.get("Items", [])
        return _to_record(items[0]) if items else None

    def by_tenant(self, tenant_id: str) -> list[dict[str, Any]]:
        items = query_items(self.client, TableName=self.table, IndexName="by_tenant", KeyConditionExpression="tenant_id = :t",
                            ExpressionAttributeValues={":t": {"S": tenant_id}})
        return [_to_record(i) for i in items]

    def mark_revoked(self, key_hash: str, revoked_at: str) -> None:
        self.client.update_item(
            TableName=self.table,
            Key={"key_hash": {"S": key_hash}},
            UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :now)",
            ConditionExpression="attribute_exists(key_hash)",
            ExpressionAttributeValues={":now": {"S": revoked_at}},
        )
