"""Where a callback may go: URL and host checks against SSRF, done after DNS resolution.

A job's ``callback_url`` comes from whoever calls the API, so it is untrusted: left alone it could point
the workers at the instance metadata service (169.254.169.254), at localhost admin ports or at anything
on the private network. The rules:

* http(s) only, no ``user:password@``, no backslashes, whitespace or control characters, and no IP
  address spelt any other way than the standard dotted quad / RFC 4291 form (``2130706433``, ``0x7f.1``,
  ``0177.0.0.1``, ``127.1`` are refused: resolvers read them as 127.0.0.1).
* Every address the host resolves to must be public. Loopback, private (10/8, 172.16/12, 192.168/16,
  fc00::/7) and CGNAT (100.64/10) are refused unless ``CALLBACK_ALLOW_PRIVATE_NETWORKS``; link-local
  (169.254/16 incl. the metadata service, fe80::/10), unspecified, multicast and reserved ranges always
  are. IPv4 addresses embedded in IPv6 (``::ffff:127.0.0.1``, ``::127.0.0.1``, NAT64, 6to4) are judged
  as the IPv4 address they carry.
* ``CALLBACK_ALLOWED_HOSTS`` (host names, ``.suffix`` names, CIDRs), when set, is the only way in: a
  listed name is trusted as named (its operator controls its DNS), an address must lie in a listed CIDR.
* The origin of ``BACKEND_URL`` is operator-configured and trusted.

`pin` is what the sender calls right before each attempt: it re-resolves the host and returns the
address to connect to, so a DNS answer that changed since the job was created (DNS rebinding) is judged
again, and the connection goes to the address that was judged, not to a second lookup.
"""

from __future__ import annotations

import ipaddress
import socket
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from app.errors import InvalidInputError

if TYPE_CHECKING:
    from app.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``resolve(host, port)`` -> the addresses a connection could go to (strings, in preference order).
Resolver = Callable[[str, int], list[str]]

#: Refused unless CALLBACK_ALLOW_PRIVATE_NETWORKS (development and tests against a local backend).
_PRIVATE_RANGES: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), what)
    for net, what in (
        ("127.0.0.0/8", "a loopback"),
        ("::1/128", "a loopback"),
        ("10.0.0.0/8", "a private"),
        ("172.16.0.0/12", "a private"),
        ("192.168.0.0/16", "a private"),
        ("fc00::/7", "a private"),
        ("100.64.0.0/10", "a shared (CGNAT)"),
    )
)
#: IPv6 prefixes whose last 32 bits are an IPv4 address: NAT64 and SIIT's IPv4-translated form.
_EMBEDDING_V4 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::ffff:0:0:0/96"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_BAD_CHARS = frozenset("\\" + string.whitespace) | {chr(c) for c in range(32)} | {chr(127)}


class CallbackURLError(InvalidInputError):
    """A callback URL that may not be used. One line, naming the URL (never a server path)."""


class HostLookupError(InvalidInputError):
    """The callback host did not resolve (a typo at job creation; possibly transient when sending)."""


def _shown(url: str) -> str:
    return repr(url if len(url) <= 200 else url[:199] + "…")


