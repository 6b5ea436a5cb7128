"""The error document every non-2xx response carries (CONTRACT §5)."""
from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[Any]


class ErrorDocument(BaseModel):
    error: ErrorBody
    request_id: Optional[str]


_DESCRIPTIONS = {
    400: "invalid_request: bad JSON, schema violation, unknown field or bad query",
    401: "unauthorized: missing or invalid credential",
    403: "forbidden: credential of another tenant or missing scope",
    404: "not_found",
    409: "conflict",
    410: "gone: the event expired by retention (its leaf stays in the log)",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal",
}


def error_responses(*statuses: int) -> dict[int, dict[str, Any]]:
    """OpenAPI `responses` entries for the given error statuses (plus the ones every route can return)."""
    wanted = sorted({400, 401, 403, 429, 500, *statuses})
    return {s: {"description": _DESCRIPTIONS[s], "content": {"application/json": {"model": ErrorDocument}}} for s in wanted}
