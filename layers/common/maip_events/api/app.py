"""The resolver every HTTP function uses: authentication and scope first, then the body, then Powertools
routing and validation, and every failure mapped to the contract's error JSON in this one place."""
from __future__ import annotations

import base64
import binascii
import json
from contextvars import ContextVar
from typing import Any, Callable

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Route, Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from maip_events.auth import Principal, authenticate, validate_tenant_id
from maip_events.console import PATHS as CONSOLE_PATHS
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

PUBLIC_PATHS = frozenset({"/v1/openapi.json", "/v1/docs", "/v1/observability/integrity/public-key", *CONSOLE_PATHS})  # no data behind them
MAX_BODY_BYTES = 1024 * 1024  # single-resource bodies; the batch endpoint raises its own cap
# Per-path caps: a batch of 100 events with 16 KiB metadata each needs ~1.7 MB; Lambda's payload limit is 6 MB.
BODY_LIMITS = {"/v1/observability/events:batch": 6 * 1024 * 1024}
# The scopes each protected operation needs (CONTRACT §3), checked before the body is looked at so that a caller
# without it gets 403 whatever it sent. Handlers still call current_principal(scope), which must name one of
# them (a mismatch is a wiring bug and answers 500), so this table cannot drift silently from the handlers.
W, R = "events:write", "events:read"
ROUTE_SCOPES: dict[str, tuple[str, ...]] = {
    "POST /v1/observability/events": (W,),
    "POST /v1/observability/events:batch": (W,),
    "GET /v1/observability/events": (R,),
    "GET /v1/observability/events/export": (R,),
    "GET /v1/observability/metrics": ("metrics:read",),
    "GET /v1/observability/integrity/checkpoints": (R,),
    "GET /v1/observability/integrity/checkpoints/latest": (R,),
    "GET /v1/observability/integrity/consistency": (R,),
    "GET /v1/observability/events/{event_id}/proof": (R,),
    # Creating a destination or replaying sends past events to a URL the caller chooses: a read of events too.
    "POST /v1/observability/webhooks": ("webhooks:write", R),
    "GET /v1/observability/webhooks": ("webhooks:read",),
    "GET /v1/observability/webhooks/{webhook_id}": ("webhooks:read",),
    "PATCH /v1/observability/webhooks/{webhook_id}": ("webhooks:write",),  # + events:read to redirect (handler)
    "DELETE /v1/observability/webhooks/{webhook_id}": ("webhooks:write",),
    "POST /v1/observability/webhooks/{webhook_id}/rotate-secret": ("webhooks:write",),
    "GET /v1/observability/webhooks/{webhook_id}/deliveries": ("webhooks:read",),
    "POST /v1/observability/webhooks/{webhook_id}/replay": ("webhooks:write", R),
    "POST /v1/observability/streams": ("streams:write", R),
    "GET /v1/observability/streams": ("streams:read",),
    "GET /v1/observability/streams/{stream_id}": ("streams:read",),
    "GET /v1/observability/streams/{stream_id}/status": ("streams:read",),
    "PATCH /v1/observability/streams/{stream_id}": ("streams:write",),  # + events:read to redirect (handler)
    "DELETE /v1/observability/streams/{stream_id}": ("streams:write",),
}
# The caller of the request being resolved and the scope checked for it. ContextVars, not the router context:
# one router may be included in several apps (every function of the local stack lives in one process).
# Powertools keeps the current event on class attributes, so a process resolves one request at a time, like a
# Lambda container; the local stack gets concurrency from a pool of worker processes (maip_events_local.workers).
_PRINCIPAL: ContextVar[Principal | None] = ContextVar("maip_principal", default=None)
_SCOPE: ContextVar[tuple[str, ...]] = ContextVar("maip_scope", default=())
_EVENT: ContextVar[dict[str, Any]] = ContextVar("maip_event", default={})
# The body text and the document _check_body parsed from it, handed to Powertools so it does not parse it again.
_PARSED: ContextVar[tuple[str, Any] | None] = ContextVar("maip_parsed_body", default=None)


