"""EventsTable stream -> one delivery message per matching webhook (partial batch responses)."""
from aws_lambda_powertools import Logger

from maip_events.webhooks.fanout import handle_batch

logger = Logger(service="maip-events")


@logger.inject_lambda_context
def lambda_handler(event, context):
    return handle_batch(event, context)
