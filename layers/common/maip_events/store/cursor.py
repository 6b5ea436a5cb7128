"""Opaque, tamper-proof `next_token` cursors bound to one tenant and one set of filters."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from maip_events.errors import InvalidRequest
from maip_events.settings import get_settings


def _sign(payload: bytes) -> bytes:
    # Keyed BLAKE2b is a MAC (RFC 7693 §3) at a fraction of HMAC-SHA256's cost per page.
    key = get_settings().cursor_secret.encode()
    return hashlib.blake2b(payload, key=key if len(key) <= 64 else hashlib.sha512(key).digest(), digest_size=16).digest()


def encode(scope: dict[str, Any], position: dict[str, Any]) -> str:
    """`scope` (tenant + filters) is signed into the token but not carried: it must match on the way back."""
    body = json.dumps(position, separators=(",", ":")).encode()
    mac = _sign(body + b"|" + json.dumps(scope, sort_keys=True).encode())
    return base64.urlsafe_b64encode(body + b"." + mac).decode().rstrip("=")


def decode(token: str, scope: dict[str, Any]) -> dict[str, Any]:
    """The position inside `token`; 400 if it was altered or belongs to another tenant or query."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        # The MAC is 16 raw bytes and may itself contain ".": split by position, not by separator.
        if raw[-17:-16] != b".":
            raise ValueError("malformed")
        body, mac = raw[:-17], raw[-16:]
        expected = _sign(body + b"|" + json.dumps(scope, sort_keys=True).encode())
        if not hmac.compare_digest(mac, expected):
            raise ValueError("bad signature")
        position = json.loads(body)
        if not isinstance(position, dict):
            raise ValueError("bad position")
        return position
    except (ValueError, TypeError):
        raise InvalidRequest(
            "next_token is invalid: send back the token you received with the same filters.",
            details=[{"field": "next_token", "issue": "invalid or does not match this query"}],
        ) from None
