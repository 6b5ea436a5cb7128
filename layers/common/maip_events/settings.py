"""Process-wide settings, read from the environment once (and re-read only by tests via `reset()`)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


# Table env vars of template.yaml's Globals and their names when not deployed (local stack, tests).
TABLE_DEFAULTS = {
    "MAIP_EVENTS_TABLE": "maip-events",
    "MAIP_KEYS_TABLE": "maip-api-keys",
    "MAIP_WEBHOOKS_TABLE": "maip-webhooks",
    "MAIP_DELIVERIES_TABLE": "maip-webhook-deliveries",
    # Queues: deployed the env holds the queue URL (!Ref), locally the queue name.
    "MAIP_WEBHOOK_QUEUE": "maip-webhook-deliveries",
    "MAIP_WEBHOOK_DLQ": "maip-webhook-dead-letters",
    "MAIP_WEBHOOK_REPLAY_QUEUE": "maip-webhook-replays",
    "MAIP_STREAMS_TABLE": "maip-log-streams",
    "MAIP_STREAM_QUEUE": "maip-stream-deliveries",
    "MAIP_DISPATCH_FAILURE_QUEUE": "maip-dispatch-failures",
    "MAIP_STREAM_DLQ": "maip-stream-dead-letters",
    "MAIP_COUNTERS_TABLE": "maip-counts",
    "MAIP_TENANTS_TABLE": "maip-tenant-settings",
    "MAIP_IDEMPOTENCY_TABLE": "maip-idempotency",
    "MAIP_QUOTA_TABLE": "maip-quotas",
    "MAIP_INTEGRITY_TABLE": "maip-integrity",  # integrity logs (maip_events.integrity)
    "MAIP_SEAL_QUEUE": "maip-seal-requests",
    "MAIP_ARCHIVE_BUCKET": "maip-events-archive",  # the S3 archive tier (maip_events.archive)
}

# Seconds between webhook attempts (jittered): 5 s, then minutes to hours, about 3 days in total.
WEBHOOK_RETRY_SCHEDULE = "5,60,300,1800,7200,18000,36000,43200,43200,43200,43200,43200"
# Seconds between log-stream batch retries (SQS delay, at most 900 each): 5 s, then minutes, about 4 hours in total.
STREAM_RETRY_SCHEDULE = "5,30,120,300,600" + ",900" * 14


@dataclass(frozen=True)
class Settings:
    region: str
    dynamodb_endpoint: str | None
    events_table: str
    keys_table: str
    jwt_secret: str | None
    jwt_jwks_url: str | None
    jwt_issuer: str | None
    jwt_audience: str | None  # required (for JWKS tokens) whenever jwt_jwks_url is set
    jwt_jwks_refresh: float  # MAIP_JWT_JWKS_REFRESH: seconds between JWKS refreshes (a removed key dies within it)
    jwt_jwks_cooldown: float  # MAIP_JWT_JWKS_COOLDOWN: least seconds between two JWKS fetches (unknown kids)
    cursor_secret: str
    local: bool  # the Docker-less local stack: loopback webhook targets allowed, http allowed
    webhooks_table: str
    deliveries_table: str
    webhook_queue: str  # URL or (local) name of the delivery queue
    webhook_dlq: str
    webhook_replay_queue: str  # URL or (local) name of the replay lane of the delivery function
    webhook_retry_schedule: tuple[int, ...]  # MAIP_WEBHOOK_RETRY_SCHEDULE, seconds, comma-separated
    webhook_timeout: float  # MAIP_WEBHOOK_TIMEOUT, seconds per attempt
    webhook_disable_after: int  # MAIP_WEBHOOK_DISABLE_AFTER, seconds of continuous failure
    webhook_concurrency: int  # MAIP_WEBHOOK_CONCURRENCY, parallel POSTs per delivery batch (= the SQS BatchSize)
    streams_table: str
    stream_queue: str  # URL or (local) name of the log-stream delivery queue (first tries and retries)
    stream_dlq: str
    dispatch_failure_queue: str  # stream records the dispatcher parked (unreadable) or gave up on
    stream_retry_schedule: tuple[int, ...]  # MAIP_STREAM_RETRY_SCHEDULE, seconds, comma-separated
    stream_timeout: float  # MAIP_STREAM_TIMEOUT, seconds per destination request
    stream_bucket_prefix: str  # MAIP_STREAM_BUCKET_PREFIX: S3 destinations must use buckets named with it (deployed)
    stream_buckets: str  # MAIP_STREAM_BUCKETS: JSON {tenant or "*": [bucket, ...]}, the S3 buckets each tenant may use
    fanout_rate: float  # MAIP_FANOUT_RATE: deliveries (webhook messages + events to streams) per second per tenant
    fanout_burst: float  # MAIP_FANOUT_BURST: how many of them a tenant may queue at once before its are delayed
    export_max_bytes: int  # MAIP_EXPORT_MAX_BYTES: NDJSON bytes per export response (Lambda's limit is 6 MB)
    export_max_events: int  # MAIP_EXPORT_MAX_EVENTS: events per export response
    counters_table: str
    tenants_table: str
    tenant_settings_ttl: float  # MAIP_TENANT_SETTINGS_TTL: seconds a Lambda caches a tenant's retention (0 = read each time)
    idempotency_table: str  # idempotency records of emit/batch (Idempotency-Key), 24 h TTL
    api_key_cache_ttl: float  # MAIP_API_KEY_CACHE_TTL: seconds a Lambda caches an active API key (bounds revocation delay)
    counts_cache_ttl: float  # MAIP_COUNTS_CACHE_TTL: seconds a Lambda may reuse a first page's count buckets (exact anyway)
    quota_table: str  # per-tenant token buckets (request quota, replay budget) and replay holds
    tenant_quota: str | None  # MAIP_TENANT_QUOTA "rps,burst": each tenant's request quota (unset = none)
    replay_budget: str  # MAIP_REPLAY_BUDGET "events per hour,burst": events a tenant may replay
    archive_bucket: str  # MAIP_ARCHIVE_BUCKET: the S3 bucket of the archive tier (archive/layout.py)


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "")
    return value if value else default


def _resource(name: str) -> str:
    """A table or queue name: from the env var the template sets, else its local default."""
    return _env(name, TABLE_DEFAULTS[name])


def _seconds(name: str, default: str) -> tuple[int, ...]:
    """A comma-separated schedule of delays in seconds, e.g. "5,60,300"."""
    return tuple(int(float(part)) for part in _env(name, default).split(",") if part.strip())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings(
        region=_env("AWS_REGION") or _env("AWS_DEFAULT_REGION") or "us-east-1",
        dynamodb_endpoint=_env("MAIP_DYNAMODB_ENDPOINT"),
        events_table=_resource("MAIP_EVENTS_TABLE"),
        keys_table=_resource("MAIP_KEYS_TABLE"),
        jwt_secret=_env("MAIP_JWT_SECRET"),
        jwt_jwks_url=_env("MAIP_JWT_JWKS_URL"),
        jwt_issuer=_env("MAIP_JWT_ISSUER"),
        jwt_audience=_env("MAIP_JWT_AUDIENCE"),
        jwt_jwks_refresh=float(_env("MAIP_JWT_JWKS_REFRESH", "300")),
        jwt_jwks_cooldown=float(_env("MAIP_JWT_JWKS_COOLDOWN", "30")),
        # Deployed stacks always pass CursorSecret; the fallback only serves the local stack and tests.
        cursor_secret=_env("MAIP_CURSOR_SECRET", "maip-local-cursor-secret"),
        local=_env("MAIP_LOCAL", "0") == "1",
        webhooks_table=_resource("MAIP_WEBHOOKS_TABLE"),
        deliveries_table=_resource("MAIP_DELIVERIES_TABLE"),
        webhook_queue=_resource("MAIP_WEBHOOK_QUEUE"),
        webhook_dlq=_resource("MAIP_WEBHOOK_DLQ"),
        webhook_replay_queue=_resource("MAIP_WEBHOOK_REPLAY_QUEUE"),
        webhook_retry_schedule=_seconds("MAIP_WEBHOOK_RETRY_SCHEDULE", WEBHOOK_RETRY_SCHEDULE),
        webhook_timeout=float(_env("MAIP_WEBHOOK_TIMEOUT", "10")),
        webhook_disable_after=int(_env("MAIP_WEBHOOK_DISABLE_AFTER", str(3 * 86400))),
        webhook_concurrency=int(_env("MAIP_WEBHOOK_CONCURRENCY", "50")),
        streams_table=_resource("MAIP_STREAMS_TABLE"),
        stream_queue=_resource("MAIP_STREAM_QUEUE"),
        stream_dlq=_resource("MAIP_STREAM_DLQ"),
        dispatch_failure_queue=_resource("MAIP_DISPATCH_FAILURE_QUEUE"),
        stream_retry_schedule=_seconds("MAIP_STREAM_RETRY_SCHEDULE", STREAM_RETRY_SCHEDULE),
        stream_timeout=float(_env("MAIP_STREAM_TIMEOUT", "10")),
        stream_bucket_prefix=_env("MAIP_STREAM_BUCKET_PREFIX", ""),
        stream_buckets=_env("MAIP_STREAM_BUCKETS", ""),
        fanout_rate=float(_env("MAIP_FANOUT_RATE", "500")),
        fanout_burst=float(_env("MAIP_FANOUT_BURST", "5000")),
        export_max_bytes=int(_env("MAIP_EXPORT_MAX_BYTES", str(4 * 1024 * 1024))),
        export_max_events=int(_env("MAIP_EXPORT_MAX_EVENTS", "20000")),
        counters_table=_resource("MAIP_COUNTERS_TABLE"),
        tenants_table=_resource("MAIP_TENANTS_TABLE"),
        # Cached only inside deployed Lambdas; the local stack and tests see a change at once.
        tenant_settings_ttl=float(_env("MAIP_TENANT_SETTINGS_TTL", "30" if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and _env("MAIP_LOCAL", "0") != "1" else "0")),
        idempotency_table=_resource("MAIP_IDEMPOTENCY_TABLE"),
        # Deployed: a revoked key stops working within this many seconds; locally (and in tests) at once.
        api_key_cache_ttl=float(_env("MAIP_API_KEY_CACHE_TTL", "5" if _in_lambda() else "0")),
        counts_cache_ttl=float(_env("MAIP_COUNTS_CACHE_TTL", "10" if _in_lambda() else "0")),
        quota_table=_resource("MAIP_QUOTA_TABLE"),
        tenant_quota=_env("MAIP_TENANT_QUOTA"),
        replay_budget=_env("MAIP_REPLAY_BUDGET", "10000,10000"),
        archive_bucket=_resource("MAIP_ARCHIVE_BUCKET"),
    )


def _in_lambda() -> bool:
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")) and _env("MAIP_LOCAL", "0") != "1"


def reset() -> None:
    """Forget cached settings (tests change the environment between cases); AWS clients follow the new settings."""
    get_settings.cache_clear()
