"""The one SSRF guard (maip_events.http.guard): every non-public range is refused when deployed, including the
IPv6 forms that embed a private IPv4 address; public addresses (also inside those forms) pass."""
from __future__ import annotations

import pytest

from maip_events.http import guard


@pytest.mark.parametrize("address, why", [
    ("10.1.2.3", "private"), ("172.31.255.255", "private"), ("192.168.0.1", "private"),
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "IPv6 loopback"),
    ("169.254.169.254", "link-local / AWS metadata"), ("fe80::1%eth0", "IPv6 link-local with zone"),
    ("100.64.0.1", "shared address space (CGNAT)"), ("100.100.100.200", "Alibaba metadata"),
    ("192.0.0.192", "Oracle metadata"), ("fd00:ec2::254", "AWS IPv6 metadata"),
    ("0.0.0.0", "unspecified"), ("::", "IPv6 unspecified"), ("224.0.0.1", "multicast"), ("ff02::1", "IPv6 multicast"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "broadcast"), ("198.18.0.1", "benchmarking"),
    ("fc00::1", "unique-local"), ("fd12:3456::1", "unique-local"),
    ("fec0::1", "site-local (deprecated, still routed by some stacks)"), ("feff::1", "site-local"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"), ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "IPv4-mapped metadata"), ("::127.0.0.1", "IPv4-compatible loopback"),
    ("::a00:1", "IPv4-compatible private"),
    ("2002:7f00:1::", "6to4 of 127.0.0.1"), ("2002:a00:1::1", "6to4 of 10.0.0.1"), ("2002:a9fe:a9fe::", "6to4 of metadata"),
    ("64:ff9b::a00:1", "NAT64 of 10.0.0.1"), ("64:ff9b::7f00:1", "NAT64 of 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "NAT64 of 169.254.169.254"), ("64:ff9b:1::808:808", "local-use NAT64"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"), ("2001:db8::1", "documentation"),
])
def test_non_public_addresses_are_refused_when_deployed(deployed, address, why):
    assert guard.allowed_address(address) is False, why


@pytest.mark.parametrize("address", [
    "93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808",
])
def test_public_addresses_pass_also_inside_ipv6_forms(deployed, address):
    assert guard.allowed_address(address) is True


def test_registration_refuses_ip_literals_of_embedded_private_forms(deployed):
    from maip_events.errors import InvalidRequest

    for url in ("https://[64:ff9b::a9fe:a9fe]/", "https://[2002:a00:1::1]/hook", "https://[fec0::1]/", "https://[::ffff:a00:1]/"):
        with pytest.raises(InvalidRequest):
            guard.check_registration(url)


def test_name_resolution_is_bounded_by_the_deadline(deployed, monkeypatch):
    import socket
    import threading

    release = threading.Event()

    def stuck_resolver(*args, **kwargs):  # a resolver that never answers in time
        release.wait(5)
        raise socket.gaierror("gave up")

    monkeypatch.setattr(socket, "getaddrinfo", stuck_resolver)
    try:
        with pytest.raises(guard.ResolveTimeout):
            guard.resolve("slow.example", 443, timeout=0.2)
    finally:
        release.set()
