"""Per-tenant rate limiting for the local stack: a token bucket per X-Tenant-ID, answered with a 429 `rate_limited`.

Deployed, HTTP API stage throttling (template.yaml DefaultRouteSettings) protects the service as a whole;
`MAIP_LOCAL_RATE_LIMIT="rps,burst"` (e.g. "50,100") makes `maip-events serve` refuse a tenant's excess requests
the way a per-tenant quota would, so clients can exercise their 429 handling offline.
"""
from __future__ import annotations

import math
import os
import threading
import time
from typing import Callable

Refusal = tuple[int, str, str, dict[str, str]]


class TenantRateLimiter:
    """Token buckets keyed by tenant: `rate` tokens per second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, last refill)
        self._lock = threading.Lock()

    def acquire(self, tenant: str) -> float:
        """Takes a token for `tenant`: 0.0 if allowed, else seconds until one is available."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(tenant, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[tenant] = (tokens - 1.0, now)
                return 0.0
            self._buckets[tenant] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def __call__(self, headers: dict[str, str]) -> Refusal | None:
        """The gateway's `before_route` hook (headers are lower-cased)."""
        tenant = headers.get("x-tenant-id") or ""
        wait = self.acquire(tenant)
        if not wait:
            return None
        retry_after = str(max(1, math.ceil(wait)))
        return 429, "rate_limited", f"Too many requests for this tenant; retry after {retry_after} s.", {"Retry-After": retry_after}


def parse(spec: str) -> TenantRateLimiter:
    """"rps,burst" (burst defaults to rps, at least 1), e.g. "50,100" or "0.5,1"."""
    parts = [p.strip() for p in spec.split(",")]
    if not 1 <= len(parts) <= 2 or not parts[0]:
        raise ValueError(f"MAIP_LOCAL_RATE_LIMIT must be 'rps,burst', got {spec!r}")
    rate = float(parts[0])
    burst = int(parts[1]) if len(parts) == 2 and parts[1] else max(1, math.ceil(rate))
    return TenantRateLimiter(rate, burst)


def from_environment() -> TenantRateLimiter | None:
    spec = os.environ.get("MAIP_LOCAL_RATE_LIMIT", "").strip()
    return parse(spec) if spec else None
