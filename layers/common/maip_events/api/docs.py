"""GET /v1/openapi.json (generated from the routes) and GET /v1/docs (Swagger UI served offline)."""
from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBearer

from maip_events.models.errors import error_responses
from maip_events.models.formats import HTTPS_URL_PATTERN, URL_PATTERN
from maip_events.settings import get_settings

TITLE = "MAIP Events API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Observability and audit events of the MAIP machine-identity platform. Every request needs "
    "`X-Tenant-ID` and either `X-API-Key` or `Authorization: Bearer <JWT>`."
)
SECURITY_SCHEMES = {
    "ApiKey": APIKey(name="X-API-Key", in_=APIKeyIn.header),
    "Bearer": HTTPBearer(bearerFormat="JWT"),
}
SECURITY = [{"ApiKey": []}, {"Bearer": []}]
# X-Tenant-ID is not a credential: a missing or malformed one is a 400 (CONTRACT §4), so it is documented as a
# required header of every operation rather than as a security scheme (whose absence would mean 401).
TENANT_HEADER = {
    "name": "X-Tenant-ID", "in": "header", "required": True, "description": "Tenant identifier",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
}


# Events first: the tags in the order a reader needs them.
TAGS = [
    {"name": "Events", "description": "Emit, list and export events"},
    {"name": "Webhooks", "description": "Subscriptions that POST matching events to your endpoint"},
    {"name": "Log streams", "description": "Continuous delivery to SIEMs and storage"},
    {"name": "Metrics", "description": "Event counts over time"},
    {"name": "Integrity", "description": "Tamper-evident audit trail: signed checkpoints, inclusion and consistency proofs"},
]
# Operations anyone may call: no credential, no tenant header.
PUBLIC_OPERATIONS = {"/v1/observability/integrity/public-key"}


def _replace_pattern(node: Any, old: str, new: str) -> None:
    if isinstance(node, dict):
        if node.get("pattern") == old:
            node["pattern"] = new
        for value in node.values():
            _replace_pattern(value, old, new)
    elif isinstance(node, list):
        for value in node:
            _replace_pattern(value, old, new)


def _precise(document: str) -> str:
    """The generated document, made to say exactly what the API does: the tenant header on every operation, no
    422 (validation errors are 400 here), 413/415 wherever a body is taken (the gateway's 6 MB cap, the media
    type check), the tag order, and https-only URLs unless this is the local stack."""
    schema = json.loads(document)
    error_schema = error_responses(413, 415)
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            if not (isinstance(operation, dict) and "responses" in operation):
                continue
            if path in PUBLIC_OPERATIONS:
                operation["security"] = []
            else:
                operation["parameters"] = [TENANT_HEADER, *operation.get("parameters", [])]
            operation["responses"].pop("422", None)
            if "204" in operation["responses"]:  # no body, so no media type
                operation["responses"]["204"].pop("content", None)
            if "requestBody" in operation:
                for status in (413, 415):
                    if str(status) not in operation["responses"]:
                        operation["responses"][str(status)] = {
                            "description": error_schema[status]["description"],
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDocument"}}},
                        }
    for unused in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(unused, None)
    schema["tags"] = TAGS
    if not get_settings().local:
        _replace_pattern(schema, URL_PATTERN, HTTPS_URL_PATTERN)
    return json.dumps(schema)


def add_docs(app: Any, routers: Any) -> None:
    schema_args = dict(title=TITLE, version=VERSION, description=DESCRIPTION, security_schemes=SECURITY_SCHEMES, security=SECURITY)
    app.enable_swagger(path="/v1/docs", **schema_args)

    @app.get("/v1/openapi.json", include_in_schema=False)
    def openapi_document():
        document = app.get_openapi_json_schema(openapi_version="3.1.0", **schema_args)
        return Response(status_code=200, content_type="application/json", body=_precise(document))
