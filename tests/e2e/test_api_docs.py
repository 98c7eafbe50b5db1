"""The API reference works offline: `/docs` (Swagger UI) and `/redoc` reference only this
server's own assets, those are served, and headless Chromium with every other host cut off
renders both pages from them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.support.live_backend import LiveBackend, live_backend

_URLS = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\s*:\s*["']([^"']+)["']""")
_SPEC_URL = re.compile(r"""spec-url\s*=\s*["']([^"']+)["']""")


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBackend]:
    with live_backend(tmp_path_factory.mktemp("docs")) as live:
        yield live


def _referenced(html: str) -> list[str]:
    found = [a or b for a, b in _URLS.findall(html)] + _SPEC_URL.findall(html)
    assert found, html
    return found


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", {"swagger-ui-bundle.js": "javascript", "swagger-ui.css": "text/css"}),
        ("/redoc", {"redoc.standalone.js": "javascript"}),
    ],
)
def test_pages_reference_only_local_assets_which_are_served(
    backend: LiveBackend, page: str, assets: dict[str, str]
) -> None:
    with httpx.Client(base_url=backend.url) as client:
        html = client.get(page).text
        urls = _referenced(html)
        remote = [u for u in urls if urlsplit(u).netloc]
        assert remote == [], remote  # no CDN, no Google Fonts
        for name, kind in assets.items():
            url = next(u for u in urls if u.endswith("/" + name))
            r = client.get(url)
            assert r.status_code == 200 and kind in r.headers["content-type"], (url, r.headers)
            assert len(r.content) > 10_000, url
        for url in urls:
            assert client.get(url).status_code == 200, url


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
def test_docs_render_in_chromium_with_no_other_host(backend: LiveBackend) -> None:
    from playwright.sync_api import Route, expect, sync_playwright

    blocked: list[str] = []

    def local_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", local_only)
            page.goto(backend.url + "/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text(
                "ECG Backend", timeout=20_000
            )
            expect(
                page.locator("#operations-openai-compatible-list_models_v1_models_get")
            ).to_be_visible()
            assert page.locator(".opblock").count() > 15
            assert blocked == []
            page.goto(backend.url + "/redoc")
            expect(page.locator("h1").first).to_contain_text("ECG Backend", timeout=20_000)
        finally:
            browser.close()
    # ReDoc's sidebar credit tries its logo and hides itself when that fails: nothing else.
    assert set(blocked) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}, blocked
