"""Property: whatever two tenants emit, neither ever sees the other's events, under any filter."""
from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.emit.app import lambda_handler as emit
from functions.list.app import lambda_handler as list_events
from aggregation import settle
from support import invoke, key_headers

EVENTS = "/v1/observability/events"

event = st.fixed_dictionaries(
    {
        "tenant": st.sampled_from(["alpha", "beta"]),
        "event_type": st.sampled_from(["agent.registered", "session.created", "guardrail.violation"]),
        "agent_id": st.sampled_from(["shared-agent", "other-agent"]),
        "resource_id": st.sampled_from(["shared-res", "other-res", None]),
        "severity": st.sampled_from(["info", "warn", "error"]),
        "secret": st.text(min_size=0, max_size=8),
    }
)


QUERY_FILTERS = [
    ({"resource_id": "shared-res"}, lambda e: e["resource_id"] == "shared-res"),
    ({"severity": "warn,error"}, lambda e: e["severity"] != "info"),
    ({"event_type": "session.*,guardrail.violation"}, lambda e: e["event_type"] != "agent.registered"),
    ({"agent_id": "shared-agent", "severity": "error"}, lambda e: e["agent_id"] == "shared-agent" and e["severity"] == "error"),
    ({"q": "-agent:other-agent -type:session.*"}, lambda e: e["agent_id"] != "other-agent" and e["event_type"] != "session.created"),
    ({"q": "resource:shared-res type:guardrail.violation"}, lambda e: e["resource_id"] == "shared-res" and e["event_type"] == "guardrail.violation"),
]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(event, min_size=1, max_size=8))
def test_random_events_of_two_tenants_never_cross(aws, events):
    # Given two fresh tenants (the moto tables outlive one example) using the same agent ids and types
    run = uuid.uuid4().hex[:8]
    headers = {t: key_headers(f"{t}-{run}", ["*"]) for t in ("alpha", "beta")}
    emitted = {"alpha": set(), "beta": set()}
    mine: dict[str, list[dict]] = {"alpha": [], "beta": []}
    for e in events:
        body = {"event_type": e["event_type"], "agent_id": e["agent_id"], "resource_id": e["resource_id"],
                "severity": e["severity"], "metadata": {"owner": e["tenant"], "s": e["secret"]}}
        status, created, _ = invoke(emit, "POST", EVENTS, headers=headers[e["tenant"]], body=body)
        assert status == 201
        emitted[e["tenant"]].add(created["id"])
        mine[e["tenant"]].append({**e, "id": created["id"]})
    # When each lists with every filter combination (totals once the stream is aggregated)
    settle()
    for tenant, own in emitted.items():
        for query in ({}, {"agent_id": "shared-agent"}, {"event_type": "session.created"},
                      {"agent_id": "shared-agent", "event_type": "agent.registered"}):
            _, page, _ = invoke(list_events, "GET", EVENTS, headers=headers[tenant], query={**query, "limit": "500"})
            # Then only its own events come back, and the total agrees
            got = {i["event_id"] for i in page["items"]}
            assert got <= own
            assert all(i["payload"]["owner"] == tenant for i in page["items"])
            assert page["total"] == len(got)
        # And every query filter (a short page, so `total` comes from the counts) counts only its own events
        for query, meaning in QUERY_FILTERS:
            _, page, _ = invoke(list_events, "GET", EVENTS, headers=headers[tenant], query={**query, "limit": "1"})
            expected = sorted((e["id"] for e in mine[tenant] if meaning(e)), reverse=True)
            assert [i["event_id"] for i in page["items"]] == expected[:1], query
            assert page["total"] == len(expected), query
