"""The one outbound HTTP path of webhooks and log streams: the SSRF guard (`guard`), the deadline-bounded
client (`client`) and Standard Webhooks signing (`signing`)."""
