"""`ecg analyze` pieces that need no server: content types, error-body parsing, options."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ecg_cli.analyze import (
    AnalyzeError,
    AnalyzeOptions,
    _detail,
    analyze,
    content_type_for,
    options_from_args,
)
from ecg_cli.main import build_parser


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.mp4", "video/mp4"),
        ("a.MKV", "video/x-matroska"),
        ("a.webm", "video/webm"),
        ("a.wav", "audio/wav"),
        ("a.mov", "video/quicktime"),
        ("notes.unknownext", "application/octet-stream"),
    ],
)
def test_content_type_for(name: str, expected: str) -> None:
    assert content_type_for(Path(name)) == expected


def _resp(status: int, **kw: object) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "http://x"), **kw)  # type: ignore[arg-type]


def test_error_detail_from_every_shape() -> None:
    assert _detail(_resp(415, json={"error": "X", "detail": "content type refused"})) == (
        "content type refused"
    )
    body = {"detail": [{"loc": ["body", "fileKey"], "msg": "Field required"}]}
    assert _detail(_resp(422, json=body)) == "fileKey: Field required"
    assert _detail(_resp(400, json={"detail": {"message": "wrong endpoint"}})) == "wrong endpoint"
    xml = "<Error><Code>SignatureDoesNotMatch</Code><Message>bad sig</Message></Error>"
    assert _detail(_resp(403, text=xml)) == "bad sig"
    assert _detail(_resp(502, text="")) == "Bad Gateway"


def test_options_from_args_reads_token_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECG_TOKEN", "tok")
    args = build_parser().parse_args(
        ["analyze", "v.mp4", "--srt", "o.srt", "--vtt", "o.vtt", "--min-speakers", "2"]
    )
    [opts] = options_from_args(args)
    assert opts.token == "tok"
    assert opts.outputs == {"srt": Path("o.srt"), "vtt": Path("o.vtt")}
    assert opts.min_speakers == 2 and opts.max_speakers is None


def test_every_format_into_the_output_dir_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECG_BACKEND", "http://gpu-box:8000")
    args = build_parser().parse_args(["analyze", "a/talk.mp4", "b/talk.mp4", "c.wav", "-o", "out"])
    first, second, third = options_from_args(args)
    assert first.backend == "http://gpu-box:8000"
    assert set(first.outputs) == {"srt", "vtt", "txt", "tsv", "json", "ass"}
    assert first.outputs["ass"] == Path("out/talk.ass")
    assert second.outputs["srt"] == Path("out/talk-2.srt")  # two inputs named alike
    assert third.outputs["json"] == Path("out/c.json")
    one = build_parser().parse_args(
        ["analyze", "t.mp4", "-f", "srt", "--highlight-words", "--max-line-width", "30"]
    )
    [opts] = options_from_args(one)
    assert opts.outputs == {"srt": Path("t.srt")}
    assert opts.layout.params() == {"max_line_length": 30, "highlight_words": "true"}


def test_version_and_user_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("ecg ")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert "who said each word" in text and "ecg analyze talk.mp4" in text
    assert "lazily" not in text  # the module docstring is for developers


def test_missing_file_fails_before_any_request(tmp_path: Path) -> None:
    with pytest.raises(AnalyzeError, match="no such file"):
        analyze(AnalyzeOptions(video=tmp_path / "nope.mp4"))


def test_an_answer_in_another_shape_is_one_readable_line(tmp_path: Path) -> None:
    """The backend's answers are read with its own models (ecg_protocol.public): a body that
    lacks a field names the field, instead of a KeyError or an upload to nowhere."""
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0" * 16)
    asked: list[str] = []

    def backend(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path.endswith("/capacity"):
            return httpx.Response(200, json={"limited": False})
        if request.url.path.endswith("/generate-url"):
            return httpx.Response(200, json={"url": "http://x/put", "expires_in": 60})
        return httpx.Response(404, json={"detail": "no such route"})

    http = httpx.Client(transport=httpx.MockTransport(backend))
    with http, pytest.raises(AnalyzeError) as err:
        analyze(AnalyzeOptions(video=video, backend="http://backend"), http=http)
    assert "upload URL request" in str(err.value) and "presigned_url" in str(err.value)
    assert asked[-1] == "/api/upload-video/generate-url"  # nothing was uploaded
