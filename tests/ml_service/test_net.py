"""SSRF guard: address classes, allow-list, schemes, and the connect-time re-check."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import httpx
import pytest

from ecg_cli.up import child_envs
from ecg_serving.net import (
    AllowList,
    IPAddress,
    UrlGuard,
    URLNotAllowed,
    guarded_client,
    is_forbidden_connect,
    is_loopback_name,
    is_public,
    system_resolver,
)
from ml_server.config import MLSettings
from tests.support.local_servers import MediaServer

FORBIDDEN = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "0.0.0.0",
    "100.64.0.1",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "2002:7f00:1::1",
    "64:ff9b::a00:1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_forbidden_addresses(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def fixed(*addresses: str) -> UrlGuard:
    ips = [ipaddress.ip_address(a) for a in addresses]

    def resolver(host: str, port: int) -> list[IPAddress]:
        return ips

    return UrlGuard(resolver=resolver)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://x", "//no-scheme", "http://"]
)
def test_only_http_urls(url: str) -> None:
    with pytest.raises(URLNotAllowed):
        fixed("8.8.8.8").check_url(url)


def test_public_host_allowed_and_any_private_address_refuses() -> None:
    assert fixed("8.8.8.8").check_url("https://media.example/v.mp4")
    with pytest.raises(URLNotAllowed, match=r"10\.0\.0\.7"):
        fixed("8.8.8.8", "10.0.0.7").check_url("https://media.example/v.mp4")


def test_numeric_host_forms_are_resolved_and_refused() -> None:
    # 2130706433 and 0x7f.1 are 127.0.0.1 to getaddrinfo.
    guard = UrlGuard()
    for url in ("http://2130706433/", "http://127.1/", "http://[::ffff:127.0.0.1]/"):
        with pytest.raises(URLNotAllowed):
            guard.check_url(url)


def test_allow_list_by_host_and_cidr() -> None:
    allow = AllowList.parse(["backend.internal", "10.0.0.0/8", " ", "[::1]"])
    assert allow.allows_host("Backend.Internal.")
    assert allow.allows_ip(ipaddress.ip_address("10.9.9.9"))
    assert allow.allows_ip(ipaddress.ip_address("::ffff:10.9.9.9"))
    assert allow.allows_ip(ipaddress.ip_address("::1"))
    assert not allow.allows_ip(ipaddress.ip_address("192.168.0.1"))
    guard = UrlGuard(allow=allow, resolver=fixed("192.168.0.5").resolver)
    guard.check_url("http://backend.internal:8000/")  # listed by name
    with pytest.raises(URLNotAllowed):
        guard.check_url("http://other.internal/")


def test_literal_check_without_resolving() -> None:
    guard = UrlGuard()
    with pytest.raises(URLNotAllowed):
        guard.check_url("http://169.254.169.254/latest/meta-data", resolve=False)
    assert guard.check_url("http://name.invalid/", resolve=False) == []


def test_connect_time_check_stops_dns_rebinding() -> None:
    """The name looked public when checked, then resolves to loopback at connect: refused."""
    server = MediaServer()
    server.add("x", b"secret")
    answers = [[ipaddress.ip_address("8.8.8.8")], [ipaddress.ip_address("127.0.0.1")]]

    def rebinding(host: str, port: int) -> list[IPAddress]:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    guard = UrlGuard(resolver=rebinding)
    url = f"http://rebind.test:{server.port}/files/x"
    guard.check_url(url)
    try:
        with (
            guarded_client(guard, timeout=httpx.Timeout(5)) as client,
            pytest.raises(httpx.ConnectError) as info,
        ):
            client.get(url)
        assert is_forbidden_connect(info.value)
        assert server.hits == []
    finally:
        server.close()


def test_allowed_loopback_connects() -> None:
    server = MediaServer()
    try:
        url = server.add("x", b"hello")
        guard = UrlGuard.from_entries(["127.0.0.1"], resolver=system_resolver)
        with guarded_client(guard, timeout=httpx.Timeout(5)) as client:
            assert client.get(url).content == b"hello"
    finally:
        server.close()


# RFC 6761: these names are loopback whatever the resolver says (here `app.localhost` does not
# resolve at all), so they are refused by name, before any lookup.
LOOPBACK_NAMES = [
    "localhost",
    "LOCALHOST",
    "localhost.",
    "app.localhost",
    "App.LocalHost.",
    "a.b.localhost",
    "ｌｏｃａｌｈｏｓｔ",  # fullwidth: IDNA maps it to localhost
    "app。localhost",  # ideographic full stop: a label separator to IDNA
]
NOT_LOOPBACK_NAMES = ["localhost.example.com", "notlocalhost", "localhostx", "mylocalhost.net"]


def _no_dns(host: str, port: int) -> list[IPAddress]:
    raise AssertionError(f"resolved {host!r}: a loopback name must be refused before DNS")


@pytest.mark.parametrize("name", LOOPBACK_NAMES)
def test_loopback_names_refused_before_dns(name: str) -> None:
    assert is_loopback_name(name)
    guard = UrlGuard(resolver=_no_dns)
    for url in (f"http://{name}/v.mp4", f"https://{name}:8443/x", f"http://user@{name}:9/"):
        with pytest.raises(URLNotAllowed, match="loopback name"):
            guard.check_url(url)
        with pytest.raises(URLNotAllowed, match="loopback name"):
            guard.check_url(url, resolve=False)


@pytest.mark.parametrize("name", NOT_LOOPBACK_NAMES)
def test_names_that_only_look_like_localhost_are_judged_by_address(name: str) -> None:
    assert not is_loopback_name(name)
    assert fixed("8.8.8.8").check_url(f"http://{name}/v.mp4")


def test_a_loopback_name_needs_listing_by_name() -> None:
    # Listing the loopback address does not allow the name; listing the name allows exactly it
    # (with or without the trailing dot), not its subdomains.
    by_address = UrlGuard.from_entries(["127.0.0.1", "127.0.0.0/8", "::1"], resolver=_no_dns)
    with pytest.raises(URLNotAllowed):
        by_address.check_url("http://localhost:8000/")
    by_name = UrlGuard.from_entries(["localhost"], resolver=fixed("127.0.0.1").resolver)
    by_name.check_url("http://localhost:8000/")
    by_name.check_url("http://LOCALHOST.:8000/")
    with pytest.raises(URLNotAllowed):
        by_name.check_url("http://app.localhost:8000/")
    sub = UrlGuard.from_entries(["app.localhost"], resolver=fixed("127.0.0.1").resolver)
    sub.check_url("http://app.localhost/")
    with pytest.raises(URLNotAllowed):
        sub.check_url("http://other.localhost/")


def test_connect_time_check_refuses_a_loopback_name() -> None:
    """The transport re-checks the name too: a client used without check_url cannot reach it."""
    server = MediaServer()
    try:
        server.add("x", b"secret")
        guard = UrlGuard.from_entries(["127.0.0.1"], resolver=system_resolver)
        with (
            guarded_client(guard, timeout=httpx.Timeout(5)) as client,
            pytest.raises(httpx.ConnectError) as info,
        ):
            client.get(f"http://localhost:{server.port}/files/x")
        assert is_forbidden_connect(info.value)
        assert server.hits == []
    finally:
        server.close()


def test_listed_localhost_connects() -> None:
    server = MediaServer()
    try:
        server.add("x", b"hello")
        guard = UrlGuard.from_entries(["localhost"], resolver=system_resolver)
        url = f"http://localhost:{server.port}/files/x"
        guard.check_url(url)
        with guarded_client(guard, timeout=httpx.Timeout(5)) as client:
            assert client.get(url).content == b"hello"
    finally:
        server.close()


@pytest.mark.parametrize(
    ("env", "urls"),
    [
        ({}, ["http://127.0.0.1:8000/api/v1/callback"]),
        (
            {
                "FASTAPI_BASE_URL": "http://localhost:8000",
                "S3_ENDPOINT_URL": "http://localhost:8333",
            },
            ["http://localhost:8000/files/k?sig=x", "http://localhost:8333/bucket/k"],
        ),
    ],
)
def test_ecg_up_allow_list_admits_its_own_urls(
    tmp_path: Path, env: dict[str, str], urls: list[str]
) -> None:
    # `ecg up` lists what it wires (the callback, local-storage and S3 hosts), so the embedded
    # default keeps working when those are spelled `localhost`; other loopback names stay refused.
    _backend, ml = child_envs(
        {"WEBHOOK_SECRET_KEY": "s", **env},
        host="127.0.0.1",
        backend_port=8000,
        ml_port=8080,
        data_dir=tmp_path,
    )
    guard = UrlGuard.from_entries(
        MLSettings(ml_allowed_private_hosts=ml["ML_ALLOWED_PRIVATE_HOSTS"]).allowed_private_hosts,
        resolver=fixed("127.0.0.1").resolver,
    )
    for url in urls:
        guard.check_url(url)
    with pytest.raises(URLNotAllowed):
        guard.check_url("http://app.localhost:8000/")
