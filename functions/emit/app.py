"""POST /v1/observability/events and /v1/observability/events:batch."""

from maip_events.api import batch, create_app, events
from maip_events.api.app import logger

app = create_app(events.router, batch.router)


# Never log the event, whatever POWERTOOLS_LOGGER_LOG_EVENT says: it holds API keys and Bearer tokens.
@logger.inject_lambda_context(log_event=False)  # correlation id: set by the resolver (api/app.py)
def lambda_handler(event, context):
    return app.resolve(event, context)
