"""The events stream's dispatcher: turns inserted events into queued work for webhooks and log streams."""
