"""`ecg analyze --language`: offered from the ML server's list (through the backend's health),
refused before the upload when the server cannot transcribe it. The backend is faked at the
HTTP boundary (httpx.MockTransport): only what the CLI sends and how it reacts is under test."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ecg_cli.analyze import AnalyzeError, AnalyzeOptions, analyze


def _backend(languages: list[str] | None, seen: list[str]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/api/upload-video/ml-server/health":
            body: dict[str, object] = {"status": "healthy"}
            if languages is not None:
                body["languages"] = languages
            return httpx.Response(200, json=body)
        if request.url.path == "/api/upload-video/capacity":
            return httpx.Response(404)  # a backend without the check: the CLI goes on
        return httpx.Response(503, json={"detail": "not part of this test"})

    return httpx.Client(transport=httpx.MockTransport(handle), base_url="http://backend.test")


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "v.mp4"
    path.write_bytes(b"\x00" * 100)
    return path


def test_language_the_server_cannot_transcribe_is_refused_before_upload(video: Path) -> None:
    seen: list[str] = []
    opts = AnalyzeOptions(video=video, backend="http://backend.test", language="ko", quiet=True)
    with pytest.raises(AnalyzeError) as err:
        analyze(opts, http=_backend(["en"], seen))
    assert "cannot transcribe ko" in str(err.value) and "en" in str(err.value)
    assert seen == ["/api/upload-video/ml-server/health"]  # nothing uploaded


def test_unknown_code_is_refused_without_asking(video: Path) -> None:
    seen: list[str] = []
    opts = AnalyzeOptions(video=video, backend="http://backend.test", language="xx", quiet=True)
    with pytest.raises(AnalyzeError) as err:
        analyze(opts, http=_backend(["en"], seen))
    assert "unknown language code 'xx'" in str(err.value) and seen == []


@pytest.mark.parametrize(("offered", "language"), [(["ko", "en"], "ko,en"), (None, "ja")])
def test_offered_or_unknown_list_goes_on_to_the_upload(
    video: Path, offered: list[str] | None, language: str
) -> None:
    seen: list[str] = []
    opts = AnalyzeOptions(video=video, backend="http://backend.test", language=language, quiet=True)
    with pytest.raises(AnalyzeError):  # the fake refuses the upload URL: past the check
        analyze(opts, http=_backend(offered, seen))
    assert seen[-1] == "/api/upload-video/generate-url"
