"""The S3 archive tier: every event as Parquet (zstd), one prefix per tenant and UTC day (layout.py).

Written by the archive writer (fed by the dispatcher's queue, never a third reader of the events stream),
deduplicated and compacted per closed tenant-day, read across tiers by the list and export path."""
