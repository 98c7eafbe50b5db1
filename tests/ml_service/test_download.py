"""Download stage against a real misbehaving HTTP server: each failure has its own code."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ecg_protocol import ErrorCode, Stage
from ecg_serving.net import UrlGuard
from ml_server.pipeline.download import DownloadOptions, download, media_suffix
from ml_server.pipeline.errors import Cancelled, StageError
from tests.support.local_servers import MediaServer

OPTS = DownloadOptions(max_bytes=100_000, total_timeout_s=20, stall_timeout_s=0.5)
LOCAL = UrlGuard.from_entries(["127.0.0.1"])


def fails(
    url: str, dest: Path, code: ErrorCode, *, guard: UrlGuard = LOCAL, opts: DownloadOptions = OPTS
) -> StageError:
    with pytest.raises(StageError) as info:
        download(url, dest, opts=opts, guard=guard)
    assert info.value.code is code, info.value.message
    assert info.value.stage is Stage.DOWNLOAD
    assert not dest.exists()
    return info.value


def test_streams_to_file_with_progress(media_server: MediaServer, tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    url = media_server.add("ok.bin", data)
    seen: list[int] = []
    dest = tmp_path / "m.bin"
    big = DownloadOptions(max_bytes=len(data), total_timeout_s=20, stall_timeout_s=2)
    assert download(url, dest, opts=big, guard=LOCAL, progress=seen.append) == len(data)
    assert dest.read_bytes() == data
    assert seen == sorted(seen) and seen[-1] == 100


def test_404_is_download_error(media_server: MediaServer, tmp_path: Path) -> None:
    err = fails(media_server.url("/missing"), tmp_path / "m", ErrorCode.DOWNLOAD_ERROR)
    assert "404" in err.message


def test_declared_size_over_limit(media_server: MediaServer, tmp_path: Path) -> None:
    fails(media_server.url("/huge"), tmp_path / "m", ErrorCode.FILE_TOO_LARGE)


def test_counted_size_over_limit(media_server: MediaServer, tmp_path: Path) -> None:
    fails(media_server.url("/endless"), tmp_path / "m", ErrorCode.FILE_TOO_LARGE)


def test_stall_is_download_timeout(media_server: MediaServer, tmp_path: Path) -> None:
    fails(media_server.url("/stall"), tmp_path / "m", ErrorCode.DOWNLOAD_TIMEOUT)


def test_total_timeout(media_server: MediaServer, tmp_path: Path) -> None:
    opts = DownloadOptions(max_bytes=100_000, total_timeout_s=0.5, stall_timeout_s=2)
    fails(media_server.url("/trickle?s=3"), tmp_path / "m", ErrorCode.DOWNLOAD_TIMEOUT, opts=opts)


def test_private_address_refused(media_server: MediaServer, tmp_path: Path) -> None:
    url = media_server.add("p.bin", b"x")
    fails(url, tmp_path / "m", ErrorCode.URL_NOT_ALLOWED, guard=UrlGuard())
    assert url.split("127.0.0.1")[1] not in media_server.hits


def test_redirect_hop_to_private_refused(media_server: MediaServer, tmp_path: Path) -> None:
    url = media_server.url("/redirect?to=http://169.254.169.254/latest/meta-data/")
    fails(url, tmp_path / "m", ErrorCode.URL_NOT_ALLOWED)


def test_redirect_to_other_scheme_refused(media_server: MediaServer, tmp_path: Path) -> None:
    fails(
        media_server.url("/redirect?to=file:///etc/passwd"),
        tmp_path / "m",
        ErrorCode.URL_NOT_ALLOWED,
    )


def test_redirects_are_followed_and_bounded(media_server: MediaServer, tmp_path: Path) -> None:
    target = media_server.add("r.bin", b"redirected")
    dest = tmp_path / "m"
    download(media_server.url(f"/redirect?to={target}"), dest, opts=OPTS, guard=LOCAL)
    assert dest.read_bytes() == b"redirected"
    fails(media_server.url("/loop"), tmp_path / "n", ErrorCode.DOWNLOAD_ERROR)


def test_unreachable_host_is_download_error(tmp_path: Path) -> None:
    fails("http://no-such-host.invalid/v.mp4", tmp_path / "m", ErrorCode.DOWNLOAD_ERROR)


def test_cancel_while_streaming(media_server: MediaServer, tmp_path: Path) -> None:
    flag = threading.Event()
    timer = threading.Timer(0.3, flag.set)
    timer.start()
    dest = tmp_path / "m"
    with pytest.raises(Cancelled):
        download(
            media_server.url("/trickle?s=5"),
            dest,
            opts=OPTS,
            guard=LOCAL,
            should_cancel=flag.is_set,
        )
    assert not dest.exists()


def test_media_suffix() -> None:
    assert media_suffix("https://s3/x/videos/a_b.MP4?X-Amz-Signature=1") == ".mp4"
    assert media_suffix("https://s3/x/noext") == ""
    assert media_suffix("https://s3/x/evil.mp4%2F..%2F..") == ""
