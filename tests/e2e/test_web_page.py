"""The web page in headless Chromium (Playwright, the system's /usr/bin/chromium): upload a
video, wait for the analysis, see captions and speakers, save a screenshot.

Never runs `playwright install`: the browser is the apt package (`make sysdeps`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.support.media import dialogue
from tests.support.procs import REPO_ROOT
from tests.support.up import UpStack, ecg_up

OUTPUT_DIR = REPO_ROOT / "test-output" / "e2e"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="chromium is not installed (make sysdeps installs it)"
)


def wait_js(page: Page, expression: str, *, timeout_ms: float) -> None:
    """Poll `expression` in the page until it is truthy. (Not `wait_for_function`: it runs its
    predicate through eval, which the page's Content-Security-Policy rightly forbids.)"""
    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout_ms / 1000:.0f} s: {expression}")
        page.wait_for_timeout(100)  # the poll interval, under the deadline above


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    with ecg_up(tmp_path_factory.mktemp("e2e-web")) as up:
        yield up


def test_upload_analyze_and_play_with_captions(stack: UpStack, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    media = dialogue("webm")  # VP8 + Opus: every Chromium build plays it
    console_errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.on(
                "console", lambda m: console_errors.append(m.text) if m.type == "error" else None
            )
            page.goto(stack.backend_url + "/")
            expect(page.locator("#ml-health")).to_have_class("health ok", timeout=20_000)
            # The language menu offers what the ML server's model transcribes: auto + 100.
            expect(page.locator("#language option")).to_have_count(101)
            expect(page.locator("#language option[value=ko]")).to_have_text("Korean (ko)")

            page.set_input_files("#file-input", str(media.path))
            expect(page.locator("#drop-title")).to_have_text(media.path.name)
            page.click("#analyze-btn")
            wait_js(
                page, "['done', 'error'].includes(document.body.dataset.state)", timeout_ms=300_000
            )
            error = page.locator("#error")
            assert not error.is_visible(), error.text_content()
            expect(page.locator("#upload-pct")).to_have_text("100%")
            expect(page.locator("#analysis-pct")).to_have_text("100%")

            # Two speakers, each with its own colour, and the transcript beside the player.
            speakers = page.locator("#speakers li")
            expect(speakers).to_have_count(2)
            colours = {
                speakers.nth(i).evaluate("n => n.style.getPropertyValue('--speaker')")
                for i in range(2)
            }
            assert len(colours) == 2, colours
            items = page.locator("#segment-list li")
            assert items.count() >= 4
            transcript = " ".join(items.locator(".seg-text").all_text_contents()).lower()
            assert "good morning everyone" in transcript
            # Each turn's text is marked with the language it was read in.
            langs = {items.nth(i).locator(".seg-text").get_attribute("lang") for i in range(2)}
            assert langs == {"en"}, langs
            assert {items.nth(i).get_attribute("data-speaker") for i in range(items.count())} == {
                speakers.nth(0).get_attribute("data-speaker"),
                speakers.nth(1).get_attribute("data-speaker"),
            }

            # Click the second turn: the player seeks there and its caption shows.
            items.nth(1).click()
            cue = page.locator("#captions .cue")
            expect(cue).to_have_count(1)
            expect(cue).to_have_attribute(
                "data-speaker", items.nth(1).get_attribute("data-speaker") or ""
            )
            assert items.nth(1).get_attribute("class") == "current"

            # Mid-word: that word is highlighted, and word sizes follow the loudness.
            spoken = page.evaluate(
                """() => {
                    const w = state.result.segments[1].words[2];
                    seek((w.start + w.end) / 2);
                    return w.word.trim();
                }"""
            )
            active = page.locator("#captions .word.active")
            expect(active).to_have_count(1)
            expect(active).to_have_text(spoken)
            sizes = set(
                page.locator("#captions .word").evaluate_all("ws => ws.map(w => w.style.fontSize)")
            )
            assert all(s.endswith("em") for s in sizes) and len(sizes) > 1, sizes

            # The emotion badge when the result carries one; downloads point at the export.
            has_emotion = page.evaluate("() => !!state.result.segments[1].emotion")
            if has_emotion:
                expect(page.locator("#captions .emotion")).to_have_count(1)
            href = page.locator("#dl-srt").get_attribute("href") or ""
            assert href.endswith("?format=srt") and "/api/upload-video/result/" in href
            srt = page.request.get(stack.backend_url + href)
            assert srt.ok and srt.text().startswith("1\n")

            # The local file really plays in the page's player (object URL, no server round trip).
            wait_js(
                page,
                "() => { const v = document.getElementById('video');"
                " return v.readyState >= 2 && !v.seeking && !v.error; }",
                timeout_ms=30_000,
            )
            check_voice_views(page, stack)
            shot = tmp_path / "web-page.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, OUTPUT_DIR / "web-page.png")
            check_permalink_after_reload(page)
            page.screenshot(path=str(OUTPUT_DIR / "web-page-permalink.png"), full_page=True)
        finally:
            browser.close()
    assert not [e for e in console_errors if "favicon" not in e], console_errors


def test_errors_are_shown_on_the_page(stack: UpStack, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.support.media import not_media

    refused = tmp_path / "notes.txt"
    refused.write_text("not a video", encoding="utf-8")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(not_media().read_bytes())
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(stack.backend_url + "/")
            # A type the backend refuses: its reason, before any upload.
            page.set_input_files("#file-input", str(refused))
            page.click("#analyze-btn")
            expect(page.locator("body")).to_have_attribute("data-state", "error")
            expect(page.locator("#error")).to_contain_text("not accepted")
            # Uploaded but not media: the job fails and the page names the code.
            page.set_input_files("#file-input", str(broken))
            page.click("#analyze-btn")
            expect(page.locator("body")).to_have_attribute("data-state", "error", timeout=120_000)
            expect(page.locator("#error")).to_contain_text("UNSUPPORTED_MEDIA")
            page.screenshot(path=str(tmp_path / "web-error.png"))
        finally:
            browser.close()


def test_sign_in_with_a_token(tmp_path: Path) -> None:
    """With anonymous access off, the page works once given a token (downloads included)."""
    import jwt
    from playwright.sync_api import expect, sync_playwright

    secret = "web-test-jwt-secret-0123456789abcdef"
    env = {"JWT_SECRET": secret, "ALLOW_ANONYMOUS": "false"}
    token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 3600}, secret, algorithm="HS256")
    media = dialogue("webm")
    with ecg_up(tmp_path / "stack", env) as up, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(accept_downloads=True)
            page.goto(up.backend_url + "/")
            page.set_input_files("#file-input", str(media.path))
            page.click("#analyze-btn")
            expect(page.locator("body")).to_have_attribute("data-state", "error")
            expect(page.locator("#error")).to_contain_text("token")

            page.fill("#token", token)
            page.click("#analyze-btn")
            wait_js(
                page, "['done', 'error'].includes(document.body.dataset.state)", timeout_ms=300_000
            )
            assert not page.locator("#error").is_visible(), page.locator("#error").text_content()
            expect(page.locator("#speakers li")).to_have_count(2)
            with page.expect_download() as info:
                page.click("#dl-vtt")
            saved = tmp_path / "captions.vtt"
            info.value.save_as(saved)
            assert saved.read_text(encoding="utf-8").startswith("WEBVTT")
            # A permalink's player (the stored upload, not the local file) plays with sign-in
            # required: /media would be a 401 to a <video>, the signed URL is not.
            page.evaluate("() => showResult(state.result, null)")
            wait_js(
                page,
                "() => { const v = document.getElementById('video');"
                " return v.readyState >= 1 && !v.error; }",
                timeout_ms=30_000,
            )
        finally:
            browser.close()


