"""`ecg analyze FILE [FILE …]`: the guide's client flow (docs/guide.md) in a terminal, like
whisperX's CLI.

Per file: checks that need no server (the file exists and is video or audio, min speakers not
over max) → a capacity check (so a rate limit is waited out before uploading, not after) →
generate-url → PUT the file to the presigned URL (streamed, with a progress bar) →
request-process (a 429 waits its `Retry-After`) → poll the status (stage and progress bar) →
fetch every asked format through the backend's export endpoint into `-o DIR` (all of them by
default). Any failure ends in ONE line on stderr per file and a non-zero exit: the backend is
down, the file is refused, the job failed (with its error code), or the wait timed out.
"""

from __future__ import annotations

import argparse
import logging
import mimetypes
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin

import httpx
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from ecg_protocol import JobStatus
from ecg_protocol.languages import LanguageError, parse_languages
from ecg_protocol.public import (
    CapacityResponse,
    GenerateUrlResponse,
    JobStatusAnswer,
    ProcessStarted,
)

CHUNK = 1024 * 1024
POLL_FIRST_S = 0.1
POLL_MAX_S = 0.5  # a capped backoff keeps the wait after completion under half a second
OUTAGE_GRACE_S = 60.0  # how long polling rides out a backend that does not answer
EXIT_FAILED = 1
EXIT_USAGE = 2
MAX_RATE_LIMIT_WAITS = 3  # 429s answered by waiting, per file
FORMATS = ("srt", "vtt", "txt", "tsv", "json", "ass")  # what the export endpoint writes
DEFAULT_BACKEND = "http://127.0.0.1:8000"

# Types the backend accepts (docs/protocol.md) for extensions mimetypes does not know everywhere.
_EXTRA_TYPES = {
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".m4a": "audio/x-m4a",
    ".flac": "audio/flac",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".mov": "video/quicktime",
}


class AnalyzeError(Exception):
    """A failure the user should read as one line."""