@dataclass(frozen=True)
class CallbackPolicy:
    allow_private: bool = False
    allowed_names: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()
    #: (scheme, host, port) origins trusted without checks: BACKEND_URL's.
    trusted_origins: frozenset[tuple[str, str, int]] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> CallbackPolicy:
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (e.strip().lower() for e in settings.CALLBACK_ALLOWED_HOSTS.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.add(entry.rstrip("."))
        trusted: set[tuple[str, str, int]] = set()
        if settings.BACKEND_URL:
            trusted.add(_origin(httpx.URL(settings.BACKEND_URL)))
        return cls(settings.CALLBACK_ALLOW_PRIVATE_NETWORKS, frozenset(names), tuple(networks), frozenset(trusted))

    @property
    def restricted(self) -> bool:
        return bool(self.allowed_names or self.allowed_networks)

    def name_allowed(self, host: str) -> bool:
        host = host.rstrip(".")
        return any(host == n or (n.startswith(".") and host.endswith(n)) for n in self.allowed_names)


@dataclass(frozen=True)
class Pinned:
    """Where to send: ``url`` with the host swapped for the checked ``ip`` (None: send as given)."""

    url: httpx.URL
    ip: str | None = None

    def request_url(self) -> httpx.URL:
        return self.url if self.ip is None else self.url.copy_with(host=self.ip)

    def headers(self) -> dict[str, str]:
        """Host as the URL names it (virtual hosting on the receiver); empty when not pinned."""
        if self.ip is None:
            return {}
        host = self.url.raw_host.decode("ascii")
        return {"Host": host if self.url.port is None else f"{host}:{self.url.port}"}

    def extensions(self) -> dict[str, str]:
        """TLS: SNI and certificate verification against the URL's host name, not the address."""
        return {} if self.ip is None or self.url.scheme != "https" else {"sni_hostname": self.url.host}


def system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse(url: str) -> httpx.URL:
    """The URL as the HTTP client will read it, after the checks that need no network."""
    if any(c in _BAD_CHARS for c in url):
        raise CallbackURLError(f"callback_url {_shown(url)} contains whitespace, a backslash or a control character")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise CallbackURLError(f"callback_url {_shown(url)} is not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise CallbackURLError(f"callback_url {_shown(url)} is not an http:// or https:// URL")
    if parsed.userinfo:
        raise CallbackURLError(f"callback_url {_shown(url)} must not carry a user name or password")
    if not parsed.raw_host:
        raise CallbackURLError(f"callback_url {_shown(url)} has no host")
    host = parsed.raw_host.decode("ascii").lower()
    if _literal(host) is None and _looks_numeric(host):
        raise CallbackURLError(f"callback_url {_shown(url)} spells an IP address in a non-standard form")
    return parsed


def pin(url: str, policy: CallbackPolicy, resolve: Resolver = system_resolve) -> Pinned:
    """Check ``url`` against ``policy`` after resolving its host; raise CallbackURLError (refused) or
    HostLookupError (no answer). Returns the checked address to connect to."""
    parsed = parse(url)
    host = parsed.raw_host.decode("ascii").lower()
    if _origin(parsed) in policy.trusted_origins or policy.name_allowed(host):
        return Pinned(parsed)
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        addresses = _lookup(url, host, parsed.port or (443 if parsed.scheme == "https" else 80), resolve)
    for address in addresses:
        problem = _refusal(address, policy)
        if problem:
            raise CallbackURLError(f"callback_url {_shown(url)} is not allowed: {problem}")
    return Pinned(parsed, None if literal is not None else str(addresses[0]))


def check_callback_url(url: str, settings: Settings, resolve: Resolver = system_resolve) -> None:
    """Job creation: refuse (CallbackURLError / HostLookupError, both 422) a URL the workers must not call."""
    pin(url, CallbackPolicy.from_settings(settings), resolve)


# --- helpers ---------------------------------------------------------------------------------------


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    port = url.port or (443 if url.scheme == "https" else 80)
    return (url.scheme, url.raw_host.decode("ascii").lower().rstrip("."), port)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _looks_numeric(host: str) -> bool:
    """A host whose last label is a number (WHATWG's "ends in a number"), or that inet_aton reads as an
    address: decimal, hex and octal spellings, shortened quads."""
    last = host.rstrip(".").rsplit(".", 1)[-1]
    if last.isdigit() or (last.startswith("0x") and all(c in string.hexdigits for c in last[2:])):
        return True
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def _lookup(url: str, host: str, port: int, resolve: Resolver) -> list[IPAddress]:
    try:
        answers = resolve(host, port)
    except (OSError, UnicodeError):
        answers = []
    addresses = [a for a in (_literal(ans.split("%", 1)[0]) for ans in answers) if a is not None]
    if not addresses:
        raise HostLookupError(f"callback_url {_shown(url)}: host {host!r} does not resolve")
    return addresses


def _embedded_v4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped, translated, compatible, NAT64, 6to4), else itself."""
    if not isinstance(address, ipaddress.IPv6Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in _EMBEDDING_V4) or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _refusal(address: IPAddress, policy: CallbackPolicy) -> str | None:
    """Why the sender may not connect to ``address`` (None: it may)."""
    if policy.restricted:
        if any(_contains(net, a) for net in policy.allowed_networks for a in (address, _embedded_v4(address))):
            return None
        return f"{address} is not in CALLBACK_ALLOWED_HOSTS"
    carried = _embedded_v4(address)
    shown = str(address) if carried == address else f"{address} (carrying {carried})"
    address = carried
    kinds = (
        (address.is_unspecified, "an unspecified"),
        (address.is_multicast, "a multicast"),
        (address.is_link_local, "a link-local"),
    )
    for hit, what in kinds:
        if hit:
            return f"{shown} is {what} address"
    for net, what in _PRIVATE_RANGES:
        if _contains(net, address):
            return None if policy.allow_private else f"{shown} is {what} address"
    return None if address.is_global else f"{shown} is a reserved address"


def _contains(net: IPNetwork, address: IPAddress) -> bool:
    return address.version == net.version and address in net
