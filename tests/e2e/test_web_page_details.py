"""The web page in headless Chromium against a live backend (the ML server is the fake, driven
by the test): stage chips follow the server's stage list, the translate option and the model
menu (the server's models) reach the job, a low-confidence language guess is shown as one, a
reloaded permalink shows no upload bar, and
captions stay inside the player on a 390 px wide phone.

Never runs `playwright install`: the browser is the apt package (`make sysdeps`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecg_protocol import Stage, sign_headers
from tests.support.backend import SECRET
from tests.support.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.support.live_backend import LiveBackend, live_backend
from tests.support.media import silence
from tests.support.results import caption_result

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[LiveBackend]:
    with live_backend(tmp_path / "backend") as live:
        yield live


def _callback(backend: LiveBackend, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = {**sign_headers(body, SECRET), "Content-Type": "application/json"}
    r = httpx.post(f"{backend.url}/api/upload-video/result", content=body, headers=headers)
    assert r.status_code == 200, r.text


def _accepted_job(backend: LiveBackend, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while not backend.fake_ml.accepted:
        assert time.monotonic() < deadline, "the backend never dispatched the job"
        time.sleep(0.05)
    return next(iter(backend.fake_ml.accepted))


def _result(probability: float) -> dict[str, Any]:
    result = caption_result().to_stored()
    result["metadata"].update(language="en", language_probability=probability)
    return result


def test_stages_translate_low_confidence_and_reload(backend: LiveBackend) -> None:
    from playwright.sync_api import Route, expect, sync_playwright

    served = httpx.get(f"{backend.url}/api/upload-video/stages").json()["stages"]
    assert served == [s.value for s in Stage if s is not Stage.DONE] and "align" in served
    # The chips are the server's list: a list with a stage the page cannot know proves it.
    listed = [*served[:-1], "polish", served[-1]]

    def stages(route: Route) -> None:
        route.fulfill(json={"stages": listed})

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.route("**/api/upload-video/stages", stages)
            page.goto(backend.url + "/")
            page.set_input_files("#file-input", str(silence(1.0)))
            page.select_option("#task", "translate")
            page.click("#analyze-btn")
            job_id = _accepted_job(backend)
            assert backend.fake_ml.jobs[job_id].request.options.task == "translate"

            _callback(backend, {"job_id": job_id, "status": "processing", "progress": 45,
                                "stage": "align", "message": "aligning"})  # fmt: skip
            chips = page.locator("#stages li")
            expect(page.locator("#stages li.active")).to_have_text("align", timeout=60_000)
            assert chips.all_text_contents() == listed

            backend.fake_ml.finish(job_id, _result(0.31))
            expect(page.locator("body")).to_have_attribute("data-state", "done", timeout=120_000)
            language = page.locator("#summary .stat", has_text="Language")
            expect(language).to_contain_text("low confidence, 31%")

            # The permalink, reloaded: the result again, and no upload bar stuck at 0 %.
            assert f"job={job_id}" in page.url
            page.reload()
            expect(page.locator("body")).to_have_attribute("data-state", "done", timeout=120_000)
            expect(page.locator("#upload-row")).to_be_hidden()
            expect(page.locator("#analysis-pct")).to_have_text("100%")
            expect(page.locator("#stages li.done")).to_have_count(len(listed))
        finally:
            browser.close()


def test_captions_fit_the_player_on_a_phone(backend: LiveBackend) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
            page.goto(backend.url + "/")
            page.set_input_files("#file-input", str(silence(1.0)))
            page.click("#analyze-btn")
            job_id = _accepted_job(backend)
            backend.fake_ml.finish(job_id, _result(0.97))
            expect(page.locator("body")).to_have_attribute("data-state", "done", timeout=120_000)
            expect(page.locator("#summary .stat", has_text="Language")).to_contain_text("en (97%)")
            # The longest turn, mid-way: every word of its cue inside the player.
            page.evaluate(
                """() => {
                    const segs = state.result.segments;
                    const long = segs.reduce((a, b) => (b.words.length > a.words.length ? b : a));
                    seek((long.start + long.end) / 2);
                }"""
            )
            cue = page.locator("#captions .cue")
            expect(cue).to_have_count(1)
            player = page.locator(".player").bounding_box()
            assert player is not None and player["width"] <= 390
            words = page.locator("#captions .cue .word")
            assert words.count() > 20
            boxes = [words.nth(i).bounding_box() for i in range(words.count())]
            box = cue.bounding_box()
            assert box is not None
            for b in [box, *boxes]:
                assert b is not None
                assert b["x"] >= player["x"] - 0.5
                assert b["x"] + b["width"] <= player["x"] + player["width"] + 0.5
                assert b["y"] >= player["y"] - 0.5
                assert b["y"] + b["height"] <= player["y"] + player["height"] + 0.5
        finally:
            browser.close()


def test_model_menu_from_the_server_reaches_the_job(backend: LiveBackend) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.goto(backend.url + "/")
            options = page.locator("#model option")
            deadline = time.monotonic() + 60
            while options.count() < 4:  # the server's list (GET /v1/models) fills the menu
                assert time.monotonic() < deadline, "the model menu was never filled"
                time.sleep(0.1)
            values = [options.nth(i).get_attribute("value") for i in range(options.count())]
            assert values == ["", "bundled:base", "tiny.en", "small"]
            page.set_input_files("#file-input", str(silence(1.0)))
            page.select_option("#model", "small")
            page.click("#analyze-btn")
            job_id = _accepted_job(backend)
            assert backend.fake_ml.jobs[job_id].request.options.model == "small"
        finally:
            browser.close()
