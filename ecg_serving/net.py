"""SSRF guard for every untrusted URL either service fetches or posts to: the ML server's
downloads and callbacks, the backend's client events.

Only http/https. A host is resolved and every address it resolves to must be public (not
private, loopback, link-local, multicast, reserved or unspecified, IPv4-mapped IPv6 unwrapped)
unless the host name or the address is listed (`ML_ALLOWED_PRIVATE_HOSTS` on the ML server,
`WEBHOOK_ALLOWED_PRIVATE_HOSTS` for client events). The names `localhost`, `localhost.` and
`*.localhost` (RFC 6761: always loopback, whatever a resolver answers) are refused by name
before any DNS lookup, unless the name itself is listed.

The check runs twice: once on each URL (so a refusal has a clear message, and redirects are
checked hop by hop) and again at connect time inside the HTTP transport, on the very address the
socket connects to, so DNS rebinding between the check and the connect cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import certifi
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[IPAddress]]

ALLOWED_SCHEMES = frozenset({"http", "https"})


class URLNotAllowed(Exception):
    """The URL may not be fetched; `message` says why in words a client can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ResolutionError(Exception):
    """The host name did not resolve (a download problem, not a policy refusal)."""


@dataclass(frozen=True, slots=True)
class AllowList:
    """Hosts and networks that may be private (`ML_ALLOWED_PRIVATE_HOSTS`)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """Split entries into CIDRs/addresses and host names (lower-cased)."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().strip("[]")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(hosts=frozenset(hosts), networks=tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_ip(self, ip: IPAddress) -> bool:
        ip = _unmap(ip)
        return any(ip.version == net.version and ip in net for net in self.networks)


def _unmap(ip: IPAddress) -> IPAddress:
    # ::ffff:10.0.0.1 reaches 10.0.0.1; judge it as the IPv4 address it is.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_public(ip: IPAddress) -> bool:
    """True when the address is globally routable unicast."""
    ip = _unmap(ip)
    if isinstance(ip, ipaddress.IPv6Address):
        # NAT64 and 6to4 embed an IPv4 address; judge the embedded one.
        if ip.sixtofour is not None:
            return is_public(ip.sixtofour)
        if ip in _NAT64:
            return is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (literal addresses resolve to themselves)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ResolutionError(f"cannot resolve {host!r}: {exc}") from exc
    out: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        # Strip an IPv6 zone id ("fe80::1%eth0") before parsing.
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in out:
            out.append(ip)
    return out


@dataclass(frozen=True, slots=True)
class UrlGuard:
    """Decides whether a URL or a connect target may be used."""

    allow: AllowList = AllowList()
    resolver: Resolver = system_resolver
    setting: str = "ML_ALLOWED_PRIVATE_HOSTS"  # named in refusals: where to list a host

    @classmethod
    def from_entries(
        cls,
        entries: Sequence[str],
        resolver: Resolver = system_resolver,
        setting: str = "ML_ALLOWED_PRIVATE_HOSTS",
    ) -> UrlGuard:
        return cls(allow=AllowList.parse(entries), resolver=resolver, setting=setting)

    def check_name(self, host: str) -> None:
        """Refuse a loopback-by-definition name (RFC 6761) unless it is listed by name."""
        if is_loopback_name(host) and not self.allow.allows_host(host):
            raise URLNotAllowed(
                f"{host!r} is a loopback name (RFC 6761); list it in {self.setting} to allow it"
            )

    def check_url(self, url: str, *, resolve: bool = True) -> list[IPAddress]:
        """Refuse a URL the policy forbids; return the addresses it may connect to.

        With `resolve=False` only the scheme and literal addresses are judged. A host that does
        not resolve raises `ResolutionError` (the caller decides whether that is fatal).
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise URLNotAllowed(f"not a valid URL: {exc}") from exc
        scheme = parts.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise URLNotAllowed(f"scheme {scheme or '(none)'!r} is not allowed; use http or https")
        host = parts.hostname
        if not host:
            raise URLNotAllowed("the URL has no host")
        # Before DNS: a resolver may not answer `*.localhost`, or answer it differently later.
        self.check_name(host)
        default_port = 443 if scheme == "https" else 80
        literal = _literal_ip(host)
        if literal is not None:
            # Judged as written, even where the resolver cannot parse it (`fe80::1%25eth0`).
            self.check_addresses(host, [literal])
        if not resolve:
            return [] if literal is None else [literal]
        return self.check_addresses(host, self.resolver(host, port or default_port))

    def check_addresses(self, host: str, addresses: Sequence[IPAddress]) -> list[IPAddress]:
        """Keep the addresses `host` may connect to; refuse when any is forbidden."""
        if not addresses:
            raise ResolutionError(f"{host!r} resolved to no address")
        if self.allow.allows_host(host):
            return list(addresses)
        for ip in addresses:
            # One forbidden address refuses the host: a name that also points inside the
            # network must not be fetched, whichever address the connect would pick.
            if not is_public(ip) and not self.allow.allows_ip(ip):
                raise URLNotAllowed(
                    f"{host!r} resolves to {ip}, a private, loopback, link-local or reserved "
                    f"address; list it in {self.setting} to allow it"
                )
        return list(addresses)


def is_loopback_name(host: str) -> bool:
    """`localhost`, `localhost.` or any name under `.localhost` (any case or Unicode spelling)."""
    name = _ascii_name(host).lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def _ascii_name(host: str) -> str:
    # getaddrinfo IDNA-encodes a Unicode name, so `ｌｏｃａｌｈｏｓｔ` or `app。localhost` reach
    # `localhost`: judge the name in the form the resolver sees.
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        folded = unicodedata.normalize("NFKC", host)
        return "".join("." if ch in _IDNA_DOTS else ch for ch in folded)


_IDNA_DOTS = frozenset("\u3002\uff0e\uff61")


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


# --------------------------------------------------------------------------- transport


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves, checks and connects to a vetted address (closes the DNS-rebinding gap)."""

    def __init__(self, guard: UrlGuard) -> None:
        self._guard = guard
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            self._guard.check_name(host)
            addresses = self._guard.check_addresses(host, self._guard.resolver(host, port))
        except ResolutionError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        except URLNotAllowed as exc:
            raise ForbiddenConnect(exc.message) from exc
        last: Exception | None = None
        for ip in addresses:
            try:
                return self._inner.connect_tcp(
                    str(ip), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise ForbiddenConnect("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class ForbiddenConnect(httpcore.ConnectError):
    """Raised at connect time when the address is forbidden; httpx wraps it in ConnectError."""


def is_forbidden_connect(exc: BaseException) -> bool:
    """True when an httpx error was caused by the connect-time SSRF check."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ForbiddenConnect):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport whose every TCP connect goes through the SSRF guard."""

    def __init__(self, guard: UrlGuard, *, retries: int = 0) -> None:
        super().__init__(retries=retries)
        # httpx exposes no network_backend option; the pool it builds is replaced with one that
        # has the same TLS defaults and the guarded backend.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl.create_default_context(cafile=certifi.where()),
            retries=retries,
            network_backend=_GuardedBackend(guard),
        )


def guarded_client(guard: UrlGuard, *, timeout: httpx.Timeout) -> httpx.Client:
    """A sync client for untrusted URLs: guarded connects, no env proxies, no auto-redirects."""
    return httpx.Client(
        transport=GuardedTransport(guard),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
