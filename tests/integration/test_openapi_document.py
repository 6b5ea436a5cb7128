"""GET /v1/openapi.json says exactly what the API accepts and returns (issue 10.4); tests/fuzz checks it live."""
from __future__ import annotations

import re

import pytest

from functions.docs.app import lambda_handler as docs
from maip_events import settings
from support import invoke

DOC = "/v1/openapi.json"


@pytest.fixture
def document(monkeypatch):
    monkeypatch.delenv("MAIP_LOCAL", raising=False)
    settings.reset()
    status, body, _ = invoke(docs, "GET", DOC)
    assert status == 200
    yield body
    settings.reset()


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def param(operation, name):
    return next(p for p in operation["parameters"] if p["name"] == name)


def test_events_is_the_first_tag_and_no_operation_documents_a_status_it_never_returns(document):
    assert [t["name"] for t in document["tags"]][0] == "Events"
    for label, operation in operations(document):
        responses = operation["responses"]
        assert "422" not in responses, label  # validation errors are 400 here
        if operation.get("security") == []:  # public (the integrity public key): no credential, no tenant
            assert {"400", "500"} <= set(responses) and not {"401", "403"} & set(responses), label
            assert "X-Tenant-ID" not in {p["name"] for p in operation.get("parameters", [])}, label
            continue
        assert {"400", "401", "403", "500"} <= set(responses), label
        if "requestBody" in operation:
            assert {"413", "415"} <= set(responses), label
        if "204" in responses:
            assert "content" not in responses["204"], label


@pytest.mark.parametrize("label", ["GET /v1/observability/events", "GET /v1/observability/events/export",
                                   "GET /v1/observability/metrics"])
def test_from_and_to_carry_the_exact_date_time_grammar(document, label):
    operation = dict(operations(document))[label]
    for name in ("from", "to"):
        pattern = re.compile(param(operation, name)["schema"]["anyOf"][0]["pattern"])
        # Then what the API accepts matches ...
        for good in ("2026-11-23", "2026-11-23T07:00", "2026-11-23T07:00:00Z", "2026-11-23T07:00:00.123+02:00",
                     "2024-02-29T00:00:00-05:30"):
            assert pattern.fullmatch(good), good
        # ... and what it refuses does not
        for bad in ("0000", "yesterday", "2026-13-01", "2026-02-29", "2026-04-31", "2026-11-23T24:00:00Z",
                    "2026-11-23T07:00:00+2", "1700000000"):
            assert not pattern.fullmatch(bad), bad


def test_log_stream_bodies_are_discriminated_by_type_and_urls_are_absolute_https(document):
    create = dict(operations(document))["POST /v1/observability/streams"]
    schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert schema["discriminator"]["propertyName"] == "type"
    assert set(schema["discriminator"]["mapping"]) == {"splunk_hec", "datadog", "https", "s3"}
    splunk = document["components"]["schemas"]["SplunkHecConfig"]
    webhook = document["components"]["schemas"]["CreateWebhookRequest"]
    for url_schema in (splunk["properties"]["url"], webhook["properties"]["url"]):
        pattern = re.compile(url_schema["pattern"])
        assert pattern.fullmatch("https://hooks.example.com:8443/maip?x=1")
        for bad in ("http://hooks.example.com/", "https://user:pw@example.com/", "https://example.com/#frag", "example.com"):
            assert not pattern.fullmatch(bad), bad
    event_types = webhook["properties"]["event_types"]["items"]
    assert "agent.*" in event_types["enum"] and "agent.registered" in event_types["enum"] and "nonsense" not in event_types["enum"]


def test_a_schema_valid_patch_with_another_types_settings_is_a_409_and_changes_nothing(aws, monkeypatch):
    from functions.streams.app import lambda_handler as streams
    from support import key_headers

    monkeypatch.setenv("MAIP_LOCAL", "1")
    settings.reset()
    headers = key_headers("t1", ["streams:write", "streams:read", "events:read"])
    base = "/v1/observability/streams"
    # Given a Splunk stream
    status, splunk, _ = invoke(streams, "POST", base, headers=headers,
                               body={"type": "splunk_hec", "config": {"url": "https://splunk.example.com:8088", "token": "abcd-efgh-1234"}})
    assert status == 201, splunk
    # When a PATCH sends a valid S3 setting (valid for the schema, which cannot know the stored type)
    status, body, _ = invoke(streams, "PATCH", f"{base}/{splunk['id']}", headers=headers, route=f"{base}/{{stream_id}}",
                             body={"config": {"prefix": "logs/"}, "description": "changed"})
    # Then 409: it conflicts with the stream's type, and nothing changed
    assert status == 409 and body["error"]["details"] == [{"field": "config.prefix", "issue": "not a splunk_hec setting"}]
    status, stored, _ = invoke(streams, "GET", f"{base}/{splunk['id']}", headers=headers, route=f"{base}/{{stream_id}}")
    assert stored["config"] == splunk["config"] and stored["description"] is None


def test_a_log_stream_patch_keeps_every_constraint_of_the_settings_it_changes(document):
    # Given the partial settings a PATCH may send
    patch = document["components"]["schemas"]["SplunkHecConfigPatch"]["properties"]
    # Then each keeps its type's constraints (an empty token or URL is not schema-valid), only not required
    assert patch["token"]["minLength"] == 1 and patch["url"]["pattern"].startswith("^https")
    assert "required" not in document["components"]["schemas"]["SplunkHecConfigPatch"]


@pytest.mark.parametrize("prefix", ["", "maip/", "a.b/c_d-1/", ".hidden/", "x" * 64 + "/",
                                    "maip", "a/b", "../", "./", ".../", "a//b/", "/abs/", "x=y/", "a%2Fb/", "a\\b/",
                                    "x" * 65 + "/"])
def test_the_s3_prefix_pattern_is_exactly_the_rule_the_api_applies(document, aws, monkeypatch, prefix):
    from functions.streams.app import lambda_handler as streams
    from support import key_headers

    # Given the documented prefix of S3 settings, for a create and for a PATCH
    schemas = document["components"]["schemas"]
    patterns = {schemas[name]["properties"]["prefix"]["pattern"] for name in ("S3Config", "S3ConfigPatch")}
    assert len(patterns) == 1
    schema_valid = re.fullmatch(patterns.pop(), prefix) is not None
    # When a stream is created with that prefix (the local stack allows any bucket)
    monkeypatch.setenv("MAIP_LOCAL", "1")
    settings.reset()
    status, body, _ = invoke(streams, "POST", "/v1/observability/streams",
                             headers=key_headers("t1", ["streams:write", "streams:read", "events:read"]),
                             body={"type": "s3", "config": {"bucket": "maip-siem-t1", "prefix": prefix}})
    # Then the API accepts exactly the prefixes the schema does
    assert status == (201 if schema_valid else 400), (prefix, body)


def test_the_replay_operation_states_its_7_day_window(document):
    replay = dict(operations(document))["POST /v1/observability/webhooks/{webhook_id}/replay"]
    assert "at most 7 days" in replay["description"]
