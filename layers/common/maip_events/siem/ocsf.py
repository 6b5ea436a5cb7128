"""The OCSF (Open Cybersecurity Schema Framework 1.7.0) representation of an event.

Each event type maps to the class that describes it best (README "OCSF mapping"): agent lifecycle is an
IAM Account Change of a service account, sessions are Authentication, trust/dataset/model changes are
Entity Management, orchestrations are Application Lifecycle, and guardrail/anomaly/killswitch/trust
breaches are Detection Findings. Everything MAIP knows that has no OCSF attribute stays in `unmapped`."""
from __future__ import annotations

import json
from typing import Any

from maip_events.ids import parse_time
from maip_events.models.events import StoredEvent

OCSF_VERSION = "1.7.0"
PRODUCT = {"name": "MAIP Events", "vendor_name": "MAIP", "feature": {"name": "Observability and audit events"}}

SEVERITY_IDS = {"info": (1, "Informational"), "warn": (3, "Medium"), "error": (4, "High")}

# class key -> (category_uid, category_name, class_uid, class_name)
CLASSES = {
    "account_change": (3, "Identity & Access Management", 3001, "Account Change"),
    "authentication": (3, "Identity & Access Management", 3002, "Authentication"),
    "entity_management": (3, "Identity & Access Management", 3004, "Entity Management"),
    "detection_finding": (2, "Findings", 2004, "Detection Finding"),
    "application_lifecycle": (6, "Application Activity", 6002, "Application Lifecycle"),
}

# event type -> (class key, activity_id, activity_name)
MAPPING: dict[str, tuple[str, int, str]] = {
    "agent.registered": ("account_change", 1, "Create"),
    "agent.updated": ("account_change", 99, "Update"),
    "agent.suspended": ("account_change", 5, "Disable"),
    "agent.revoked": ("account_change", 6, "Delete"),
    "agent.restored": ("account_change", 2, "Enable"),
    "session.created": ("authentication", 1, "Logon"),
    "session.refreshed": ("authentication", 99, "Refresh"),
    "session.expired": ("authentication", 2, "Logoff"),
    "session.revoked": ("authentication", 2, "Logoff"),
    "trust.computed": ("entity_management", 3, "Update"),
    "trust.threshold_breach": ("detection_finding", 1, "Create"),
    "trust.delegation_offered": ("entity_management", 1, "Create"),
    "trust.delegation_accepted": ("entity_management", 10, "Activate"),
    "trust.delegation_expired": ("entity_management", 11, "Deactivate"),
    "orchestration.started": ("application_lifecycle", 3, "Start"),
    "orchestration.completed": ("application_lifecycle", 4, "Stop"),
    "orchestration.failed": ("application_lifecycle", 4, "Stop"),
    "orchestration.timeout": ("application_lifecycle", 4, "Stop"),
    "dataset.attested": ("entity_management", 99, "Attest"),
    "dataset.lineage_updated": ("entity_management", 3, "Update"),
    "model.attested": ("entity_management", 99, "Attest"),
    "model.lineage_updated": ("entity_management", 3, "Update"),
    "guardrail.violation": ("detection_finding", 1, "Create"),
    "guardrail.circuit_breaker_opened": ("detection_finding", 1, "Create"),
    "guardrail.circuit_breaker_closed": ("detection_finding", 3, "Close"),
    "anomaly.reported": ("detection_finding", 1, "Create"),
    "anomaly.resolved": ("detection_finding", 3, "Close"),
    "killswitch.activated": ("detection_finding", 1, "Create"),
}

# Application Lifecycle status: 1 Success, 2 Failure.
_ORCHESTRATION_STATUS = {"orchestration.completed": (1, "Success"), "orchestration.failed": (2, "Failure"),
                         "orchestration.timeout": (2, "Failure")}
_OBSERVABLE_RESOURCE_UID, _OBSERVABLE_USER_UID = 10, 31
_USER_TYPE_SERVICE = 4  # agents are machine identities: OCSF user type "Service"


