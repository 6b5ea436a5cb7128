"""The per-tenant request quota of the local stack: on by default, the deployed mechanism.

`maip-events serve` runs the same quota as a deployed stack (maip_events.quota: token leases from the
QuotaTable built from template.yaml, checked after authentication, 429 `rate_limited` with Retry-After), with
a default generous enough for the e2e and load suites: LOCAL_DEFAULT requests/s per tenant. Set
`MAIP_TENANT_QUOTA="rps,burst"` (e.g. "5,10") to tighten it, or `MAIP_TENANT_QUOTA=off` to turn it off.
`MAIP_LOCAL_RATE_LIMIT` is the older name of the same setting.
"""
from __future__ import annotations

import os

from maip_events.quota import parse_quota

LOCAL_DEFAULT = "1000,2000"


def configure() -> str | None:
    """Sets MAIP_TENANT_QUOTA for the handlers of this process; returns the quota in force (None = off)."""
    spec = (os.environ.get("MAIP_TENANT_QUOTA") or os.environ.get("MAIP_LOCAL_RATE_LIMIT") or LOCAL_DEFAULT).strip()
    if spec.lower() in ("off", "0", "none"):
        os.environ["MAIP_TENANT_QUOTA"] = ""
        return None
    parse_quota(spec)  # a bad setting fails `serve` at once
    os.environ["MAIP_TENANT_QUOTA"] = spec
    return spec


def from_environment() -> None:
    """The gateway's `before_route` hook: none. The quota runs in the handlers after authentication (so only a
    tenant's own credentials spend its quota), as deployed; this only turns it on for the local stack."""
    configure()
    return None