@dataclass(frozen=True)
class CaptionLayout:
    """The export endpoint's layout parameters (None: the server's default)."""

    max_line_width: int | None = None
    max_line_count: int | None = None
    highlight_words: bool = False
    speaker_labels: bool = True

    def params(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {}
        if self.max_line_width is not None:
            out["max_line_length"] = self.max_line_width
        if self.max_line_count is not None:
            out["max_line_count"] = self.max_line_count
        if self.highlight_words:
            out["highlight_words"] = "true"
        if not self.speaker_labels:
            out["speaker_labels"] = "false"
        return out


@dataclass(frozen=True)
class AnalyzeOptions:
    video: Path
    backend: str = DEFAULT_BACKEND
    language: str = "auto"
    min_speakers: int | None = None
    max_speakers: int | None = None
    prompt: str | None = None
    token: str | None = None
    timeout_s: float = 3600.0
    outputs: dict[str, Path] = field(default_factory=dict)  # format → path
    layout: CaptionLayout = field(default_factory=CaptionLayout)
    quiet: bool = False
    task: str = "transcribe"  # or translate: English text out
    model: str | None = None  # one of the server's models (GET /v1/models); None: its default
    label: str | None = None  # the file's name on the progress bars (several files)


@dataclass(frozen=True)
class AnalyzeOutcome:
    job_id: str
    status: JobStatusAnswer
    written: dict[str, Path]
    elapsed_s: float


def content_type_for(path: Path) -> str:
    """The Content-Type to announce for `path` (video/audio types only)."""
    ext = path.suffix.lower()
    if ext in _EXTRA_TYPES:
        return _EXTRA_TYPES[ext]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def preflight(opts: AnalyzeOptions) -> str:
    """What can be refused before any request: a missing file, a file that is not video or
    audio, min over max speakers. The Content-Type to announce."""
    low, high = opts.min_speakers, opts.max_speakers
    if low is not None and high is not None and low > high:
        raise AnalyzeError(f"--min-speakers ({low}) is over --max-speakers ({high})")
    if not opts.video.is_file():
        raise AnalyzeError(f"no such file: {opts.video}")
    content_type = content_type_for(opts.video)
    if not content_type.startswith(("video/", "audio/")):
        raise AnalyzeError(
            f"{opts.video.name} is not a video or audio file (type {content_type}); "
            f"nothing was uploaded"
        )
    return content_type


def _detail(resp: httpx.Response) -> str:
    """The human part of an error answer: FastAPI `detail`, an S3 XML `<Message>`, or the text."""
    try:
        body = resp.json()
    except ValueError:
        text = resp.text.strip()
        if "<Message>" in text:
            return text.split("<Message>", 1)[1].split("</Message>", 1)[0]
        return text[:200] or resp.reason_phrase
    if isinstance(body, dict):
        detail = body.get("detail", body.get("message", body))
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            first = detail[0]
            loc = ".".join(str(x) for x in first.get("loc", [])[1:])
            return f"{loc}: {first.get('msg', '')}" if loc else str(first.get("msg", detail))
        if isinstance(detail, dict):
            return str(detail.get("message") or detail.get("error") or detail)
        return str(detail)
    return str(body)


def _check(resp: httpx.Response, what: str) -> httpx.Response:
    if resp.is_success:
        return resp
    raise AnalyzeError(f"{what} refused ({resp.status_code}): {_detail(resp)}")


Answer = TypeVar("Answer", bound=BaseModel)


def _answer(model: type[Answer], resp: httpx.Response, what: str) -> Answer:
    """A successful answer's body as the backend's own model (`ecg_protocol.public`); a body of
    another shape is one readable line, not a KeyError."""
    try:
        return model.model_validate_json(_check(resp, what).content)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "body"
        raise AnalyzeError(
            f"{what}: the backend answered in a shape this client does not read "
            f"({where}: {first['msg']})"
        ) from exc


def _stream(path: Path, on_chunk: Callable[[int], None]) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            on_chunk(len(chunk))
            yield chunk


class _Client:
    """The backend's API as this CLI uses it."""

    def __init__(self, opts: AnalyzeOptions, http: httpx.Client) -> None:
        self.opts = opts
        self.http = http
        self.base = opts.backend.rstrip("/") + "/"
        self.auth = {"Authorization": f"Bearer {opts.token}"} if opts.token else {}

    def url(self, path: str) -> str:
        return urljoin(self.base, path.lstrip("/"))

    def generate_url(self, filename: str, content_type: str) -> GenerateUrlResponse:
        resp = self.http.post(
            self.url("/api/upload-video/generate-url"),
            json={"filename": filename, "content_type": content_type},
            headers=self.auth,
        )
        return _answer(GenerateUrlResponse, resp, "upload URL request")

    def upload(
        self, presigned: str, path: str | Path, content_type: str, progress: Progress
    ) -> None:
        video = Path(path)
        size = video.stat().st_size
        task = progress.add_task(_bar_name("upload", self.opts.label), total=size)
        # A backend-signed local URL may come back relative to the backend.
        target = presigned if "://" in presigned else self.url(presigned)
        resp = self.http.put(
            target,
            content=_stream(video, lambda n: progress.advance(task, n)),
            # An explicit length: S3 refuses chunked uploads to a presigned PUT.
            headers={"Content-Type": content_type, "Content-Length": str(size)},
            timeout=httpx.Timeout(60.0, write=None),
        )
        _check(resp, "upload")
        progress.update(task, completed=size)

    def offered_languages(self) -> list[str] | None:
        """The codes the ML server's model transcribes (its health, through the backend)."""
        try:
            resp = self.http.get(self.url("/api/upload-video/ml-server/health"), headers=self.auth)
            body = resp.json()
        except (httpx.HTTPError, ValueError):
            return None  # unknown: the backend and the ML server still refuse what they must
        codes = body.get("languages") if isinstance(body, dict) else None
        return [c for c in codes if isinstance(c, str)] if isinstance(codes, list) else None

    def check_language(self) -> None:
        """Refuse, before the upload, a language the server cannot transcribe."""
        try:
            asked = parse_languages(self.opts.language)
        except LanguageError as exc:
            raise AnalyzeError(f"--language: {exc}") from exc
        offered = self.offered_languages()
        if asked is None or offered is None:
            return
        missing = [c for c in asked if c not in offered]
        if missing:
            raise AnalyzeError(
                f"--language: the ML server cannot transcribe {', '.join(missing)}; "
                f"it offers auto or any of: {', '.join(sorted(offered))}"
            )

    def check_model(self) -> None:
        """Refuse, before the upload, a --model the server does not hold."""
        if self.opts.model is None:
            return
        try:
            resp = self.http.get(self.url("/v1/models"), headers=self.auth)
            listed = resp.json().get("data") if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            listed = None
        if not isinstance(listed, list):
            return  # unknown (an older backend): request-process still refuses it
        held = [m.get("id") for m in listed if isinstance(m, dict)]
        if self.opts.model not in held:
            raise AnalyzeError(
                f"--model: the server holds no model {self.opts.model!r}; "
                f"it offers: {', '.join(str(h) for h in held)}"
            )

    def wait_for_capacity(self, deadline: float) -> None:
        """Wait out the request-process rate limit before uploading anything."""
        resp = self.http.get(self.url("/api/upload-video/capacity"), headers=self.auth)
        if resp.status_code == 404:
            return  # an older backend without the check: request-process still answers 429
        capacity = _answer(CapacityResponse, resp, "capacity check")
        if capacity.must_wait:
            self._sleep_for_limit(float(capacity.retry_after_s), deadline)

    def _sleep_for_limit(self, wait: float, deadline: float) -> None:
        if time.monotonic() + wait > deadline:
            raise AnalyzeError(
                f"rate limited by the backend for {wait:.0f}s, past the --timeout; try later"
            )
        # Said even with --quiet (which only drops the bars): a silent pause looks like a hang.
        print(f"ecg analyze: rate limited; waiting {wait:.0f}s", file=sys.stderr)
        time.sleep(wait)

    def request_process(self, file_key: str, deadline: float) -> str:
        body: dict[str, Any] = {"fileKey": file_key, "language": self.opts.language}
        if self.opts.task != "transcribe":
            body["task"] = self.opts.task
        for name in ("min_speakers", "max_speakers", "prompt", "model"):
            value = getattr(self.opts, name)
            if value is not None:
                body[name] = value
        for _ in range(MAX_RATE_LIMIT_WAITS):
            resp = self.http.post(
                self.url("/api/upload-video/request-process"), json=body, headers=self.auth
            )
            if resp.status_code != 429:
                break
            # The upload is already stored: wait and ask again instead of failing the file.
            self._sleep_for_limit(float(resp.headers.get("Retry-After") or 1), deadline)
        return _answer(ProcessStarted, resp, "processing request").job_id

    def status(self, job_id: str) -> JobStatusAnswer | None:
        """The job's status; None for a transient failure (backend restarting, 5xx)."""
        try:
            resp = self.http.get(self.url(f"/api/upload-video/status/{job_id}"), headers=self.auth)
        except httpx.TransportError:
            return None
        if resp.status_code >= 500:
            return None
        return _answer(JobStatusAnswer, resp, "status query")

    def export(self, job_id: str, fmt: str) -> bytes:
        resp = self.http.get(
            self.url(f"/api/upload-video/result/{job_id}"),
            params={"format": fmt, **self.opts.layout.params()},
            headers=self.auth,
        )
        return _check(resp, f"{fmt} export").content


def _bar_name(step: str, label: str | None) -> str:
    """A bar's description: the step, after the file's name when several files run."""
    return f"{label} · {step}" if label else step


def _bars_off(quiet: bool, console: Console) -> bool:
    # Bars only on a terminal: piped into a file or CI log they would be noise around the result.
    return quiet or not console.is_terminal


def _progress(quiet: bool) -> Progress:
    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]{task.description:<12}"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=_bars_off(quiet, console),
    )


