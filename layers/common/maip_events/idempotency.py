"""Idempotency-Key (CONTRACT §6) for emit and batch, in IdempotencyTable, scoped per operation, tenant and key.

A retry with the same key within 24 h gets the first response back and stores nothing new; the same key with a
different body is a 409 `conflict`.

Why not Powertools' idempotency utility (used before): it writes its record in separate requests, one before the
function ("in progress") and one after ("completed"), and deletes it when the function raises. So a commit whose
response was lost (timeout after the write, or the "completed" update failing) was stored twice on retry, and a
batch that failed half-way was stored again under new ids. Here the record is part of the write itself:
- emit: the event and the record (already "complete", holding the response) are one TransactWriteItems; either
  both exist or neither, so a retry either finds the record (replay) or finds nothing stored (write again);
- batch: the record is written first as "pending" with the planned event ids, shards and TTLs; the events are
  then written under exactly those ids, and the record set to "complete" with the response. A retry that finds
  a pending record re-drives the same plan (a stored id stays one item), a complete one replays the response.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from maip_events.errors import Conflict, InvalidRequest

HEADER = "Idempotency-Key"
KEY_PATTERN = r"^[!-~]{1,255}$"  # 1-255 visible ASCII characters (a UUID, a hash, "order-42/retry"...)
EXPIRES_AFTER_SECONDS = 24 * 3600
REPLAYED_HEADER = "Idempotent-Replayed"
PENDING, COMPLETE = "pending", "complete"

_KEY = re.compile(KEY_PATTERN)


def validate_key(key: str | None) -> str | None:
    """None when the header is absent; the key when well formed; 400 otherwise."""
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise InvalidRequest(
            f"{HEADER} must be 1-255 visible ASCII characters.",
            details=[{"field": HEADER, "issue": "1-255 visible ASCII characters, no spaces"}],
        )
    return key


def record_id(operation: str, tenant_id: str, key: str) -> str:
    """`<operation>#sha256(tenant, key)`: two tenants may use the same key; the raw key is never stored."""
    return f"{operation}#" + hashlib.sha256(json.dumps([tenant_id, key]).encode()).hexdigest()


def body_hash(body: Any) -> str:
    """Hash of the request body's canonical JSON (key order and spacing do not matter)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Record:
    id: str
    body_hash: str
    status: str  # PENDING (batch planned, maybe partly written) | COMPLETE (response final)
    response: dict[str, Any] | None = None
    plan: list[dict[str, Any]] | None = None  # batch: [{"i": index, "id", "at": created_at, "s": shard, "x": expires_at}]
    expiration: int = 0

    def put_request(self, table: str) -> dict[str, Any]:
        """A conditional Put: only when no live record exists (TTL deletion is lazy, so an expired one counts as none)."""
        item: dict[str, Any] = {
            "id": {"S": self.id}, "body_hash": {"S": self.body_hash}, "status": {"S": self.status},
            "expiration": {"N": str(self.expiration)},
        }
        if self.response is not None:
            item["response"] = {"S": json.dumps(self.response, separators=(",", ":"))}
        if self.plan is not None:
            item["plan"] = {"S": json.dumps(self.plan, separators=(",", ":"))}
        return {"TableName": table, "Item": item, "ConditionExpression": "attribute_not_exists(id) OR expiration < :now",
                "ExpressionAttributeValues": {":now": {"N": str(int(time.time()))}}}


def new_record(operation: str, tenant_id: str, key: str, body: Any, status: str, response: dict[str, Any] | None = None,
               plan: list[dict[str, Any]] | None = None) -> Record:
    return Record(id=record_id(operation, tenant_id, key), body_hash=body_hash(body), status=status, response=response,
                  plan=plan, expiration=int(time.time()) + EXPIRES_AFTER_SECONDS)


def from_item(item: dict[str, Any]) -> Record:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    response, plan = text("response"), text("plan")
    return Record(id=item["id"]["S"], body_hash=item.get("body_hash", {}).get("S", ""), status=item.get("status", {}).get("S", ""),
                  response=json.loads(response) if response else None, plan=json.loads(plan) if plan else None,
                  expiration=int(item.get("expiration", {}).get("N", "0")))


def check_same_body(existing: Record, mine: Record) -> None:
    if existing.body_hash != mine.body_hash:
        raise Conflict(
            f"This {HEADER} was already used with a different request body.",
            details=[{"field": HEADER, "issue": "reused with a different body"}],
        )
