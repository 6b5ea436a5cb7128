"""Metrics aggregation: hourly per-tenant counters kept by a stream consumer, and the time-series query."""