def _stage_progress(quiet: bool) -> Progress:
    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]{task.description:<12}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[stage]}"),
        TimeElapsedColumn(),
        console=console,
        disable=_bars_off(quiet, console),
    )


def _wait(client: _Client, job_id: str, deadline: float, quiet: bool) -> JobStatusAnswer:
    interval = POLL_FIRST_S
    with _stage_progress(quiet) as progress:
        task = progress.add_task(
            _bar_name("analysis", client.opts.label), total=100, stage="queued"
        )
        outage_since: float | None = None
        while True:
            polled = client.status(job_id)
            if polled is None:
                # The job lives in the database, so a backend restart loses nothing: keep
                # asking for a while instead of failing the user's long wait on one blip.
                now = time.monotonic()
                outage_since = outage_since or now
                if now - outage_since > OUTAGE_GRACE_S or now >= deadline:
                    raise AnalyzeError(
                        f"the backend at {client.opts.backend} stopped answering while job "
                        f"{job_id} was running; check it later with GET "
                        f"/api/upload-video/status/{job_id}"
                    )
                time.sleep(1.0)
                continue
            outage_since = None
            status = polled
            state = status.status
            progress.update(task, completed=status.progress, stage=status.stage or state.value)
            if state is JobStatus.COMPLETED:
                progress.update(task, completed=100, stage="done")
                return status
            if state is JobStatus.FAILED:
                code = status.error_code or "UNKNOWN_ERROR"
                message = status.error_message or "no message"
                raise AnalyzeError(f"analysis failed: {code}: {message} (job {job_id})")
            if time.monotonic() >= deadline:
                raise AnalyzeError(
                    f"timed out waiting for job {job_id} (last status {state.value}, "
                    f"stage {status.stage}, {status.progress}%)"
                )
            time.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))
            interval = min(interval * 1.5, POLL_MAX_S)


