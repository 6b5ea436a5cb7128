"""SIEM integration: OCSF mapping, NDJSON export and log-stream destinations (Splunk HEC, Datadog, HTTPS, S3)."""
