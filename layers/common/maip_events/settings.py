"""Process-wide settings, read from the environment once (and re-read only by tests via `reset()`)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


# Table env vars of template.yaml's Globals and their names when not deployed (local stack, tests).
TABLE_DEFAULTS = {
    "MAIP_EVENTS_TABLE": "maip-events",
    "MAIP_KEYS_TABLE": "maip-api-keys",
}


@dataclass(frozen=True)
class Settings:
    region: str
    dynamodb_endpoint: str | None
    events_table: str
    keys_table: str
    jwt_secret: str | None
    jwt_jwks_url: str | None
    jwt_issuer: str | None
    jwt_audience: str | None
    cursor_secret: str
    local: bool  # the Docker-less local stack: loopback webhook targets allowed, http allowed


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "")
    return value if value else default


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings(
        region=_env("AWS_REGION") or _env("AWS_DEFAULT_REGION") or "us-east-1",
        dynamodb_endpoint=_env("MAIP_DYNAMODB_ENDPOINT"),
        events_table=_env("MAIP_EVENTS_TABLE", TABLE_DEFAULTS["MAIP_EVENTS_TABLE"]),
        keys_table=_env("MAIP_KEYS_TABLE", TABLE_DEFAULTS["MAIP_KEYS_TABLE"]),
        jwt_secret=_env("MAIP_JWT_SECRET"),
        jwt_jwks_url=_env("MAIP_JWT_JWKS_URL"),
        jwt_issuer=_env("MAIP_JWT_ISSUER"),
        jwt_audience=_env("MAIP_JWT_AUDIENCE"),
        # Deployed stacks always pass CursorSecret; the fallback only serves the local stack and tests.
        cursor_secret=_env("MAIP_CURSOR_SECRET", "maip-local-cursor-secret"),
        local=_env("MAIP_LOCAL", "0") == "1",
    )


def reset() -> None:
    """Forget cached settings and clients (tests change the environment between cases)."""
    from maip_events import aws

    get_settings.cache_clear()
    aws.reset()
