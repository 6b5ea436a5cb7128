"""ArchiveQueue -> one Parquet part (zstd) per tenant and UTC day of each batch in the archive bucket."""
from maip_events.archive.writer import handle_batch, logger


@logger.inject_lambda_context
def lambda_handler(event, context):
    return handle_batch(event, context)
