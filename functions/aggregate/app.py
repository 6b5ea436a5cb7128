"""EventsTable stream -> every count (list totals, deep offsets, metrics) and EMF metrics (partial batch responses)."""
from maip_events.metrics.aggregate import handle_batch, logger


@logger.inject_lambda_context
def lambda_handler(event, context):
    return handle_batch(event, context)
