"""Errors are values of the contract: typed exceptions here, mapped to the JSON shape in one place (api.app)."""
from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    status = 500
    code = "internal"
    message = "An internal error occurred."

    def __init__(self, message: str | None = None, details: list[Any] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details or []
        self.headers = headers or {}


class InvalidRequest(ApiError):
    status, code, message = 400, "invalid_request", "The request is invalid."


class Unauthorized(ApiError):
    status, code, message = 401, "unauthorized", "A valid API key or Bearer token is required."


class Forbidden(ApiError):
    status, code, message = 403, "forbidden", "The credential does not allow this request."


class NotFound(ApiError):
    status, code, message = 404, "not_found", "The resource was not found."


class MethodNotAllowed(ApiError):
    status, code, message = 405, "method_not_allowed", "The method is not allowed on this resource."


class Conflict(ApiError):
    status, code, message = 409, "conflict", "The request conflicts with the current state."


class Gone(ApiError):
    status, code, message = 410, "gone", "The resource existed but is no longer available."


class PayloadTooLarge(ApiError):
    status, code, message = 413, "payload_too_large", "The request payload is too large."


class UnsupportedMediaType(ApiError):
    status, code, message = 415, "unsupported_media_type", "The request body must be application/json."


class RateLimited(ApiError):
    status, code, message = 429, "rate_limited", "Too many requests; retry later."


class Internal(ApiError):
    pass


def error_body(code: str, message: str, request_id: str | None, details: list[Any] | None = None) -> str:
    """The contract's error document (CONTRACT §5)."""
    return json.dumps(
        {"error": {"code": code, "message": message, "details": details or []}, "request_id": request_id},
        ensure_ascii=False,
    )


def error_response(err: ApiError, request_id: str | None) -> dict[str, Any]:
    """An API Gateway (HTTP API v2) proxy response for `err`."""
    return {
        "statusCode": err.status,
        "headers": {"Content-Type": "application/json", **({"x-request-id": request_id} if request_id else {}), **err.headers},
        "body": error_body(err.code, err.message, request_id, err.details),
        "isBase64Encoded": False,
    }
