"""Standard Webhooks signing (https://www.standardwebhooks.com), the one place for webhooks and https log
streams: `v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">` keyed by the bytes after
`whsec_`, computed by the `standardwebhooks` reference library."""
from __future__ import annotations

import base64
import secrets
from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    return Webhook(secret).sign(message_id, datetime.fromtimestamp(timestamp, timezone.utc), body.decode("utf-8"))


def signature_header(secrets_in_use: list[str], message_id: str, timestamp: int, body: bytes) -> str:
    """Space-separated signatures, one per active secret (during a rotation both old and new)."""
    return " ".join(sign(s, message_id, timestamp, body) for s in secrets_in_use)


def headers(secrets_in_use: list[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets_in_use, message_id, timestamp, body),
    }
