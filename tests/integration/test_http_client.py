"""The one outbound client (maip_events.http.client): one deadline for the whole exchange, so a receiver
that drips its response a byte a second is cut at the deadline and recorded as timed out."""
from __future__ import annotations

import pytest

from drip_receiver import DripReceiver, dead_url
from maip_events import settings
from maip_events.http import client
from webhook_receiver import Receiver


@pytest.fixture
def local(monkeypatch):
    monkeypatch.setenv("MAIP_LOCAL", "1")
    settings.reset()
    yield
    settings.reset()


def test_a_dripping_receiver_is_cut_at_the_deadline(local):
    # Given a receiver that sends one response byte per second (each read succeeds well within any read timeout)
    with DripReceiver() as drip:
        # When posting to it with a 2 s deadline
        result = client.post(drip.url, {"content-type": "application/json"}, b"{}", 2)
    # Then the attempt is a timeout (not a success after the drip ended), and the request did reach it
    assert drip.requests == 1
    assert (result.ok, result.timed_out, result.status_code) == (False, True, None)
    assert result.error == "timeout after 2 s"


def test_a_dead_receiver_is_a_connection_error_not_an_exception(local):
    result = client.post(dead_url(), {}, b"{}", 2)
    assert not result.ok and not result.timed_out and result.error.startswith("connection error")


def test_a_header_that_cannot_be_sent_fails_only_that_request(local):
    with Receiver() as receiver:
        # Given a credential with a newline (header injection) and one with non-Latin-1 text
        for bad in ("Splunk abc\r\nX-Evil: 1", "Splunk ключ"):
            result = client.post(receiver.url, {"authorization": bad}, b"{}", 2)
            # Then nothing is sent and the result says why, without raising
            assert not result.ok and result.error
        assert receiver.requests == []


def test_redirects_are_not_followed(local):
    from webhook_receiver import Reply

    with Receiver(Reply(302, headers={"location": "http://169.254.169.254/latest/meta-data"})) as receiver:
        result = client.post(receiver.url, {}, b"{}", 2)
    assert not result.ok and result.status_code == 302


def test_refused_addresses_are_never_connected_when_deployed(monkeypatch):
    monkeypatch.delenv("MAIP_LOCAL", raising=False)
    settings.reset()
    try:
        result = client.post("https://[64:ff9b::7f00:1]:8443/x", {}, b"{}", 2)
        assert not result.ok and result.error.startswith("refused")
    finally:
        settings.reset()
