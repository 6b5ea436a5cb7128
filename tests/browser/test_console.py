"""The event console (GET /console) in a real Chromium against a real `maip-events serve`: sign in, search with
`q`, infinite scroll, event detail, live tail, webhooks (create, rotate, disable, replay) and the metrics chart.
Each test uses its own tenant so totals are exact. Screenshots go to test-artifacts/."""
from __future__ import annotations

import json
import re
import time

import jwt
import pytest
import requests
from playwright.sync_api import expect

from console_seeding import EVENTS, JWT_SECRET, emit_many, wait_total
from webhook_receiver import Receiver, Reply

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def test_console_files_are_public_with_strict_security_headers(stack):
    # Given no credential at all
    for path, media in (("/console", "text/html"), ("/console/app.js", "text/javascript"), ("/console/app.css", "text/css")):
        # When a console file is fetched
        response = requests.get(stack.url + path, timeout=10)

        # Then it is served, with a CSP that forbids inline code and other origins, and no sniffing or referrer
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(media)
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    # and nothing else is served from the console's folder, nor does the page carry inline script or style
    assert requests.get(stack.url + "/console/secrets.txt", timeout=10).status_code in (401, 404)
    page = requests.get(stack.url + "/console", timeout=10).text
    assert "<script>" not in page and "<style" not in page and "style=" not in page
    # and the console is not part of the API's OpenAPI document
    assert not any(p.startswith("/console") for p in requests.get(stack.url + "/v1/openapi.json", timeout=10).json()["paths"])


