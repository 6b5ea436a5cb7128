"""GET /v1/openapi.json and GET /v1/docs: the OpenAPI document of every route, and Swagger UI."""

from maip_events.api import all_routers, create_app
from maip_events.api.app import logger

app = create_app(*all_routers(), docs=True)


# Never log the event, whatever POWERTOOLS_LOGGER_LOG_EVENT says: it holds API keys and Bearer tokens.
@logger.inject_lambda_context(log_event=False)  # correlation id: set by the resolver (api/app.py)
def lambda_handler(event, context):
    return app.resolve(event, context)
