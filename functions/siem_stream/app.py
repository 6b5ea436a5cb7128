"""Log-stream delivery queue -> Splunk HEC / Datadog / https / S3 destinations (partial batch responses)."""
from maip_events.siem.delivery import handle_batch, logger


@logger.inject_lambda_context
def lambda_handler(event, context):
    return handle_batch(event, context)
