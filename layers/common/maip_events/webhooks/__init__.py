"""Webhooks (CONTRACT §8): subscriptions, matching and the delivery pipeline (the dispatcher queues one
message per event and endpoint; the delivery consumer sends it through maip_events.http, retries,
dead-letters and auto-disables)."""
