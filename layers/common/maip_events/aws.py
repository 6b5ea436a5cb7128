"""Lazily created AWS clients, one per process: nothing is built at import time."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from maip_events.settings import get_settings


def client(service: str) -> Any:
    """The process's client for `service`, for the current settings (a settings reset yields a new client)."""
    settings = get_settings()
    endpoint = settings.dynamodb_endpoint if service in ("dynamodb", "dynamodbstreams", "sqs", "s3", "kms") else None
    return _client(service, settings.region, endpoint)


@lru_cache(maxsize=None)
def _client(service: str, region: str, endpoint: str | None) -> Any:
    import boto3  # imported on first use: keeps handler import (cold start) cheap
    from botocore.config import Config

    return boto3.session.Session().client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        config=Config(
            retries={"mode": "standard", "max_attempts": 4},
            connect_timeout=3,
            read_timeout=10,
            # Requests are built by our own typed code; botocore re-validating every parameter costs ~15% per call.
            parameter_validation=False,
        ),
    )


def dynamodb() -> Any:
    return client("dynamodb")


def reset() -> None:
    _client.cache_clear()
