"""SSRF guard, the only one. Deployed, an outbound URL must be https, carry no credentials, and reach only
public addresses: the host is resolved (under the caller's deadline) and every candidate address checked,
and the client then connects to exactly the checked address (no DNS rebinding). The local stack
(MAIP_LOCAL=1) also allows http and loopback receivers.

Refused: private, loopback, link-local, shared (100.64/10), multicast, reserved and unspecified addresses,
cloud metadata addresses, IPv6 unique-local (fc00::/7) and site-local (fec0::/10), and every IPv6 form that
embeds an IPv4 address (IPv4-mapped ::ffff:0:0/96, IPv4-compatible ::/96, 6to4 2002::/16, NAT64
64:ff9b::/96) when the embedded address is not public; local-use NAT64 (64:ff9b:1::/48) and Teredo always."""
from __future__ import annotations

import ipaddress
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from urllib.parse import SplitResult, urlsplit

from maip_events.errors import InvalidRequest
from maip_events.settings import get_settings

MAX_URL_LENGTH = 2048
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")
# Cloud metadata services that sit on otherwise routable addresses (the link-local ones are refused anyway).
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("100.100.100.200", "192.0.0.192", "fd00:ec2::254"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
REGISTRATION_RESOLVE_SECONDS = 2.0
# getaddrinfo cannot be interrupted: it runs on these threads and the caller stops waiting at its deadline.
_RESOLVER = ThreadPoolExecutor(max_workers=16, thread_name_prefix="maip-dns")


class RefusedTarget(Exception):
    """The URL may not be called (scheme, credentials or a non-public address)."""


class ResolveTimeout(Exception):
    """Name resolution did not finish before the deadline."""


def parse(url: str) -> SplitResult:
    """Structural checks shared by registration and sending; raises RefusedTarget."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedTarget(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if not _PRINTABLE_ASCII.fullmatch(url):  # no header injection, no look-alike hosts (use punycode)
        raise RefusedTarget("the URL must be printable ASCII without spaces (use punycode for international names)")
    try:
        parts = urlsplit(url)
        if parts.port == 0:
            raise ValueError("port 0")
    except ValueError as err:
        raise RefusedTarget(f"the URL is malformed ({err})") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise RefusedTarget("the URL must be an absolute https URL")
    if parts.scheme != "https" and not get_settings().local:
        raise RefusedTarget("the URL must use https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise RefusedTarget("the URL must not contain credentials")
    if parts.fragment:
        raise RefusedTarget("the URL must not contain a fragment")
    return parts


def _public_ipv4(ip: ipaddress.IPv4Address) -> bool:
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip in METADATA_ADDRESSES)


def public_address(address: str) -> bool:
    """Is this a public unicast address (after unwrapping any IPv4 embedded in an IPv6 one)?"""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv4Address):
        return _public_ipv4(ip)
    if ip.ipv4_mapped is not None:
        return _public_ipv4(ip.ipv4_mapped)
    if ip in _NAT64:
        return _public_ipv4(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        return _public_ipv4(ip.sixtofour)
    if ip in _NAT64_LOCAL or ip in _IPV4_COMPATIBLE or ip in _SITE_LOCAL or ip in _UNIQUE_LOCAL or ip.teredo is not None:
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_site_local or ip in METADATA_ADDRESSES)


def allowed_address(address: str) -> bool:
    """Public addresses; in the local stack every address (loopback receivers)."""
    return True if get_settings().local else public_address(address)


def resolve(host: str, port: int, timeout: float = REGISTRATION_RESOLVE_SECONDS) -> str:
    """The first allowed address of `host`, resolved within `timeout` seconds; raises RefusedTarget when it
    has none (or does not resolve) and ResolveTimeout when the resolver is slower than that."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:  # nothing to resolve
        if allowed_address(str(literal)):
            return str(literal)
        raise RefusedTarget(f"{host} is not a public address")
    started = time.monotonic()
    future = _RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=max(timeout, 0.001))
    except FutureTimeout:
        future.cancel()
        raise ResolveTimeout(f"resolving {host} took longer than {time.monotonic() - started:.1f} s") from None
    except (socket.gaierror, UnicodeError, OSError) as err:
        raise RefusedTarget(f"cannot resolve {host}: {err}") from None
    addresses = [info[4][0] for info in infos]
    for address in addresses:
        if allowed_address(address):
            return address
    raise RefusedTarget(f"{host} resolves only to non-public addresses ({', '.join(sorted(set(addresses)))})")


def check_registration(url: str) -> str:
    """Registration-time check (400 on failure). IP literals and names that already resolve to forbidden
    addresses are refused now; a name that does not resolve (yet, or in time) is accepted and checked at send time."""
    try:
        parts = parse(url)
        host = parts.hostname or ""
        if not get_settings().local:
            if host.lower() == "localhost" or host.lower().endswith(".localhost"):
                raise RefusedTarget("the URL must not point at localhost")
            try:
                resolve(host, parts.port or 443)
            except ResolveTimeout:
                pass
            except RefusedTarget as err:
                if "cannot resolve" not in str(err):
                    raise
    except RefusedTarget as err:
        raise InvalidRequest(f"`url` is not allowed: {err}.", details=[{"field": "url", "issue": str(err)}]) from None
    return url