def analyze(opts: AnalyzeOptions, http: httpx.Client | None = None) -> AnalyzeOutcome:
    """Run the whole client flow; raise AnalyzeError with one readable line on failure."""
    started = time.monotonic()
    deadline = started + opts.timeout_s
    video = opts.video
    content_type = preflight(opts)
    owns_http = http is None
    http = http or httpx.Client(timeout=httpx.Timeout(60.0, connect=5.0))
    client = _Client(opts, http)
    try:
        client.check_language()
        client.check_model()
        client.wait_for_capacity(deadline)
        urls = client.generate_url(video.name, content_type)
        with _progress(opts.quiet) as progress:
            client.upload(urls.presigned_url, video, content_type, progress)
        job_id = client.request_process(urls.file_key, deadline)
        status = _wait(client, job_id, deadline, opts.quiet)
        written: dict[str, Path] = {}
        for fmt, path in opts.outputs.items():
            data = client.export(job_id, fmt)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".part")
            tmp.write_bytes(data)
            tmp.replace(path)  # a reader never sees half a file
            written[fmt] = path
        return AnalyzeOutcome(job_id, status, written, time.monotonic() - started)
    except httpx.ConnectError as exc:
        raise AnalyzeError(
            f"cannot reach the backend at {opts.backend} ({exc}); is `ecg up` running?"
        ) from exc
    except httpx.TimeoutException as exc:
        raise AnalyzeError(f"the backend at {opts.backend} did not answer in time") from exc
    except httpx.HTTPError as exc:
        raise AnalyzeError(f"HTTP error talking to {opts.backend}: {exc}") from exc
    except OSError as exc:
        raise AnalyzeError(f"{exc.strerror or exc}: {exc.filename or ''}".strip()) from exc
    finally:
        if owns_http:
            http.close()