def test_sign_in_keeps_the_secret_in_session_storage_only_and_sign_out_forgets_it(console, stack, tenants):
    # Given a tenant with one event
    headers = tenants["console-signin"]
    emit_many(stack, headers, [{"event_type": "agent.registered", "agent_id": "agent-1"}])
    wait_total(stack, headers, 1)

    # When the user signs in with tenant and API key
    console.sign_in(headers)

    # Then the events view lists the event, with its exact total
    page = console.page
    expect(page.locator("#total")).to_have_text("1 event")
    expect(page.locator("#events-body tr")).to_have_count(1)
    # and the secret is in sessionStorage only: not in the URL, not in localStorage
    assert headers["X-API-Key"] in page.evaluate("JSON.stringify(sessionStorage)")
    assert page.evaluate("localStorage.length") == 0
    assert headers["X-API-Key"] not in page.url

    # When a wrong key is used in a new tab
    other = page.context.new_page()
    other.goto(f"{stack.url}/console")
    other.get_by_label("Tenant ID").fill("console-signin")
    other.get_by_label("API key", exact=True).fill("maip_sk_wrong")
    other.get_by_role("button", name="Sign in").click()
    # Then the 401 is shown and the user stays on the sign-in form
    expect(other.locator("#alert")).to_contain_text("401")
    expect(other.locator("#view-signin")).to_be_visible()
    other.close()

    # When the user signs out
    page.get_by_role("button", name="Sign out").click()

    # Then the credential is gone from the tab and the sign-in form is back
    expect(page.locator("#view-signin")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    assert console.problems == []


def test_events_scroll_past_the_first_page_and_open_a_pretty_printed_detail(console, stack, tenants):
    # Given 70 events (more than one page of 50)
    headers = tenants["console-scroll"]
    types = ("agent.registered", "session.created", "trust.computed", "guardrail.violation", "orchestration.completed")
    emit_many(stack, headers, [{"event_type": types[i % 5], "agent_id": f"agent-{i % 3}", "resource_id": f"res-{i}",
                                "severity": ("info", "info", "warn", "error")[i % 4], "metadata": {"n": i, "region": "eu-west-1"}}
                               for i in range(70)])
    wait_total(stack, headers, 70)

    # When the user signs in, then scrolls the table to its end
    console.sign_in(headers)
    page = console.page
    rows = page.locator("#events-body tr")
    expect(page.locator("#total")).to_have_text("70 events")
    expect(rows).to_have_count(50)
    page.locator("#events-scroll").evaluate("node => node.scrollTo(0, node.scrollHeight)")
    expect(rows).to_have_count(70)

    # Then every event is listed once, newest first, and the end is announced
    ids = rows.evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert len(set(ids)) == 70 and ids == sorted(ids, reverse=True)
    expect(page.locator("#events-end")).to_have_text("End of results")

    # When the user opens the oldest event with the keyboard
    rows.last.focus()
    page.keyboard.press("Enter")

    # Then the detail shows the whole event with its payload pretty-printed, and can be copied
    detail = page.locator("#detail-json")
    expect(detail).to_be_visible()
    shown = json.loads(detail.text_content())
    assert shown["payload"] == {"n": 0, "region": "eu-west-1"} and shown["resource_id"] == "res-0"
    assert '\n  "payload": {\n    "n": 0,' in detail.text_content()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy JSON").click()
    expect(page.locator("#detail-copied")).to_have_text("Copied to the clipboard.")
    assert json.loads(page.evaluate("navigator.clipboard.readText()")) == shown
    console.screenshot("events-detail")
    # and Escape closes it, giving the focus back to the row
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    expect(rows.last).to_be_focused()
    # (the README's screenshot: the top of the list with the newest event open)
    page.locator("#events-scroll").evaluate("node => node.scrollTo(0, 0)")
    rows.first.locator("td").first.click()
    expect(page.locator("#detail")).to_be_visible()
    console.screenshot("events")
    assert console.problems == []


def test_q_search_chips_and_a_shareable_url(console, stack, tenants):
    # Given events of two types and severities
    headers = tenants["console-query"]
    emit_many(stack, headers, [{"event_type": "agent.registered", "agent_id": "agent-a", "severity": "info"}] * 3
              + [{"event_type": "agent.registered", "agent_id": "agent-b", "severity": "warn"}] * 2
              + [{"event_type": "session.created", "agent_id": "agent-a", "severity": "warn"}] * 4)
    wait_total(stack, headers, 9)
    console.sign_in(headers)
    page = console.page
    expect(page.locator("#total")).to_have_text("9 events")

    # When the user searches with the q syntax
    page.get_by_label("Search", exact=True).fill("type:agent.registered")
    page.get_by_label("Search", exact=True).press("Enter")

    # Then only matching events are listed, with their exact total, and the query is in the URL (never the key)
    expect(page.locator("#total")).to_have_text("5 events")
    expect(page.locator("#events-body tr")).to_have_count(5)
    assert "q=type%3Aagent.registered" in page.url and headers["X-API-Key"] not in page.url
    expect(page.locator("#chips li")).to_have_text(["type:agent.registered×"])

    # When the user clicks a severity cell
    page.locator("#events-body").get_by_role("button", name="Filter by severity warn").first.click()

    # Then the qualifier is added as a chip and the list narrows
    expect(page.locator("#total")).to_have_text("2 events")
    expect(page.locator("#chips li span")).to_have_text(["type:agent.registered", "severity:warn"])
    shared = page.url

    # When the URL is opened in a fresh tab (another session) and the user signs in there
    fresh = page.context.browser.new_context()
    try:
        other = fresh.new_page()
        other.goto(shared)
        other.get_by_label("Tenant ID").fill(headers["X-Tenant-ID"])
        other.get_by_label("API key", exact=True).fill(headers["X-API-Key"])
        other.get_by_role("button", name="Sign in").click()
        # Then it shows the same query
        expect(other.locator("#total")).to_have_text("2 events")
        expect(other.get_by_label("Search", exact=True)).to_have_value("type:agent.registered severity:warn")
    finally:
        fresh.close()

    # When a chip is removed
    page.get_by_role("button", name="Remove filter type:agent.registered").click()
    # Then the filter is dropped
    expect(page.locator("#total")).to_have_text("6 events")

    # When the query is not valid
    page.get_by_label("Search", exact=True).fill("colour:red")
    page.get_by_label("Search", exact=True).press("Enter")
    # Then the API's 400 and its message are shown
    alert = page.locator("#alert")
    expect(alert).to_contain_text("400 invalid_request")
    expect(alert).to_contain_text("type:")
    console.screenshot("events-query-error")


def test_live_tail_shows_new_events_within_three_seconds_without_duplicates(console, stack, tenants):
    # Given a signed-in user with live tail on
    headers = tenants["console-tail"]
    emit_many(stack, headers, [{"event_type": "agent.updated", "agent_id": "agent-1"}] * 2)
    wait_total(stack, headers, 2)
    console.sign_in(headers)
    page = console.page
    expect(page.locator("#events-body tr")).to_have_count(2)
    page.get_by_label("Live tail").check()
    expect(page.locator("#tail-status")).to_contain_text("Live")

    # When a new event is emitted
    created = requests.post(stack.url + EVENTS, headers=headers, json={"event_type": "guardrail.violation", "severity": "error",
                                                                    "agent_id": "agent-9"}, timeout=10).json()

    # Then it appears on top within 3 s
    first = page.locator("#events-body tr").first
    expect(first).to_have_attribute("data-id", created["id"], timeout=3000)
    expect(first).to_contain_text("guardrail.violation")
    # and a few polls later it is still listed exactly once, and the total follows
    page.wait_for_timeout(2500)
    assert page.locator(f'#events-body tr[data-id="{created["id"]}"]').count() == 1
    expect(page.locator("#events-body tr")).to_have_count(3)
    expect(page.locator("#total")).to_have_text("3 events")

    # When live tail is switched off, new events wait for the next search
    page.get_by_label("Live tail").uncheck()
    requests.post(stack.url + EVENTS, headers=headers, json={"event_type": "agent.updated"}, timeout=10)
    page.wait_for_timeout(1500)
    expect(page.locator("#events-body tr")).to_have_count(3)
    assert console.problems == []


def test_webhooks_create_rotate_disable_and_replay_a_window(console, stack, tenants):
    headers = tenants["console-hooks"]
    hooks = f"{stack.url}/v1/observability/webhooks"
    with Receiver() as receiver, Receiver() as earlier:
        # Given stored events, emitted before the webhook under test existed and already past the dispatcher (an
        # earlier webhook, deleted since, received them), so that only a replay can bring them to the new one
        first = requests.post(hooks, headers=headers, json={"url": earlier.url, "event_types": ["agent.*"]}, timeout=10)
        assert first.status_code == 201, first.text
        emit_many(stack, headers, [{"event_type": "agent.registered", "agent_id": f"agent-{i}"} for i in range(3)])
        assert len(earlier.wait_for(3, timeout=20)) == 3
        assert requests.delete(f"{hooks}/{first.json()['id']}", headers=headers, timeout=10).status_code == 204
        console.sign_in(headers, "#webhooks")
        page = console.page

        # When the user creates a webhook for the receiver
        page.get_by_label("URL").fill(receiver.url)
        page.get_by_label("Event types").fill("agent.*")
        page.get_by_label("Description").fill("console test")
        page.get_by_role("button", name="Create webhook").click()

        # Then its secret is shown once, and it is listed as enabled with no deliveries yet
        secret = page.locator("#secret-value")
        expect(secret).to_have_text(re.compile(r"^whsec_"))
        first_secret = secret.text_content()
        row = page.locator("#webhooks-body tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("enabled")
        expect(row.locator(".rate")).to_have_text("no deliveries yet")
        page.get_by_role("button", name="Done").click()
        expect(secret).to_be_hidden()

        # When the user replays the last hour
        page.get_by_role("button", name=f"Replay events to {receiver.url}").click()
        page.get_by_role("button", name="Replay window").click()

        # Then the 3 stored events are queued and reach the receiver
        expect(page.locator("#webhook-status")).to_have_text(f"Replay queued: 3 events to {receiver.url}.")
        assert len(receiver.wait_for(3, timeout=20)) == 3
        # and, once reloaded, the endpoint's recent success rate counts them
        deadline = time.monotonic() + 20
        while True:
            page.reload()
            if page.locator("#webhooks-body tr .rate").text_content(timeout=5000) == "100% of 3" or time.monotonic() > deadline:
                break
            page.wait_for_timeout(500)
        expect(page.locator("#webhooks-body tr .rate")).to_have_text("100% of 3")
        expect(page.locator("#webhooks-body tr .dead")).to_have_text("0")

        # When the user rotates the secret
        page.get_by_role("button", name=f"Rotate the secret of {receiver.url}").click()
        # Then a new secret is shown once
        expect(secret).to_have_text(re.compile(r"^whsec_"))
        assert secret.text_content() != first_secret

        # When the user disables the endpoint, then enables it again
        page.get_by_role("button", name=f"Disable {receiver.url}").click()
        expect(page.locator("#webhooks-body tr")).to_contain_text("disabled")
        hook = requests.get(stack.url + "/v1/observability/webhooks", headers=headers, timeout=10).json()["items"][0]
        assert hook["status"] == "disabled"
        page.get_by_role("button", name=f"Enable {receiver.url}").click()
        expect(page.locator("#webhooks-body tr td").nth(2)).to_have_text("enabled")

    # Given a second endpoint that always answers 500, and one event for it (retried twice, 1 s apart, then dead)
    with Receiver(Reply(status=500, body=b"boom")) as failing:
        hook = requests.post(stack.url + "/v1/observability/webhooks", headers=headers, timeout=10,
                             json={"url": failing.url, "event_types": ["session.*"]}).json()
        requests.post(stack.url + EVENTS, headers=headers, json={"event_type": "session.revoked"}, timeout=10)
        deadline = time.monotonic() + 30
        while not requests.get(f"{stack.url}/v1/observability/webhooks/{hook['id']}/deliveries", headers=headers,
                               params={"status": "dead_lettered"}, timeout=10).json()["items"]:
            assert time.monotonic() < deadline, "the delivery was never dead-lettered"
            time.sleep(0.3)
        # When the list is shown again
        page.reload()
        failing_row = page.locator("#webhooks-body tr", has_text=failing.url)
        # Then its health says so: no success, one dead-lettered delivery, the last error
        expect(failing_row.locator(".rate")).to_have_text("0% of 3")
        expect(failing_row.locator(".dead")).to_have_text("1")
        expect(failing_row.locator(".last-error")).to_contain_text("500")
    console.screenshot("webhooks")
    assert console.problems == []


def test_metrics_chart_draws_events_per_hour_by_severity(console, stack, tenants):
    # Given events of three severities
    headers = tenants["console-metrics"]
    emit_many(stack, headers, [{"event_type": "agent.registered", "severity": "info"}] * 5
              + [{"event_type": "trust.threshold_breach", "severity": "warn"}] * 3
              + [{"event_type": "guardrail.violation", "severity": "error"}] * 2)
    wait_total(stack, headers, 10)
    deadline = time.monotonic() + 20
    while requests.get(stack.url + "/v1/observability/metrics", headers=headers, timeout=10).json()["total"] < 10:
        assert time.monotonic() < deadline, "metrics never counted the events"
        time.sleep(0.3)

    # When the user opens the metrics view grouped by severity
    console.sign_in(headers, "#metrics?" + "group_by=severity&interval=hour&window=24")
    page = console.page

    # Then an SVG chart draws one bar per severity in the current hour, with a legend of totals
    chart = page.locator("#chart svg")
    expect(chart).to_be_visible()
    expect(chart.locator("g.series rect.bar")).to_have_count(3)
    expect(page.locator("#legend li")).to_have_text(["info: 5", "warn: 3", "error: 2"])
    expect(page.locator("#metrics-total")).to_contain_text("10 events")
    console.screenshot("metrics-severity")

    # When the user groups by event type per day instead
    page.get_by_label("Group by").select_option("event_type")
    page.get_by_label("Interval").select_option("day")
    page.get_by_role("button", name="Show").click()

    # Then the URL and the chart follow
    expect(page).to_have_url(re.compile(r"#metrics\?group_by=event_type&interval=day&window=24$"))
    expect(page.locator("#legend li")).to_have_count(3)
    expect(page.locator("#legend li").first).to_have_text("agent.registered: 5")
    assert console.problems == []


def test_a_bearer_jwt_signs_in_and_views_are_reachable_with_the_keyboard(console, stack):
    # Given a user signing in with a Bearer JWT of tenant demo
    token = jwt.encode({"tenant_id": "demo", "scope": "events:read webhooks:read metrics:read", "exp": int(time.time()) + 600},
                       JWT_SECRET, algorithm="HS256")
    page = console.page
    console.open()
    page.get_by_label("Tenant ID").fill("demo")
    page.get_by_label("Use a Bearer JWT").check()
    page.get_by_label("Bearer JWT", exact=True).fill(token)
    page.get_by_role("button", name="Sign in").click()
    # Then the events view opens, the token kept in sessionStorage only
    expect(page.locator("#view-events")).to_be_visible()
    expect(page.locator("#total")).to_have_text(re.compile(r"^\d+ events?$"))
    assert json.loads(page.evaluate("sessionStorage.getItem('maip-console-auth')"))["kind"] == "jwt"
    assert token not in page.url and page.evaluate("localStorage.length") == 0

    # When the user tabs from the top of the page
    page.locator("body").focus()
    reached = []
    for _ in range(8):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.textContent.trim() || document.activeElement.id"))
    # Then the skip link and every view's link are reached, and the focus is visible
    assert {"Skip to content", "Events", "Webhooks", "Metrics"} <= set(reached)
    page.get_by_role("link", name="Metrics").focus()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.keyboard.press("Enter")
    expect(page.locator("#view-metrics")).to_be_visible()
    # and every form control of every view has a label
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select')]
        .filter(c => c.type !== 'radio' && c.type !== 'checkbox' && !(c.labels && c.labels.length) && !c.getAttribute('aria-label'))
        .map(c => c.id)""")
    assert unlabelled == []
