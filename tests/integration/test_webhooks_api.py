"""/v1/observability/webhooks through the real handler against moto tables built from template.yaml (CONTRACT §8)."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from functions.webhooks.app import lambda_handler as webhooks
from maip_events import settings
from maip_events.ids import format_time, utc_now
from support import invoke, key_headers

BASE = "/v1/observability/webhooks"
WHK = re.compile(r"^maip-whk:[0-9A-HJKMNP-TV-Z]{26}$")
SECRET = re.compile(r"^whsec_[A-Za-z0-9+/]{43}=$")


def create(headers, **body):
    return invoke(webhooks, "POST", BASE, headers=headers, body={"url": "https://hooks.example.com/maip", **body})


@pytest.fixture
def local(monkeypatch, aws):
    monkeypatch.setenv("MAIP_LOCAL", "1")
    settings.reset()


def test_create_returns_the_contract_shape_and_the_secret_only_once(headers):
    # Given a tenant with webhooks:write
    # When it subscribes a URL to two patterns
    status, doc, _ = create(headers, event_types=["agent.*", "session.created"], description="ops")
    # Then 201 with id, url, event_types, status enabled, a whsec_ secret and created_at
    assert status == 201
    assert WHK.match(doc["id"]) and SECRET.match(doc["secret"])
    assert (doc["url"], doc["event_types"], doc["status"], doc["description"]) == (
        "https://hooks.example.com/maip", ["agent.*", "session.created"], "enabled", "ops")
    # And GET / list show the same subscription without the secret
    status, got, _ = invoke(webhooks, "GET", f"{BASE}/{doc['id']}", headers=headers)
    assert status == 200 and "secret" not in got and got == {k: v for k, v in doc.items() if k != "secret"}
    status, listing, _ = invoke(webhooks, "GET", BASE, headers=headers)
    assert status == 200 and [w["id"] for w in listing["items"]] == [doc["id"]] and "secret" not in listing["items"][0]


def test_event_types_default_to_everything(headers):
    status, doc, _ = invoke(webhooks, "POST", BASE, headers=headers, body={"url": "https://hooks.example.com/x"})
    assert status == 201 and doc["event_types"] == ["*"]


@pytest.mark.parametrize("event_types", [["agent.unknown"], ["nope.*"], ["agent*"], ["Agent.registered"], [], ["*.*"], ["agent.registered", 7]])
def test_unknown_event_types_are_refused(headers, event_types):
    status, doc, _ = create(headers, event_types=event_types)
    assert status == 400 and doc["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("url", [
    "http://hooks.example.com/maip",  # deployed: https only
    "https://user:pw@hooks.example.com/maip",
    "https://127.0.0.1/hook", "https://localhost/hook", "https://10.1.2.3/hook", "https://192.168.0.10/hook",
    "https://169.254.169.254/latest/meta-data", "https://[::1]/hook", "https://[fd00:ec2::254]/", "https://224.0.0.1/",
    "https://0.0.0.0/", "https://100.100.100.200/", "ftp://hooks.example.com/", "not a url", "https:///nohost",
    " https://hooks.example.com/", "https://hooks.example.com/a\r\nX-Injected: 1", "https://h\u00e9.example.com/",
    "https://hooks.example.com:0/", "https://hooks.example.com:99999/", "https://hooks.example.com/#fragment",
])
def test_deployed_refuses_unsafe_urls(headers, url):
    # Given the deployed mode (MAIP_LOCAL unset) and a URL that is not https, carries credentials or is not public
    status, doc, _ = invoke(webhooks, "POST", BASE, headers=headers, body={"url": url})
    # Then it is refused with 400 and nothing is stored
    assert status == 400 and doc["error"]["code"] == "invalid_request"
    assert invoke(webhooks, "GET", BASE, headers=headers)[1]["items"] == []


def test_local_stack_allows_http_loopback_but_never_credentials(local, headers):
    assert create(headers, url="http://127.0.0.1:9999/hook")[0] == 201
    assert create(headers, url="http://u:p@127.0.0.1:9999/hook")[0] == 400


def test_unknown_fields_and_bad_bodies_are_400(headers):
    assert create(headers, surprise=1)[0] == 400
    assert invoke(webhooks, "POST", BASE, headers=headers, body="{nope")[0] == 400
    assert invoke(webhooks, "POST", BASE, headers={**headers, "Content-Type": "text/plain"}, body="{}")[0] == 415


def test_patch_updates_fields_and_delete_stops_everything(headers):
    _, doc, _ = create(headers)
    # When it is patched
    status, patched, _ = invoke(webhooks, "PATCH", f"{BASE}/{doc['id']}", headers=headers,
                                body={"event_types": ["trust.*"], "status": "disabled", "description": "d2"})
    # Then the changes show
    assert status == 200 and (patched["event_types"], patched["status"], patched["description"]) == (["trust.*"], "disabled", "d2")
    assert patched["url"] == doc["url"] and patched["created_at"] == doc["created_at"]
    assert invoke(webhooks, "PATCH", f"{BASE}/{doc['id']}", headers=headers, body={"event_types": ["x.y"]})[0] == 400
    assert invoke(webhooks, "PATCH", f"{BASE}/{doc['id']}", headers=headers, body={"status": "paused"})[0] == 400
    assert invoke(webhooks, "PATCH", f"{BASE}/{doc['id']}", headers=headers, body={"secret": "whsec_x"})[0] == 400
    # When it is deleted
    assert invoke(webhooks, "DELETE", f"{BASE}/{doc['id']}", headers=headers)[0] == 204
    # Then it is gone
    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/rotate-secret"), ("GET", "/deliveries")):
        assert invoke(webhooks, method, f"{BASE}/{doc['id']}{suffix}", headers=headers)[0] == 404


def test_rotate_secret_returns_a_new_secret(headers):
    _, doc, _ = create(headers)
    status, rotated, _ = invoke(webhooks, "POST", f"{BASE}/{doc['id']}/rotate-secret", headers=headers)
    assert status == 200 and SECRET.match(rotated["secret"]) and rotated["secret"] != doc["secret"]


def test_scopes_are_enforced(aws):
    # Given keys with only webhooks:read, and only events:write
    reader, writer_of_events = key_headers("t1", ["webhooks:read"]), key_headers("t1", ["events:write"])
    # Then reading works for the reader but writing does not, and the other key can do neither
    assert invoke(webhooks, "GET", BASE, headers=reader)[0] == 200
    assert create(reader)[0] == 403
    assert invoke(webhooks, "GET", BASE, headers=writer_of_events)[0] == 403
    assert invoke(webhooks, "GET", BASE, headers={"X-Tenant-ID": "t1"})[0] == 401


def test_tenants_never_see_each_others_webhooks(aws):
    # Given a webhook of tenant t1
    t1, t2 = key_headers("t1", ["*"]), key_headers("t2", ["*"])
    _, doc, _ = create(t1)
    # Then tenant t2 cannot list, read, change, rotate, replay, inspect or delete it
    assert invoke(webhooks, "GET", BASE, headers=t2)[1]["items"] == []
    path = f"{BASE}/{doc['id']}"
    assert invoke(webhooks, "GET", path, headers=t2)[0] == 404
    assert invoke(webhooks, "PATCH", path, headers=t2, body={"status": "disabled"})[0] == 404
    assert invoke(webhooks, "POST", f"{path}/rotate-secret", headers=t2)[0] == 404
    assert invoke(webhooks, "GET", f"{path}/deliveries", headers=t2)[0] == 404
    recent = format_time(utc_now() - timedelta(hours=1))  # replay windows are at most 7 days
    assert invoke(webhooks, "POST", f"{path}/replay", headers=t2, body={"from": recent})[0] == 404
    assert invoke(webhooks, "DELETE", path, headers=t2)[0] == 404
    # And it still exists, unchanged, for t1
    status, got, _ = invoke(webhooks, "GET", path, headers=t1)
    assert status == 200 and got["status"] == "enabled"
    # And t2 naming t1 in the header with its own key is forbidden
    assert invoke(webhooks, "GET", path, headers={**t2, "X-Tenant-ID": "t1"})[0] == 403


def test_deliveries_query_is_validated(headers):
    _, doc, _ = create(headers)
    path = f"{BASE}/{doc['id']}/deliveries"
    assert invoke(webhooks, "GET", path, headers=headers) [1] == {"items": [], "next_token": None}
    for query in ({"limit": "0"}, {"limit": "501"}, {"status": "lost"}, {"bogus": "1"}, {"next_token": "garbage"}):
        assert invoke(webhooks, "GET", path, headers=headers, query=query)[0] == 400, query


def test_replay_validates_its_window(headers):
    _, doc, _ = create(headers)
    path = f"{BASE}/{doc['id']}/replay"
    assert invoke(webhooks, "POST", path, headers=headers, body={})[0] == 400
    assert invoke(webhooks, "POST", path, headers=headers, body={"from": "yesterday"})[0] == 400
    assert invoke(webhooks, "POST", path, headers=headers, body={"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"})[0] == 400
