"""Per-tenant fan-out rate: a token bucket per tenant (MAIP_FANOUT_RATE units per second, MAIP_FANOUT_BURST
at once; a unit is one webhook delivery or one event sent to one log stream). A tenant over its rate is never
refused and never slows anyone else: its messages are queued with a delay (SQS DelaySeconds, and `not_before`
beyond 15 minutes) that spreads them at the tenant's rate, while other tenants' messages of the same batch
go out at once.

Limits: the buckets live in the dispatcher's memory. DynamoDB Streams gives each stream shard to one
invocation at a time and a warm instance keeps its buckets, so the rate holds per shard; a tenant whose
events spread over k shards gets at most k x the rate, and a cold start begins with a full burst."""
from __future__ import annotations

import threading
import time


class TenantRateLimiter:
    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = max(rate, 0.001), max(burst, 1.0)
        self._buckets: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, at)
        self._lock = threading.Lock()

    def not_before(self, tenant_id: str, cost: float, now: float | None = None) -> float | None:
        """Takes `cost` units from the tenant's bucket; None when they may go now, else when they may go."""
        now = time.time() if now is None else now
        with self._lock:
            tokens, at = self._buckets.get(tenant_id, (self.burst, now))
            tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate) - cost
            self._buckets[tenant_id] = (tokens, now)
        return None if tokens >= 0 else now + (-tokens) / self.rate
