"""Hourly: each closed tenant-day's parts compacted into day files (one row per event id), expired days deleted."""
from maip_events.archive.compact import logger, run


@logger.inject_lambda_context
def lambda_handler(event, context):
    return run(context)