def _agent_user(agent_id: str | None) -> dict[str, Any]:
    user: dict[str, Any] = {"type_id": _USER_TYPE_SERVICE, "type": "Service"}
    if agent_id is not None:
        user["uid"] = agent_id
    return user


def uids(event_type: str) -> tuple[int, int]:
    """(class_uid, type_uid) of an event type: what the archive stores beside each event."""
    class_key, activity_id, _ = MAPPING[event_type]
    class_uid = CLASSES[class_key][2]
    return class_uid, class_uid * 100 + activity_id


def to_ocsf(event: StoredEvent) -> dict[str, Any]:
    class_key, activity_id, activity_name = MAPPING[event.event_type]
    category_uid, category_name, class_uid, class_name = CLASSES[class_key]
    severity_id, severity = SEVERITY_IDS[event.severity]
    namespace = event.event_type.split(".", 1)[0]
    created = parse_time(event.created_at)
    record: dict[str, Any] = {
        "category_uid": category_uid,
        "category_name": category_name,
        "class_uid": class_uid,
        "class_name": class_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": uids(event.event_type)[1],
        "type_name": f"{class_name}: {activity_name}",
        "severity_id": severity_id,
        "severity": severity,
        "time": int(created.timestamp() * 1000),
        "message": event.event_type,
        "metadata": {
            "version": OCSF_VERSION,
            "product": PRODUCT,
            "uid": event.event_id,
            "tenant_uid": event.tenant_id,
            "event_code": event.event_type,
            "log_name": "maip-events",
            "original_time": event.created_at,
        },
        "unmapped": {
            "event_type": event.event_type,
            "agent_id": event.agent_id,
            "resource_id": event.resource_id,
            "severity": event.severity,
            "payload": json.loads(event.payload_json),
        },
    }
    observables = []
    if event.agent_id is not None:
        observables.append({"name": "agent_id", "type_id": _OBSERVABLE_USER_UID, "value": event.agent_id})
    if event.resource_id is not None:
        observables.append({"name": "resource_id", "type_id": _OBSERVABLE_RESOURCE_UID, "value": event.resource_id})
    if observables:
        record["observables"] = observables
    resource = {"uid": event.resource_id, "type": namespace} if event.resource_id is not None else None
    actor = {"user": _agent_user(event.agent_id)} if event.agent_id is not None else None

    if class_key in ("account_change", "authentication"):
        record["user"] = _agent_user(event.agent_id)  # the account that changed / authenticated
        if actor:
            record["actor"] = actor
        if class_key == "authentication" and event.resource_id is not None:
            record["session"] = {"uid": event.resource_id}
    elif class_key == "entity_management":
        entity: dict[str, Any] = {"type": namespace}
        if event.resource_id is not None:
            entity["uid"] = event.resource_id
        elif event.agent_id is not None:
            entity["uid"] = event.agent_id
        record["entity"] = entity
        if actor:
            record["actor"] = actor
    elif class_key == "detection_finding":
        record["finding_info"] = {"uid": event.event_id, "title": event.event_type, "types": [event.event_type],
                                  "created_time": record["time"]}
        record["status_id"], record["status"] = (4, "Resolved") if activity_id == 3 else (1, "New")
        resources = [r for r in (resource, {"uid": event.agent_id, "type": "agent"} if event.agent_id else None) if r]
        if resources:
            record["resources"] = resources
    elif class_key == "application_lifecycle":
        app: dict[str, Any] = {"name": "MAIP orchestration", "vendor_name": PRODUCT["vendor_name"]}
        if event.resource_id is not None:
            app["uid"] = event.resource_id
        record["app"] = app
        if event.event_type in _ORCHESTRATION_STATUS:
            record["status_id"], record["status"] = _ORCHESTRATION_STATUS[event.event_type]
            if event.event_type == "orchestration.timeout":
                record["status_detail"] = "timeout"
    return record
