"""Optimistic concurrency for configuration items (webhooks, log streams): a change is computed from the item as
read, then written with one UpdateItem that touches only the changed attributes and is conditioned on the
`version` that was read; a lost race re-reads and recomputes. Attributes written by others without a version
bump (delivery status, counters, an auto-disable) are never part of a change, so they are never undone."""
from __future__ import annotations

import random
import time
from typing import Any, Callable, Generic, Optional, TypeVar

from maip_events.errors import Conflict

MAX_ATTEMPTS = 10
VERSION = "version"

T = TypeVar("T")


def attribute(value: Any) -> dict[str, Any]:
    """A DynamoDB attribute value for the plain types configuration items hold."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (list, tuple)):
        return {"L": [attribute(v) for v in value]}
    raise TypeError(f"unsupported attribute value {type(value).__name__}")


def version_of(item: dict[str, Any]) -> int:
    return int(item[VERSION]["N"]) if VERSION in item else 0  # items written before versions existed: 0


def conditional_update(client: Any, table: str, key: dict[str, Any], changes: dict[str, Any], expected_version: int) -> dict[str, Any] | None:
    """SETs the changed attributes (None = REMOVE) and `version = expected + 1`, if the item still exists at
    `expected_version`. Returns the new item, or None when the condition failed (stale or deleted)."""
    names = {"#version": VERSION, "#key": next(iter(key))}
    values: dict[str, Any] = {":next": {"N": str(expected_version + 1)}}
    sets, removes = ["#version = :next"], []
    for index, (name, value) in enumerate(sorted(changes.items())):
        names[f"#a{index}"] = name
        if value is None:
            removes.append(f"#a{index}")
        else:
            values[f":a{index}"] = attribute(value)
            sets.append(f"#a{index} = :a{index}")
    if expected_version:
        condition = "attribute_exists(#key) AND #version = :expected"
        values[":expected"] = {"N": str(expected_version)}
    else:
        condition = "attribute_exists(#key) AND attribute_not_exists(#version)"
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    try:
        response = client.update_item(TableName=table, Key=key, UpdateExpression=expression, ConditionExpression=condition,
                                      ExpressionAttributeNames=names, ExpressionAttributeValues=values, ReturnValues="ALL_NEW")
    except client.exceptions.ConditionalCheckFailedException:
        return None
    return response["Attributes"]


class VersionedItems(Generic[T]):
    """read-compute-write with retries for one table; `read` returns (object, its raw item) or None."""

    def __init__(self, client: Any, table: str, read: Callable[[dict[str, Any]], Optional[dict[str, Any]]],
                 parse: Callable[[dict[str, Any]], T]):
        self.client, self.table, self.read, self.parse = client, table, read, parse

    def modify(self, key: dict[str, Any], change: Callable[[T], dict[str, Any]], what: str) -> T | None:
        """Applies `change(current) -> {attribute: value or None}`; None when the item does not exist. A change
        is recomputed from a fresh read after each lost race; 409 `conflict` if it keeps losing."""
        for attempt in range(MAX_ATTEMPTS):
            item = self.read(key)
            if item is None:
                return None
            updated = conditional_update(self.client, self.table, key, change(self.parse(item)), version_of(item))
            if updated is not None:
                return self.parse(updated)
            time.sleep(random.uniform(0, 0.005 * (attempt + 1)))  # de-synchronise racing writers
        raise Conflict(f"The {what} was changed concurrently {MAX_ATTEMPTS} times; retry the request.")
