"""Ids, timestamps and request models: pure functions, no AWS."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from maip_events.catalog import EVENT_TYPES
from maip_events.ids import format_time, highest_event_id, lowest_event_id, new_event_id, parse_time
from maip_events.models.events import EmitEventRequest


def test_the_catalog_is_the_seed_documents_list():
    # The seed's table: Agent 5, Session 4, Trust 5, Orchestration 4, Dataset 2, Model 2, Guardrail 3, Anomaly 2, Kill Switch 1
    assert len(EVENT_TYPES) == len(set(EVENT_TYPES)) == 28
    assert {"agent.registered", "trust.delegation_expired", "guardrail.circuit_breaker_closed", "killswitch.activated"} <= set(EVENT_TYPES)


def test_event_ids_are_time_ordered_and_agree_with_created_at():
    earlier = datetime(2026, 1, 1, 12, 0, 0, 1000, tzinfo=timezone.utc)
    first, first_at = new_event_id(earlier)
    second, _ = new_event_id(earlier + timedelta(milliseconds=1))
    assert first < second
    assert first_at == "2026-01-01T12:00:00.001Z"
    assert lowest_event_id(parse_time(first_at)) <= first <= highest_event_id(parse_time(first_at))


def test_time_bounds_round_to_the_millisecond_inwards():
    moment = datetime(2026, 1, 1, 0, 0, 0, 1500, tzinfo=timezone.utc)  # 1.5 ms
    at_1ms, _ = new_event_id(moment.replace(microsecond=1000))
    at_2ms, _ = new_event_id(moment.replace(microsecond=2000))
    assert not lowest_event_id(moment) <= at_1ms  # 1 ms is before 1.5 ms
    assert lowest_event_id(moment) <= at_2ms
    assert at_1ms <= highest_event_id(moment) < at_2ms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T07:00:00Z", "2026-11-23T07:00:00.000Z"),
        ("2026-11-23T07:00:00.123456Z", "2026-11-23T07:00:00.123Z"),
        ("2026-11-23T09:00:00+02:00", "2026-11-23T07:00:00.000Z"),
        ("2026-11-23T07:00:00", "2026-11-23T07:00:00.000Z"),
        ("2026-11-23", "2026-11-23T00:00:00.000Z"),
    ],
)
def test_iso_8601_parsing_defaults_to_utc(text, expected):
    assert format_time(parse_time(text)) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01", "2026-11-23T25:00:00Z", "1700000000", "x" * 100])
def test_malformed_times_are_rejected(text):
    with pytest.raises(ValueError):
        parse_time(text)


def test_emit_request_defaults_and_strictness():
    request = EmitEventRequest.model_validate({"event_type": "session.created"})
    assert (request.severity, request.agent_id, request.resource_id, request.metadata) == ("info", None, None, None)
    for bad in (
        {"event_type": "session.created", "extra": True},
        {"event_type": "session.created", "severity": "INFO"},
        {"event_type": "session.created", "agent_id": 1},
        {"event_type": "session.created", "resource_id": "r" * 257},
        {"event_type": "session.created", "metadata": "text"},
    ):
        with pytest.raises(ValidationError):
            EmitEventRequest.model_validate(bad)
