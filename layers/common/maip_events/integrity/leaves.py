"""The bytes that are hashed and signed: RFC 8785 (JCS) canonical JSON of a leaf or a checkpoint body."""
from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import rfc8785

from maip_events.integrity.tree import leaf_hash

LEAF_FIELDS = ("event_id", "event_type", "agent_id", "resource_id", "severity", "payload", "timestamp")
CHECKPOINT_FIELDS = ("tenant_id", "tree_size", "root_hash", "last_event_id", "sealed_at", "previous")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


SAFE_INTEGER = 2**53 - 1


def _as_doubles(value: Any) -> Any:
    """Integers beyond 2**53 as the IEEE 754 doubles RFC 8785 (§3.2.2.3, I-JSON) serialises every number as."""
    if isinstance(value, bool) or not isinstance(value, (int, dict, list)):
        return value
    if isinstance(value, int):
        return float(value) if abs(value) > SAFE_INTEGER else value
    if isinstance(value, dict):
        return {k: _as_doubles(v) for k, v in value.items()}
    return [_as_doubles(v) for v in value]


def canonical(value: Any) -> bytes:
    """RFC 8785 bytes. The `rfc8785` package refuses integers it cannot represent exactly; the RFC hashes every
    number as its double, so those are converted first (what other JCS implementations, e.g. `jcs`, do)."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.IntegerDomainError:
        return rfc8785.dumps(_as_doubles(value))


def leaf_bytes(tenant_id: str, item: dict[str, Any]) -> bytes:
    """RFC 8785 bytes of {"tenant_id", <the list item's seven fields>} (nulls included)."""
    return canonical({"tenant_id": tenant_id, **{name: item[name] for name in LEAF_FIELDS}})


def leaf_hash_of(tenant_id: str, item: dict[str, Any]) -> bytes:
    return leaf_hash(leaf_bytes(tenant_id, item))


def stored_leaf_item(event: Any) -> dict[str, Any]:
    """The list item of a StoredEvent (payload parsed from its stored JSON text)."""
    return {"event_id": event.event_id, "event_type": event.event_type, "agent_id": event.agent_id,
            "resource_id": event.resource_id, "severity": event.severity, "payload": json.loads(event.payload_json),
            "timestamp": event.created_at}


def checkpoint_body(checkpoint: dict[str, Any]) -> dict[str, Any]:
    return {name: checkpoint[name] for name in CHECKPOINT_FIELDS}


def checkpoint_bytes(checkpoint: dict[str, Any]) -> bytes:
    """What the signature covers: the RFC 8785 bytes of the six body fields only."""
    return canonical(checkpoint_body(checkpoint))


def checkpoint_digest(checkpoint: dict[str, Any]) -> str:
    """`previous` of the next checkpoint: base64 SHA-256 of this one's canonical body."""
    return b64(hashlib.sha256(checkpoint_bytes(checkpoint)).digest())
