"""SSRF guard. Deployed, a webhook URL must be https, carry no credentials, and reach only public
addresses; the address is checked when the URL is registered and again, after resolving the host,
right before every send (the sender then connects to exactly that address: no DNS rebinding).
The local stack (MAIP_LOCAL=1) also allows http and loopback receivers."""
from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import SplitResult, urlsplit

from maip_events.errors import InvalidRequest
from maip_events.settings import get_settings

MAX_URL_LENGTH = 2048
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")
# Cloud metadata services that sit on otherwise routable addresses (the link-local ones are refused anyway).
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("100.100.100.200", "192.0.0.192", "fd00:ec2::254"))


class RefusedTarget(Exception):
    """The URL may not be called (scheme, credentials or a non-public address)."""


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


def allowed_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if get_settings().local:
        return True
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip in METADATA_ADDRESSES)


def resolve(host: str, port: int) -> str:
    """The first allowed address of `host`; raises RefusedTarget when it has none (or does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise RefusedTarget(f"cannot resolve {host}: {err}") from None
    addresses = [info[4][0] for info in infos]
    for address in addresses:
        if allowed_address(address):
            return address
    raise RefusedTarget(f"{host} resolves only to non-public addresses ({', '.join(sorted(set(addresses)))})")


def check_registration(url: str) -> str:
    """Registration-time check (400 on failure). IP literals and names that already resolve to forbidden
    addresses are refused now; a name that does not resolve yet is accepted and checked at send time."""
    try:
        parts = parse(url)
        host = parts.hostname or ""
        if not get_settings().local:
            if host.lower() == "localhost" or host.lower().endswith(".localhost"):
                raise RefusedTarget("the URL must not point at localhost")
            try:
                resolve(host, parts.port or 443)
            except RefusedTarget as err:
                if "cannot resolve" not in str(err):
                    raise
    except RefusedTarget as err:
        raise InvalidRequest(f"`url` is not allowed: {err}.", details=[{"field": "url", "issue": str(err)}]) from None
    return url
