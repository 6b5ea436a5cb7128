"""GET /v1/openapi.json (generated from the routes) and GET /v1/docs (Swagger UI served offline)."""
from __future__ import annotations

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
    "TenantId": APIKey(name="X-Tenant-ID", in_=APIKeyIn.header, description="Tenant identifier"),
    "Bearer": HTTPBearer(bearerFormat="JWT"),
}
SECURITY = [{"ApiKey": [], "TenantId": []}, {"Bearer": [], "TenantId": []}]


def add_docs(app: Any, routers: Any) -> None:
    schema_args = dict(title=TITLE, version=VERSION, description=DESCRIPTION, security_schemes=SECURITY_SCHEMES, security=SECURITY)
    app.enable_swagger(path="/v1/docs", **schema_args)

    @app.get("/v1/openapi.json", include_in_schema=False)
    def openapi_document():
        return Response(status_code=200, content_type="application/json", body=app.get_openapi_json_schema(openapi_version="3.1.0", **schema_args))
