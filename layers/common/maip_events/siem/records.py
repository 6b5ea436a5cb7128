"""One event as one NDJSON record, in the format a consumer asked for."""
from __future__ import annotations

import json
from typing import Any, Literal

from maip_events.models.events import StoredEvent
from maip_events.siem.ocsf import to_ocsf

Format = Literal["ocsf", "jsonl"]
FORMATS = ("ocsf", "jsonl")


def record(event: StoredEvent, fmt: str) -> dict[str, Any]:
    """`ocsf`: the OCSF 1.7.0 record; `jsonl`: the list item of GET /v1/observability/events."""
    return to_ocsf(event) if fmt == "ocsf" else event.list_item()


def line(event: StoredEvent, fmt: str) -> str:
    return json.dumps(record(event, fmt), ensure_ascii=False, separators=(",", ":"))
