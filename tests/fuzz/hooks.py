"""Schemathesis hooks (SCHEMATHESIS_HOOKS) for rules no JSON Schema can state, applied to positive cases only so
that "schema-valid" also means "valid for the API"; negative cases and every check are left untouched.

- `next_token` is an opaque cursor the server signs and binds to its query: a generated one is a forged token,
  which is rightly a 400 (tests/integration cover tampered and mismatched tokens). Positive cases omit it.
- an export with `proofs=true` is `format=jsonl` without filters, and a consistency proof has `first` <= `second`.
- `from` <= `to` (list, export, checkpoints, replay), metrics windows end at `to` (default: now) and span at most 31 days
  (hour) or 366 days (day), and a replay window (`to` default: now) spans at most 7 days: cross-field and
  clock-relative rules. Positive cases get an ordered, short window.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import schemathesis

WINDOW_QUERIES = {"/v1/observability/events", "/v1/observability/events/export", "/v1/observability/integrity/checkpoints"}
EXPORT = "/v1/observability/events/export"
CONSISTENCY = "/v1/observability/integrity/consistency"
UNPROVABLE = ("agent_id", "event_type", "resource_id", "severity", "q")  # filters an export with proofs refuses
METRICS = "/v1/observability/metrics"
REPLAY_WINDOW = timedelta(days=7)  # maip_events.quota.replay.MAX_WINDOW


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("z", "Z"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ordered(values: dict) -> dict:
    values = dict(values)
    if isinstance(values.get("from"), str) and isinstance(values.get("to"), str):
        if _moment(values["from"]) > _moment(values["to"]):
            values["from"], values["to"] = values["to"], values["from"]
    return values


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    path = case.operation.path
    if isinstance(case.query, dict) and case.query:
        query = {k: v for k, v in case.query.items() if k != "next_token"}
        if path in WINDOW_QUERIES:
            query = _ordered(query)
        elif path == METRICS and isinstance(query.get("from"), str):
            query["to"] = _text(_moment(query["from"]) + timedelta(hours=1))
        if path == EXPORT and query.get("proofs") in (True, "true"):  # proofs: jsonl, contiguous (no filters)
            query = {k: v for k, v in query.items() if k not in UNPROVABLE}
            query["format"] = "jsonl"
        if path == CONSISTENCY and all(str(query.get(k, "")).isdigit() for k in ("first", "second")):
            low, high = sorted((query["first"], query["second"]), key=int)
            query["first"], query["second"] = low, high
        case.query = query
    if path.endswith("/replay") and isinstance(case.body, dict) and isinstance(case.body.get("from"), str):
        body = dict(case.body)
        if body.get("to") is None:  # absent or null: the window ends now, so it starts within the last 7 days
            body["from"] = _text(datetime.now(timezone.utc) - timedelta(hours=1))
        elif isinstance(body["to"], str):
            body = _ordered(body)
            if _moment(body["to"]) - _moment(body["from"]) > REPLAY_WINDOW:
                body["to"] = _text(_moment(body["from"]) + timedelta(hours=1))
        case.body = body
    return case