def _strict_json(text: str) -> Any:
    """json.loads without NaN/Infinity, which are not JSON and could not be returned as JSON."""

    def reject(constant: str) -> Any:
        raise json.JSONDecodeError(f"{constant} is not valid JSON", text, 0)

    return json.loads(text, parse_constant=reject)


def _body_json(text: str) -> Any:
    """Powertools' body deserializer: the document already parsed (and checked) for this very text, else a parse."""
    parsed = _PARSED.get()
    if parsed is not None and parsed[0] is text:
        return parsed[1]
    return _strict_json(text)


def _json_media_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _decode_body(event: dict[str, Any]) -> None:
    if event.get("isBase64Encoded") and event.get("body"):
        try:
            event["body"] = base64.b64decode(event["body"], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidRequest("The request body must be UTF-8 encoded JSON.") from None
        event["isBase64Encoded"] = False


def _authorize(event: dict[str, Any], headers: dict[str, str], route: Route | None) -> tuple[Principal | None, tuple[str, ...]]:
    """Who calls and whether it may call this operation, decided before anything about the body: a bad or missing
    credential is a 401 and a missing scope a 403 whatever was sent, so an unauthenticated caller learns nothing
    about the schema. The price: an API-key lookup (a DynamoDB read, cached per key) for requests that are then
    rejected for their body; a malformed body still never causes a write."""
    if event.get("rawPath") in PUBLIC_PATHS:
        return None, ()
    # No credential at all is a 401 before any header check: an unauthenticated caller learns nothing more.
    if not headers.get("x-api-key") and not headers.get("authorization"):
        raise Unauthorized("Send an X-API-Key header or an Authorization: Bearer token.")
    validate_tenant_id(headers.get("x-tenant-id"))
    principal = authenticate(headers)
    scopes = ROUTE_SCOPES.get(f"{route.method} {route.openapi_path}", ()) if route else ()
    principal.require(*scopes)
    enforce_request_quota(principal.tenant_id)  # 429 per tenant, after auth: only a tenant's own keys spend it
    return principal, scopes


def _check_body(event: dict[str, Any], headers: dict[str, str], route: Route | None) -> Any:
    """Size, media type and shape of the body, after authentication: a route that takes a JSON body gets exactly
    one JSON object (an array, string, number, null or nothing is a 400 and stores nothing)."""
    body = event.get("body")
    if body and event.get("requestContext", {}).get("http", {}).get("method") in ("POST", "PUT", "PATCH"):
        limit = BODY_LIMITS.get(event.get("rawPath"), MAX_BODY_BYTES)
        if len(body.encode("utf-8", "surrogatepass")) > limit:
            raise PayloadTooLarge(f"The request body exceeds {limit} bytes.")
        content_type = headers.get("content-type")
        if content_type is not None and not _json_media_type(content_type):
            raise UnsupportedMediaType(f"Content-Type {content_type!r} is not supported; send application/json.")
    if route is None or not route.dependant.body_params:
        return None
    if not body or not body.strip():
        raise InvalidRequest("The request body must be a JSON object.", details=[{"field": None, "issue": "missing body"}])
    try:
        document = _strict_json(body)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; absurd nesting must not crash
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(document, dict):
        raise InvalidRequest("The request body must be a JSON object.",
                             details=[{"field": None, "issue": f"expected an object, got {type(document).__name__}"}])
    return document


def _validation_details(errors: Any) -> list[dict[str, Any]]:
    details = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
        details.append({"field": ".".join(loc) or None, "issue": error.get("msg", "invalid"), "type": error.get("type")})
    return details


class MaipResolver(APIGatewayHttpResolver):
    def _route_for(self, event: dict[str, Any]) -> Route | None:
        """The route Powertools will call for this event (its own matching, as in _resolve), or None."""
        method = ((event.get("requestContext") or {}).get("http") or {}).get("method", "").upper()
        path = self._remove_prefix(event.get("rawPath") or "/")
        return next((r for r in self._static_routes + self._dynamic_routes if r.method == method and r.rule.match(path)), None)

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        request_id = (event.get("requestContext") or {}).get("requestId")
        # The logs' correlation id (Powertools' correlation_paths.API_GATEWAY_HTTP), without a JMESPath search per request.
        logger.set_correlation_id(request_id)
        try:
            _decode_body(event)
            headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
            route = self._route_for(event)
            principal, scope = _authorize(event, headers, route)
            document = _check_body(event, headers, route)
        except ApiError as err:
            if err.status >= 500:
                logger.exception("request failed before routing")
            return error_response(err, request_id)
        parsed = (event["body"], document) if document is not None else None
        tokens = _PRINCIPAL.set(principal), _SCOPE.set(scope), _EVENT.set(event), _PARSED.set(parsed)
        try:
            self.append_context(request_id=request_id)
            return super().resolve(event, context)
        finally:
            _PRINCIPAL.reset(tokens[0])
            _SCOPE.reset(tokens[1])
            _EVENT.reset(tokens[2])
            _PARSED.reset(tokens[3])


def current_principal(scope: str) -> Principal:
    """The authenticated caller, after checking it holds `scope` (403 otherwise)."""
    principal, checked = _PRINCIPAL.get(), _SCOPE.get()
    if principal is None or scope not in checked:
        # Only public routes run without a principal, and ROUTE_SCOPES must name the handler's scope: a wiring bug.
        logger.error("route scope mismatch or no principal", extra={"handler_scope": scope, "route_scope": checked})
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


def _answer_once_per_field() -> None:
    """Powertools asks two questions of every query and header parameter of every request whose answers are fixed
    per route parameter: whether its annotation is a scalar (typing introspection), and, when the request leaves
    it out, its default (pydantic's default resolution). Seven to eleven parameters per list request made that a
    third of a stubbed DynamoDB call; the answers are computed once per process (immutable defaults only)."""
    from aws_lambda_powertools.event_handler.middlewares import openapi_validation

    scalar = getattr(openapi_validation, "is_scalar_field", None)
    missing = getattr(openapi_validation, "_handle_missing_field_value", None)
    if scalar is None or missing is None or getattr(scalar, "maip_once", False):
        return
    scalars: dict[int, tuple[Any, bool]] = {}  # id -> (field, answer): keeps the field alive, so no id is reused
    defaults: dict[int, tuple[Any, tuple[bool, Any]]] = {}

    def answer(known: dict[int, tuple[Any, Any]], field: Any, compute: Callable[[Any], Any]) -> Any:
        hit = known.get(id(field))
        if hit is None or hit[0] is not field:
            hit = known[id(field)] = (field, compute(field))
        return hit[1]

    def is_scalar_field(field: Any) -> bool:
        return answer(scalars, field, scalar)

    def default_of(field: Any) -> tuple[bool, Any]:
        if field.required:
            return False, None
        default = field.get_default()
        return default is None or isinstance(default, (str, int, float, bool)), default

    def handle_missing_field_value(field: Any, values: dict[str, Any], errors: list[Any], loc: tuple[str, ...]) -> None:
        immutable, default = answer(defaults, field, default_of)
        if immutable:
            values[field.name] = default
        else:
            missing(field, values, errors, loc)

    is_scalar_field.maip_once = True  # type: ignore[attr-defined]
    openapi_validation.is_scalar_field = is_scalar_field
    openapi_validation._handle_missing_field_value = handle_missing_field_value


def create_app(*routers: Router, docs: bool = False) -> MaipResolver:
    _answer_once_per_field()
    app = MaipResolver(enable_validation=True, json_body_deserializer=_body_json)

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
