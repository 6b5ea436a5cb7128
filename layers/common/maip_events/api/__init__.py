"""HTTP API: the resolver factory, error mapping to the contract's JSON, and one router per resource."""
from maip_events.api.app import create_app


def all_routers() -> list:
    """Every router, for the OpenAPI document (each function itself includes only its own router)."""
    from maip_events.api import batch, events, export, integrity, metrics, streams, webhooks

    return [events.router, batch.router, webhooks.router, export.router, streams.router, metrics.router, integrity.router]


__all__ = ["all_routers", "create_app"]
