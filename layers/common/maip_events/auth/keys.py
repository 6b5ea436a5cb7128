"""API keys: created with a secret shown once, stored as its SHA-256 hash, bound to one tenant, revocable."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from maip_events import freshness
from maip_events.catalog import ALL_SCOPES, SCOPES
from maip_events.ids import format_time, new_id, utc_now
from maip_events.settings import get_settings
from maip_events.store.keys import ApiKeyStore

KEY_PREFIX = "maip_sk_"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).hexdigest()


def normalize_scopes(scopes: list[str]) -> list[str]:
    cleaned = sorted({s.strip() for s in scopes if s.strip()})
    unknown = [s for s in cleaned if s != ALL_SCOPES and s not in SCOPES]
    if unknown or not cleaned:
        raise ValueError(f"unknown or missing scopes {unknown}; valid: {', '.join(SCOPES)} or *")
    return cleaned


def public_view(record: dict[str, Any]) -> dict[str, Any]:
    """What may be shown about a key after creation: never the secret or its hash."""
    return {k: record.get(k) for k in ("key_id", "tenant_id", "name", "scopes", "created_at", "revoked_at")}


def create_api_key(tenant_id: str, scopes: list[str], name: str | None = None, store: ApiKeyStore | None = None) -> dict[str, Any]:
    from maip_events.auth import validate_tenant_id

    validate_tenant_id(tenant_id)
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = {
        "key_id": new_id("maip-key:"),
        "key_hash": hash_key(api_key),
        "tenant_id": tenant_id,
        "name": name,
        "scopes": normalize_scopes(scopes),
        "created_at": format_time(utc_now()),
    }
    (store or ApiKeyStore()).put(record)
    return {"key_id": record["key_id"], "api_key": api_key, "tenant_id": tenant_id, "scopes": record["scopes"],
            "name": name, "created_at": record["created_at"]}


def lookup_api_key(api_key: str, store: ApiKeyStore | None = None) -> dict[str, Any] | None:
    """The active key record for `api_key`, or None (unknown or revoked)."""
    if not api_key or len(api_key) > 512:
        return None
    key_hash = hash_key(api_key)
    store = store or ApiKeyStore()
    # Active keys are cached per process for MAIP_API_KEY_CACHE_TTL seconds (5 in Lambda, 0 locally): the warm
    # emit path then reads nothing but writes its event, and a revocation takes effect within that bound.
    # Unknown and revoked keys are never cached, so a new key works at once.
    # (The local stack caches with TTL 0 too, dropping entries whenever the keys table changes: see freshness.)
    deadline = freshness.expiry(get_settings().api_key_cache_ttl)
    hit = _cache.get((store.table, key_hash)) if deadline is not None else None
    if hit and freshness.fresh(hit[0], hit[1]):
        return hit[2]
    stamped = freshness.stamp()
    record = store.by_hash(key_hash)
    # The lookup is by hash; compare again in constant time so no code path compares secrets byte by byte.
    if record is None or not hmac.compare_digest(record["key_hash"], key_hash) or record.get("revoked_at"):
        return None
    if deadline is not None:
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[(store.table, key_hash)] = (deadline, stamped, record)
    return record


_cache: dict[tuple[str, str], tuple[float, int | None, dict[str, Any]]] = {}


def list_api_keys(tenant_id: str, store: ApiKeyStore | None = None) -> list[dict[str, Any]]:
    return [public_view(r) for r in (store or ApiKeyStore()).by_tenant(tenant_id)]


def revoke_api_key(key_id: str, store: ApiKeyStore | None = None) -> dict[str, Any] | None:
    store = store or ApiKeyStore()
    record = store.by_key_id(key_id)
    if record is None:
        return None
    store.mark_revoked(record["key_hash"], format_time(utc_now()))
    _cache.pop((store.table, record["key_hash"]), None)  # this process at once; others within the cache TTL
    return public_view(store.by_hash(record["key_hash"]) or record)
