"""The resolver every HTTP function uses: authentication first, then Powertools routing and validation,
and every failure mapped to the contract's error JSON in this one place."""
from __future__ import annotations

import base64
import binascii
import json
import threading
from contextvars import ContextVar
from typing import Any, Callable

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from maip_events.auth import Principal, authenticate, validate_tenant_id
from maip_events.quota import enforce_request_quota
from maip_events.errors import (
    ApiError,
    Internal,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    error_response,
)

logger = Logger(service="maip-events")

PUBLIC_PATHS = frozenset({"/v1/openapi.json", "/v1/docs"})
MAX_BODY_BYTES = 1024 * 1024  # single-resource bodies; the batch endpoint raises its own cap
# Per-path caps: a batch of 100 events with 16 KiB metadata each needs ~1.7 MB; Lambda's payload limit is 6 MB.
BODY_LIMITS = {"/v1/observability/events:batch": 6 * 1024 * 1024}
# Powertools keeps the current request on class attributes; the local stack calls handlers from threads.
_RESOLVE_LOCK = threading.Lock()
# The caller of the request being resolved. A ContextVar, not the router context: one router may be
# included in several apps (every function of the local stack lives in one process).
_PRINCIPAL: ContextVar[Principal | None] = ContextVar("maip_principal", default=None)
_EVENT: ContextVar[dict[str, Any]] = ContextVar("maip_event", default={})


def _strict_json(text: str) -> Any:
    """json.loads without NaN/Infinity, which are not JSON and could not be returned as JSON."""

    def reject(constant: str) -> Any:
        raise json.JSONDecodeError(f"{constant} is not valid JSON", text, 0)

    return json.loads(text, parse_constant=reject)


def _json_media_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _prepare(event: dict[str, Any]) -> None:
    """Checks that need no I/O and precede routing: body decoding, media type, size, tenant header and the
    presence of a credential. Verifying the credential waits until the body is valid, so a rejected
    request costs no DynamoDB call."""
    http = event.get("requestContext", {}).get("http", {})
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    body = event.get("body")
    if event.get("isBase64Encoded") and body:
        try:
            event["body"] = base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidRequest("The request body must be UTF-8 encoded JSON.") from None
        event["isBase64Encoded"] = False
        body = event["body"]
    if body and http.get("method") in ("POST", "PUT", "PATCH"):
        limit = BODY_LIMITS.get(event.get("rawPath"), MAX_BODY_BYTES)
        if len(body.encode("utf-8", "surrogatepass")) > limit:
            raise PayloadTooLarge(f"The request body exceeds {limit} bytes.")
        content_type = headers.get("content-type")
        if content_type is not None and not _json_media_type(content_type):
            raise UnsupportedMediaType(f"Content-Type {content_type!r} is not supported; send application/json.")
    if event.get("rawPath") not in PUBLIC_PATHS:
        # No credential at all is a 401 before any header check: an unauthenticated caller learns nothing more.
        if not headers.get("x-api-key") and not headers.get("authorization"):
            raise Unauthorized("Send an X-API-Key header or an Authorization: Bearer token.")
        validate_tenant_id(headers.get("x-tenant-id"))


def _authenticate(app: "MaipResolver", next_middleware: Callable) -> Response:
    """Runs after request validation, before the route: verifies the credential (401/403)."""
    event = _EVENT.get()
    if event.get("rawPath") not in PUBLIC_PATHS:
        _PRINCIPAL.set(authenticate({k.lower(): v for k, v in (event.get("headers") or {}).items()}))
        enforce_request_quota(_PRINCIPAL.get().tenant_id)  # per-tenant quota (429), after auth: only a tenant's own keys spend it
    return next_middleware(app)


def _validation_details(errors: Any) -> list[dict[str, Any]]:
    details = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
        details.append({"field": ".".join(loc) or None, "issue": error.get("msg", "invalid"), "type": error.get("type")})
    return details


class MaipResolver(APIGatewayHttpResolver):
    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        request_id = (event.get("requestContext") or {}).get("requestId")
        with _RESOLVE_LOCK:
            try:
                _prepare(event)
            except ApiError as err:
                if err.status >= 500:
                    logger.exception("request failed before routing")
                return error_response(err, request_id)
            tokens = _PRINCIPAL.set(None), _EVENT.set(event)
            try:
                self.append_context(request_id=request_id)
                return super().resolve(event, context)
            finally:
                _PRINCIPAL.reset(tokens[0])
                _EVENT.reset(tokens[1])


def current_principal(scope: str) -> Principal:
    """The authenticated caller, after checking it holds `scope` (403 otherwise)."""
    principal = _PRINCIPAL.get()
    if principal is None:  # only public routes run without one; reaching here is a wiring bug
        raise Internal()
    return principal.require(scope)


def json_response(status: int, document: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(document, ensure_ascii=False, separators=(",", ":")),
        headers=headers,
    )


def reject_unknown_query(allowed: set[str]) -> None:
    unknown = sorted(set(_EVENT.get().get("queryStringParameters") or {}) - allowed)
    if unknown:
        raise InvalidRequest(
            f"Unknown query parameter(s): {', '.join(unknown)}.",
            details=[{"field": name, "issue": "unknown query parameter"} for name in unknown],
        )


def create_app(*routers: Router, docs: bool = False) -> MaipResolver:
    app = MaipResolver(enable_validation=True, json_body_deserializer=_strict_json)
    app.use(middlewares=[_authenticate])

    def request_id() -> str | None:
        return app.context.get("request_id") or (app.current_event.request_context.request_id if app.current_event else None)

    def as_response(err: ApiError) -> Response:
        doc = error_response(err, request_id())
        return Response(status_code=doc["statusCode"], content_type="application/json", body=doc["body"], headers=doc["headers"])

    @app.exception_handler(ApiError)
    def on_api_error(err: ApiError) -> Response:
        if err.status >= 500:
            logger.exception("request failed")
        return as_response(err)

    @app.exception_handler(RequestValidationError)
    def on_validation_error(err: RequestValidationError) -> Response:
        errors = list(err.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return as_response(InvalidRequest("The request body is not valid JSON."))
        return as_response(InvalidRequest("The request does not match the schema.", details=_validation_details(errors)))

    @app.exception_handler(NotFoundError)
    def on_not_found(_: NotFoundError) -> Response:
        return as_response(NotFound())

    @app.not_found
    def not_found(_: Exception) -> Response:
        return as_response(NotFound(f"No route for {app.current_event.http_method} {app.current_event.path}."))

    @app.exception_handler(Exception)
    def on_unexpected(_: Exception) -> Response:
        logger.exception("unhandled error")
        return as_response(Internal())

    for router in routers:
        app.include_router(router)
    if docs:
        from maip_events.api.docs import add_docs

        add_docs(app, routers)
    return app


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