def _outputs(args: argparse.Namespace, video: Path, stem: str) -> dict[str, Path]:
    """Format → path: `--json/--srt/--vtt PATH` alone write just those; otherwise every
    `--output-format` (default all) goes to `-o DIR` as `<stem>.<format>`."""
    explicit = {
        fmt: Path(p)
        for fmt, p in (("json", args.json_path), ("srt", args.srt_path), ("vtt", args.vtt_path))
        if p
    }
    if explicit and args.output_format is None:
        return explicit
    chosen = args.output_format or "all"
    formats = FORMATS if chosen == "all" else (chosen,)
    out_dir = Path(args.output_dir)
    return {**{fmt: out_dir / f"{stem}.{fmt}" for fmt in formats}, **explicit}


def _stems(videos: list[Path]) -> list[str]:
    """Output names per input: the file's stem, made unique when two inputs share one."""
    seen: dict[str, int] = {}
    out: list[str] = []
    for video in videos:
        n = seen.get(video.stem, 0)
        seen[video.stem] = n + 1
        out.append(video.stem if n == 0 else f"{video.stem}-{n + 1}")
    return out


def options_from_args(args: argparse.Namespace) -> list[AnalyzeOptions]:
    """One AnalyzeOptions per input file."""
    videos = [Path(v) for v in args.videos]
    layout = CaptionLayout(
        max_line_width=args.max_line_width,
        max_line_count=args.max_line_count,
        highlight_words=args.highlight_words,
        speaker_labels=not args.no_speaker_labels,
    )
    return [
        AnalyzeOptions(
            video=video,
            backend=args.backend,
            language=args.language,
            min_speakers=args.min_speakers,
            max_speakers=args.max_speakers,
            prompt=args.prompt,
            token=args.token or os.environ.get("ECG_TOKEN") or None,
            timeout_s=args.timeout,
            outputs=_outputs(args, video, stem),
            layout=layout,
            quiet=args.quiet,
            task=args.task,
            model=args.model,
            label=video.name if len(videos) > 1 else None,
        )
        for video, stem in zip(videos, _stems(videos), strict=True)
    ]


def _summary(outcome: AnalyzeOutcome) -> str:
    result = outcome.status.result
    segments = result.segments if result else []
    speakers = result.metadata.unique_speakers if result else 0
    lang = (result.metadata.language if result else None) or "?"
    files = ", ".join(str(p) for p in outcome.written.values()) or "nothing written"
    return (
        f"job {outcome.job_id} completed in {outcome.elapsed_s:.1f}s: {len(segments)} segments, "
        f"{speakers} speakers, language {lang}; {files}"
    )


def run_analyze(args: argparse.Namespace) -> int:
    """`ecg analyze` entry point: 0 when every file succeeded, else 1 (one line per failure)."""
    # The progress bars tell the story; per-request log lines would bury the one error line.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    failed = 0
    all_opts = options_from_args(args)
    ready: list[AnalyzeOptions] = []
    # Every file is checked before the first upload: a typo in the last name is said at once.
    for opts in all_opts:
        prefix = f"{opts.video}: " if len(all_opts) > 1 else ""
        try:
            preflight(opts)
        except AnalyzeError as exc:
            print(f"ecg analyze: error: {prefix}{exc}", file=sys.stderr)
            failed += 1
            continue
        ready.append(opts)
    for opts in ready:
        prefix = f"{opts.video}: " if len(all_opts) > 1 else ""
        try:
            outcome = analyze(opts)
        except AnalyzeError as exc:
            print(f"ecg analyze: error: {prefix}{exc}", file=sys.stderr)
            failed += 1
            continue
        except KeyboardInterrupt:
            print("ecg analyze: interrupted", file=sys.stderr)
            return 130
        print(prefix + _summary(outcome))
    return EXIT_FAILED if failed else 0
