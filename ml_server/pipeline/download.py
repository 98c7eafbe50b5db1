"""Download stage: stream the media to a file with size, time and SSRF limits.

Every failure is a `StageError` with a specific code: `URL_NOT_ALLOWED` (policy, any hop),
`FILE_TOO_LARGE` (declared or counted), `DOWNLOAD_TIMEOUT` (total or stall), `DOWNLOAD_ERROR`
(HTTP status, network, too many redirects). A partial file is removed on failure.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from ecg_protocol import ErrorCode, Stage
from ecg_serving.net import (
    ResolutionError,
    UrlGuard,
    URLNotAllowed,
    guarded_client,
    is_forbidden_connect,
)
from ml_server.pipeline.errors import Cancelled, StageError

logger = logging.getLogger(__name__)

_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}$")


@dataclass(frozen=True, slots=True)
class DownloadOptions:
    max_bytes: int
    total_timeout_s: float
    stall_timeout_s: float
    max_redirects: int = 5
    connect_timeout_s: float = 10.0


def _fail(code: ErrorCode, message: str) -> StageError:
    return StageError(Stage.DOWNLOAD, code, message)


def _redact(url: str) -> str:
    # Presigned URLs carry credentials in the query; never log or report them.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"


def media_suffix(url: str) -> str:
    """A safe file suffix from the URL path (helps demuxers that sniff by extension)."""
    match = _SUFFIX.search(urlsplit(url).path)
    return match.group(0).lower() if match else ""


def download(
    url: str,
    dest: Path,
    *,
    opts: DownloadOptions,
    guard: UrlGuard,
    progress: Callable[[int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> int:
    """Stream `url` into `dest`; return the byte count. `progress` gets 0–100 (% of the file)."""
    deadline = time.monotonic() + opts.total_timeout_s
    # The read timeout is the stall timeout: no byte for that long ends the download.
    timeout = httpx.Timeout(
        connect=min(opts.connect_timeout_s, opts.total_timeout_s),
        read=opts.stall_timeout_s,
        write=opts.stall_timeout_s,
        pool=opts.stall_timeout_s,
    )
    try:
        with guarded_client(guard, timeout=timeout) as client:
            return _follow(client, url, dest, opts, guard, deadline, progress, should_cancel)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def _follow(
    client: httpx.Client,
    url: str,
    dest: Path,
    opts: DownloadOptions,
    guard: UrlGuard,
    deadline: float,
    progress: Callable[[int], None] | None,
    should_cancel: Callable[[], bool] | None,
) -> int:
    for _hop in range(opts.max_redirects + 1):
        _check(guard, url)
        try:
            with client.stream("GET", url) as response:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise _fail(ErrorCode.DOWNLOAD_ERROR, "redirect without a Location")
                    url = urljoin(str(response.url), location)
                    continue
                if response.status_code >= 400:
                    raise _fail(
                        ErrorCode.DOWNLOAD_ERROR,
                        f"the media URL answered HTTP {response.status_code}",
                    )
                return _save(response, dest, opts, deadline, progress, should_cancel)
        except StageError:
            raise
        except Cancelled:
            raise
        except httpx.TimeoutException as exc:
            raise _fail(
                ErrorCode.DOWNLOAD_TIMEOUT,
                f"no data from {_redact(url)} for {opts.stall_timeout_s:g}s ({type(exc).__name__})",
            ) from exc
        except httpx.HTTPError as exc:
            if is_forbidden_connect(exc):
                raise _fail(ErrorCode.URL_NOT_ALLOWED, str(exc)) from exc
            raise _fail(ErrorCode.DOWNLOAD_ERROR, f"cannot download {_redact(url)}: {exc}") from exc
    raise _fail(ErrorCode.DOWNLOAD_ERROR, f"more than {opts.max_redirects} redirects")


def _check(guard: UrlGuard, url: str) -> None:
    try:
        guard.check_url(url)
    except URLNotAllowed as exc:
        raise _fail(ErrorCode.URL_NOT_ALLOWED, exc.message) from exc
    except ResolutionError as exc:
        raise _fail(ErrorCode.DOWNLOAD_ERROR, str(exc)) from exc


def _save(
    response: httpx.Response,
    dest: Path,
    opts: DownloadOptions,
    deadline: float,
    progress: Callable[[int], None] | None,
    should_cancel: Callable[[], bool] | None,
) -> int:
    declared = _content_length(response)
    if declared is not None and declared > opts.max_bytes:
        raise _fail(
            ErrorCode.FILE_TOO_LARGE,
            f"the media is {declared} bytes; the limit is {opts.max_bytes}",
        )
    received = 0
    last_pct = -1
    with dest.open("wb") as fh:
        # Decoded bytes are counted, so a compressed body cannot expand past the limit unseen.
        # No chunk size: act on bytes as they arrive (limits, cancel, deadline), not per 256 KiB.
        for chunk in response.iter_bytes():
            received += len(chunk)
            if received > opts.max_bytes:
                raise _fail(
                    ErrorCode.FILE_TOO_LARGE,
                    f"the media is over the {opts.max_bytes}-byte limit",
                )
            if time.monotonic() > deadline:
                raise _fail(
                    ErrorCode.DOWNLOAD_TIMEOUT,
                    f"the download took longer than {opts.total_timeout_s:g}s",
                )
            if should_cancel is not None and should_cancel():
                raise Cancelled(Stage.DOWNLOAD)
            fh.write(chunk)
            if progress is not None and declared:
                pct = min(100, received * 100 // declared)
                if pct != last_pct:
                    last_pct = pct
                    progress(pct)
    if received == 0:
        raise _fail(ErrorCode.UNSUPPORTED_MEDIA, "the media URL returned an empty body")
    return received


def _content_length(response: httpx.Response) -> int | None:
    raw = response.headers.get("content-length")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 0 else None
