"""GET /v1/openapi.json (generated from the routes) and GET /v1/docs (Swagger UI served offline)."""
from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBearer

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


def _with_tenant_header(document: str) -> str:
    schema = json.loads(document)
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["parameters"] = [TENANT_HEADER, *operation.get("parameters", [])]
    return json.dumps(schema)


def add_docs(app: Any, routers: Any) -> None:
    schema_args = dict(title=TITLE, version=VERSION, description=DESCRIPTION, security_schemes=SECURITY_SCHEMES, security=SECURITY)
    app.enable_swagger(path="/v1/docs", **schema_args)

    @app.get("/v1/openapi.json", include_in_schema=False)
    def openapi_document():
        document = app.get_openapi_json_schema(openapi_version="3.1.0", **schema_args)
        return Response(status_code=200, content_type="application/json", body=_with_tenant_header(document))
