"""The event-type catalog and the API scopes (from the MAIP "Emit Event" documentation)."""

EVENT_TYPES: tuple[str, ...] = (
    "agent.registered", "agent.updated", "agent.suspended", "agent.revoked", "agent.restored",
    "session.created", "session.refreshed", "session.expired", "session.revoked",
    "trust.computed", "trust.threshold_breach", "trust.delegation_offered",
    "trust.delegation_accepted", "trust.delegation_expired",
    "orchestration.started", "orchestration.completed", "orchestration.failed", "orchestration.timeout",
    "dataset.attested", "dataset.lineage_updated",
    "model.attested", "model.lineage_updated",
    "guardrail.violation", "guardrail.circuit_breaker_opened", "guardrail.circuit_breaker_closed",
    "anomaly.reported", "anomaly.resolved",
    "killswitch.activated",
)
EVENT_TYPE_SET = frozenset(EVENT_TYPES)
NAMESPACES = frozenset(t.split(".", 1)[0] for t in EVENT_TYPES)

SEVERITIES = ("info", "warn", "error")

SCOPES: tuple[str, ...] = (
    "events:write", "events:read", "webhooks:write", "webhooks:read", "metrics:read", "streams:write", "streams:read",
)
ALL_SCOPES = "*"
