"""OCSF mapping: every catalog event type becomes a record that validates against the OCSF 1.7.0 schema
(pydantic-ocsf, bundled schema, offline) and keeps everything MAIP knows."""
from __future__ import annotations

import json

import pytest
from ocsf.v1_7_0 import events as ocsf_events

from maip_events.catalog import EVENT_TYPES
from maip_events.models.events import StoredEvent
from maip_events.siem.ocsf import MAPPING, to_ocsf

OCSF_CLASSES = {3001: ocsf_events.AccountChange, 3002: ocsf_events.Authentication, 3004: ocsf_events.EntityManagement,
                2004: ocsf_events.DetectionFinding, 6002: ocsf_events.ApplicationLifecycle}


def stored(event_type: str, **fields) -> StoredEvent:
    base = dict(tenant_id="t1", event_id="maip-evt:01JD8X0Q6W1T3F4N5P6R7S8T9V", event_type=event_type, agent_id="agent-7",
                resource_id="res-1", severity="warn", created_at="2026-11-23T07:36:56.123Z",
                payload_json=json.dumps({"n": 1.5, "nested": {"ü": [1, None]}}))
    return StoredEvent(**{**base, **fields})


def validate(record: dict):
    """The record must parse as its OCSF class, and every top-level attribute must be one the class declares."""
    model = OCSF_CLASSES[record["class_uid"]]
    parsed = model.model_validate(record)
    declared = {f.alias or name for name, f in model.model_fields.items()} | set(model.model_fields)
    assert set(record) <= declared, set(record) - declared
    return parsed


def test_the_mapping_covers_the_whole_catalog():
    # Given the 28 catalog types / Then each has exactly one OCSF class and activity
    assert set(MAPPING) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
@pytest.mark.parametrize("ids", [{"agent_id": "agent-7", "resource_id": "res-1"}, {"agent_id": None, "resource_id": None}])
def test_every_event_type_validates_against_the_ocsf_schema(event_type, ids):
    # Given a stored event of that type, with and without agent/resource ids
    event = stored(event_type, **ids)
    # When it is mapped to OCSF
    record = to_ocsf(event)
    # Then the OCSF library accepts it as its class, with the ids MAIP knows
    parsed = validate(record)
    assert parsed.class_uid == record["class_uid"] and record["type_uid"] == record["class_uid"] * 100 + record["activity_id"]
    assert record["metadata"]["uid"] == event.event_id and record["metadata"]["product"]["name"] == "MAIP Events"
    assert record["metadata"]["version"] == "1.7.0"


def test_time_severity_actor_resources_and_unmapped_are_faithful():
    # Given a guardrail violation with agent, resource and nested metadata
    event = stored("guardrail.violation", severity="error")
    # When mapped
    record = to_ocsf(event)
    # Then time is epoch milliseconds, severity maps error -> High (4), the resource and the agent are listed
    assert record["time"] == 1795419416123
    assert (record["severity_id"], record["severity"]) == (4, "High")
    assert {"uid": "res-1", "type": "guardrail"} in record["resources"] and {"uid": "agent-7", "type": "agent"} in record["resources"]
    assert record["finding_info"]["uid"] == event.event_id and record["status"] == "New"
    # And nothing is lost: the original fields and the exact payload are kept in `unmapped`
    assert record["unmapped"] == {"event_type": "guardrail.violation", "agent_id": "agent-7", "resource_id": "res-1",
                                  "severity": "error", "payload": {"n": 1.5, "nested": {"ü": [1, None]}}}


def test_agent_events_name_the_agent_as_a_service_account_and_the_actor():
    record = to_ocsf(stored("agent.suspended", severity="info"))
    assert (record["class_uid"], record["activity_id"], record["severity_id"]) == (3001, 5, 1)
    assert record["user"] == {"type_id": 4, "type": "Service", "uid": "agent-7"} == record["actor"]["user"]


def test_resolving_an_anomaly_closes_the_finding():
    record = to_ocsf(stored("anomaly.resolved"))
    assert (record["class_uid"], record["activity_id"], record["status_id"]) == (2004, 3, 4)
