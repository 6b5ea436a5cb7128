"""Webhooks (CONTRACT §8): subscriptions, matching, Standard Webhooks signing, the SSRF guard, and the
stream -> fanout -> SQS -> delivery pipeline with retries, dead-lettering and auto-disable."""
