"""Where S3 log streams may write. Two rules, checked when a stream is created or changed (400) and again
before every PutObject (a stream stored under older rules fails on its own instead of writing):

- the bucket: one the operator allowed for that tenant in MAIP_STREAM_BUCKETS, a JSON object
  `{"<tenant id>": ["bucket", ...], "*": ["bucket shared by every tenant"]}` (deployed: the StreamBuckets
  parameter; every bucket must also match StreamBucketPrefix, the function's IAM boundary). Unset, no bucket
  is allowed deployed, and any bucket in the local stack. Chosen over assuming a tenant-supplied role with an
  external id because it keeps one static IAM boundary the operator reviews (no cross-account trust to manage);
  a tenant-owned bucket is allowed by listing it for that tenant.
- the key: `<prefix>tenant=<own id>/dt=YYYY-MM-DD/hour=HH/<batch>.ndjson.gz`. The tenant's optional prefix is
  plain path segments (letters, digits, `_`, `-`, `.`; no `=`, no `.`/`..` segment, no empty or absolute
  segment, no percent-encoding), so a key never holds a partition other than the tenant's own."""
from __future__ import annotations

import json
import re

from maip_events.errors import InvalidRequest
from maip_events.settings import get_settings

# The prefix rule as one regex, also the OpenAPI `pattern` of S3Config.prefix (siem/models.py), so the schema and
# this check cannot drift: empty, or segments of 1-64 letters, digits, `_`, `-`, `.` (not only dots), each ending in
# '/'. Lookahead is in both Python and ECMA-262 (JSON Schema) regexes.
PREFIX_PATTERN = r"^(?:(?!\.+/)[A-Za-z0-9_.-]{1,64}/)*$"
_PREFIX = re.compile(PREFIX_PATTERN)
MAX_PREFIX = 256


def allowed_buckets(tenant_id: str) -> set[str] | None:
    """The buckets this tenant may use, or None for any (local stack without a list)."""
    settings = get_settings()
    if not settings.stream_buckets:
        return None if settings.local else set()
    try:
        table = json.loads(settings.stream_buckets)
    except json.JSONDecodeError:
        return set()  # a broken setting allows nothing
    if not isinstance(table, dict):
        return set()
    return {str(b) for key in (tenant_id, "*") for b in (table.get(key) or []) if isinstance(b, str)}


def bucket_problem(tenant_id: str, bucket: str) -> str | None:
    prefix = get_settings().stream_bucket_prefix
    if prefix and not bucket.startswith(prefix):
        return f"must start with {prefix!r} (the buckets this deployment may write to)"
    allowed = allowed_buckets(tenant_id)
    if allowed is not None and bucket not in allowed:
        return "is not a bucket the operator allowed for this tenant"
    return None


def prefix_problem(prefix: str) -> str | None:
    if len(prefix) > MAX_PREFIX:
        return f"is longer than {MAX_PREFIX} characters"
    if _PREFIX.fullmatch(prefix):
        return None
    if not prefix.endswith("/"):
        return "must end with '/'"
    return "must be path segments of letters, digits, '_', '-' and '.' (no '=', '%', '..', empty or absolute segments)"


def check(tenant_id: str, bucket: str, prefix: str) -> None:
    """400 unless (bucket, prefix) keeps this tenant's objects in an allowed bucket under its own partition."""
    details = []
    if problem := bucket_problem(tenant_id, bucket):
        details.append({"field": "config.bucket", "issue": problem})
    if problem := prefix_problem(prefix):
        details.append({"field": "config.prefix", "issue": problem})
    if details:
        raise InvalidRequest("`config` is not allowed: " + "; ".join(f"{d['field']} {d['issue']}" for d in details) + ".",
                             details=details)


def object_key(tenant_id: str, prefix: str, hour: str, batch: str) -> str:
    """The object key; raises ValueError when the rules above do not hold (checked again at send time)."""
    if problem := prefix_problem(prefix):
        raise ValueError(f"prefix {problem}")
    key = f"{prefix}tenant={tenant_id}/dt={hour[:10]}/hour={hour[11:13]}/{batch}.ndjson.gz"
    if [s for s in key.split("/") if s.startswith("tenant=")] != [f"tenant={tenant_id}"]:
        raise ValueError("the key must hold exactly the tenant's own partition")
    return key
