"""SealQueue -> each named tenant's due events appended to its Merkle log, one signed checkpoint per seal."""
from maip_events.integrity.seal import handle_batch, logger


@logger.inject_lambda_context
def lambda_handler(event, context):
    return handle_batch(event, context)
