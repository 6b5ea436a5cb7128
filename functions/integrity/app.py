"""/v1/observability/integrity/* and GET /v1/observability/events/{event_id}/proof."""

from maip_events.api import create_app
from maip_events.api.app import logger
from maip_events.api.integrity import router

app = create_app(router)


# Never log the event, whatever POWERTOOLS_LOGGER_LOG_EVENT says: it holds API keys and Bearer tokens.
@logger.inject_lambda_context(log_event=False)  # correlation id: set by the resolver (api/app.py)
def lambda_handler(event, context):
    return app.resolve(event, context)