def check_voice_views(page: Page, stack: UpStack) -> None:
    """The speaker timeline seeks, the loudness/pitch plot follows it, and a rename sticks."""
    from playwright.sync_api import expect

    segments = page.evaluate("() => state.result.segments.length")
    expect(page.locator("#timeline .lane")).to_have_count(2)
    expect(page.locator("#timeline .turn")).to_have_count(segments)
    turn = page.locator("#timeline .turn").nth(2)
    index = int(turn.get_attribute("data-index") or "0")
    turn.click()
    seg = page.evaluate(f"() => state.result.segments[{index}]")
    expect(page.locator("#captions .cue")).to_have_attribute(
        "data-speaker", seg["speaker"]["speaker_id"]
    )
    plot = page.evaluate("() => state.plot")
    assert plot["t0"] == seg["start"] and plot["t1"] == seg["end"]
    assert plot["words"] == len(seg["words"]) and plot["loud"] > 0
    expect(page.locator("#plot-seg")).to_have_class("chip active")
    page.click("#plot-all")
    total = page.evaluate("() => state.result.segments.reduce((n, s) => n + s.words.length, 0)")
    assert page.evaluate("() => state.plot.words") == total
    drawn = page.evaluate(
        """() => { const c = document.getElementById('prosody-plot');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let n = 0;
                   for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
                   return n; }"""
    )
    assert drawn > 2000, drawn

    # Rename the first speaker: every view shows the name, and the export uses it.
    first = page.locator("#speakers li").nth(0)
    speaker_id = first.get_attribute("data-speaker") or ""
    first.locator(".name").click()
    page.fill("#speakers input.rename", "Alice Example")
    page.keyboard.press("Enter")
    expect(page.locator("#speakers li").nth(0).locator(".name")).to_have_text("Alice Example")
    expect(page.locator(f"#timeline .lane[data-speaker='{speaker_id}'] .lane-label")).to_have_text(
        "Alice Example"
    )
    job_id = page.evaluate("() => state.jobId")
    srt = page.request.get(f"{stack.backend_url}/api/upload-video/result/{job_id}?format=srt")
    assert "[Alice Example]" in srt.text()


def check_permalink_after_reload(page: Page) -> None:
    """A reload keeps the result (?job=…), the names and the history, and plays the upload."""
    from playwright.sync_api import expect

    job_id = page.evaluate("() => state.jobId")
    assert page.url.endswith(f"?job={job_id}")
    page.reload()
    wait_js(page, "document.body.dataset.state === 'done'", timeout_ms=60_000)
    expect(page.locator("#speakers li").nth(0).locator(".name")).to_have_text("Alice Example")
    expect(page.locator("#history li")).to_have_count(1)
    assert page.locator("#history a").get_attribute("href") == f"?job={job_id}"
    # The stored upload plays from the short-lived signed URL of /media-url (a <video> cannot
    # send a token); the page asks for it once the result is shown.
    wait_js(page, "() => !!document.getElementById('video').getAttribute('src')", timeout_ms=10_000)
    src = page.evaluate("() => document.getElementById('video').getAttribute('src')")
    assert src and "/api/jobs/" not in src, src
    wait_js(
        page,
        "() => { const v = document.getElementById('video');"
        " return v.readyState >= 1 && !v.error; }",
        timeout_ms=30_000,
    )
