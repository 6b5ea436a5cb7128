"""IdempotencyTable access for the batch path (the emit path writes its record inside the event's transaction)."""
from __future__ import annotations

import json
from typing import Any

from maip_events import aws
from maip_events.idempotency import COMPLETE, Record, from_item
from maip_events.settings import get_settings


class IdempotencyStore:
    def __init__(self, client: Any = None, table: str | None = None):
        self.client = client or aws.dynamodb()
        self.table = table or get_settings().idempotency_table

    def create(self, record: Record) -> Record | None:
        """Writes `record` unless a live one exists; returns that existing record (None when written)."""
        while True:
            try:
                self.client.put_item(**record.put_request(self.table), ReturnValuesOnConditionCheckFailure="ALL_OLD")
                return None
            except self.client.exceptions.ConditionalCheckFailedException as err:
                item = err.response.get("Item")
                if item is None:  # older endpoints do not return it: read it
                    item = self.get(record.id)
                if item:
                    return from_item(item)
                # gone meanwhile (expired and deleted): try again

    def get(self, record_id: str) -> dict[str, Any] | None:
        return self.client.get_item(TableName=self.table, Key={"id": {"S": record_id}}, ConsistentRead=True).get("Item")

    def complete(self, record_id: str, response: dict[str, Any]) -> None:
        """The batch's final response; the plan stays (harmless) until the record expires."""
        self.client.update_item(
            TableName=self.table, Key={"id": {"S": record_id}},
            UpdateExpression="SET #s = :c, #r = :r",
            ExpressionAttributeNames={"#s": "status", "#r": "response"},
            ExpressionAttributeValues={":c": {"S": COMPLETE}, ":r": {"S": json.dumps(response, separators=(",", ":"))}},
        )
