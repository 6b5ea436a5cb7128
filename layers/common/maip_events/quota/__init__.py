"""Per-tenant request quota: token leases from a shared DynamoDB token bucket (store.quota).

Every authenticated request of a tenant takes one token. A warm Lambda does not write per request: it leases
a chunk of the tenant's tokens with one conditional UpdateItem and serves requests from them in memory.
The chunk follows the tenant's recent rate in this Lambda (about LEASE_SECONDS of it), between 1 and
burst/4; leased tokens expire after LEASE_TTL. A refused lease is remembered until the bucket refills, so a
tenant flooding past its quota costs at most one (failed) write per Lambda per REFUSAL_FLOOR seconds.

Bounds (N = warm Lambdas serving the tenant, rate/burst = MAIP_TENANT_QUOTA):
- Long run: every admitted request used a leased token, and leases obey the bucket, so admissions never
  exceed burst + rate x elapsed.
- Any window of T seconds: admitted <= burst + rate x T + min(rate x LEASE_TTL, N x burst/4) (tokens leased
  earlier and still held), plus rate x clock skew between Lambdas.
- Writes: about 1 / min(r x LEASE_SECONDS, burst/4) lease writes per request at r requests/s of the tenant
  in one Lambda (0.02 at 10 requests/s with 100,200), at most one per LEASE_TTL in a nearly idle Lambda.
Unused leased tokens of a Lambda that goes quiet are lost, so a tenant may see 429s a little below its rate.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

from maip_events.errors import RateLimited
from maip_events.settings import get_settings
from maip_events.store.quota import QuotaStore

LEASE_SECONDS = 5.0  # a lease covers about this long of the tenant's traffic in this Lambda
LEASE_TTL = 10.0  # leased tokens unused after this long are dropped
REFUSAL_FLOOR = 0.1  # least seconds a refused Lambda waits before leasing again


def parse_quota(spec: str) -> tuple[float, float]:
    """"rps,burst" (burst defaults to rps, at least 1), e.g. "100,200" or "0.5,1"."""
    parts = [p.strip() for p in spec.split(",")]
    if not 1 <= len(parts) <= 2 or not parts[0]:
        raise ValueError(f"a quota is 'rps,burst', got {spec!r}")
    rate = float(parts[0])
    burst = float(parts[1]) if len(parts) == 2 and parts[1] else max(1.0, math.ceil(rate))
    if not (rate > 0 and burst >= 1):
        raise ValueError(f"a quota needs rps > 0 and burst >= 1, got {spec!r}")
    return rate, burst


@dataclass
class _Held:
    tokens: int = 0
    expires: float = 0.0
    leased: int = 0
    leased_at: float = 0.0
    refused_until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class TenantQuota:
    """The tokens this process holds per tenant, leased from the shared bucket `<prefix>#<tenant>`."""

    def __init__(self, rate: float, burst: float, store: QuotaStore | None = None, clock: Callable[[], float] = time.time,
                 prefix: str = "requests"):
        self.rate, self.burst, self.clock, self.prefix = rate, burst, clock, prefix
        self.store = store or QuotaStore()
        self.max_chunk = max(1, int(burst // 4))
        self.leases = 0  # lease writes made (benches, tests)
        self._held: dict[str, _Held] = {}
        self._guard = threading.Lock()

    def admit(self, tenant_id: str) -> float:
        """Takes one token: 0.0 if admitted, else seconds until the tenant may retry."""
        with self._guard:
            held = self._held.setdefault(tenant_id, _Held())
        with held.lock:
            now = self.clock()
            if now < held.refused_until:
                return held.refused_until - now
            if held.tokens > 0 and now < held.expires:
                held.tokens -= 1
                return 0.0
            grant = self.store.take(f"{self.prefix}#{tenant_id}", self._chunk(held, now), self.rate, self.burst, now)
            self.leases += 1
            if not grant.tokens:
                wait = max(grant.retry_after, REFUSAL_FLOOR)
                held.tokens, held.refused_until = 0, now + wait
                return wait
            held.tokens, held.leased, held.leased_at, held.expires = grant.tokens - 1, grant.tokens, now, now + LEASE_TTL
            return 0.0

    def _chunk(self, held: _Held, now: float) -> int:
        """About LEASE_SECONDS of this tenant's recent rate here (the last lease's use over its age)."""
        if not held.leased:
            return 1
        used = held.leased - held.tokens
        recent_rate = used / max(now - held.leased_at, 0.01)
        return max(1, min(self.max_chunk, math.ceil(recent_rate * LEASE_SECONDS)))


@lru_cache(maxsize=4)
def _request_quota(spec: str, table: str) -> TenantQuota:
    rate, burst = parse_quota(spec)
    return TenantQuota(rate, burst, QuotaStore(table=table))


def enforce_request_quota(tenant_id: str) -> None:
    """429 `rate_limited` with Retry-After when the tenant is over MAIP_TENANT_QUOTA (unset = no quota).
    Called once per request after authentication, so only a tenant's own credentials spend its quota."""
    settings = get_settings()
    if not settings.tenant_quota:
        return
    wait = _request_quota(settings.tenant_quota, settings.quota_table).admit(tenant_id)
    if wait:
        retry_after = str(max(1, math.ceil(wait)))
        raise RateLimited(f"Too many requests for this tenant; retry after {retry_after} s.", headers={"Retry-After": retry_after})
