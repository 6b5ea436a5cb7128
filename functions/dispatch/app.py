"""EventsTable stream -> webhook delivery messages and log-stream batch messages on SQS (partial batch responses)."""
from maip_events.dispatch.stream import handle_batch, logger


@logger.inject_lambda_context
def lambda_handler(event, context):
    return handle_batch(event, context)
