"""Crash isolation on the real `ecg ml-server`: an analysis child killed mid-job (SIGKILL,
SIGSEGV) costs that job at most, never the server; memory and time caps end a job with a code.

The analysis children are found as the server's child processes running
`ml_server.executor_child`, and killed with real signals, as the kernel or a native crash would.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from ecg_protocol import ErrorCode
from ml_server.config import MLSettings
from ml_server.executor_child import ChildAnalyser
from ml_server.pipeline.errors import StageError
from ml_server.pipeline.run import PipelineOptions
from tests.support import media
from tests.support.local_servers import CallbackReceiver, MediaServer
from tests.support.ml_service import MLServer, new_job_id, request_body
from tests.support.procs import wait_for


def analysis_children(server_pid: int) -> list[int]:
    """Pids of the server's analysis child processes (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        # The parent pid is the 2nd field after the parenthesised command name.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == server_pid and b"ml_server.executor_child" in cmdline:
            found.append(int(entry.name))
    return found


def one_child(server: MLServer, *, other_than: int | None = None) -> int:
    """The server's single analysis child (ML_WORKERS=1), waiting for it to exist."""
    pids: list[int] = []

    def found() -> bool:
        nonlocal pids
        pids = [p for p in analysis_children(server.proc.pid) if p != other_than]
        return len(pids) == 1

    wait_for(found, timeout_s=60, what="the analysis child")
    return pids[0]


@pytest.fixture(scope="module")
def long_speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 3 minutes of speech as a small MP3: long enough to be killed mid-analysis."""
    out = tmp_path_factory.mktemp("isolation") / "speech3min.mp3"
    source = media.dialogue("wav", long=True).path
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-stream_loop", "2", "-i", str(source),
         "-ac", "1", "-c:a", "libmp3lame", "-b:a", "32k", str(out)],
        check=True,
    )  # fmt: skip
    return out


def start_analysis(server: MLServer, url: str, receiver: CallbackReceiver) -> str:
    """Submit a job and wait until its analysis (past download) is under way."""
    job_id = new_job_id()
    assert server.post(request_body(job_id, url, receiver.base_url)).status_code == 202
    wait_for(
        lambda: server.job(job_id)["stage"] not in ("queued", "download"),
        timeout_s=120,
        what="the analysis to start",
    )
    return job_id


def assert_healthy(server: MLServer) -> None:
    assert server.proc.alive
    assert httpx.get(f"{server.base_url}/health", timeout=5).status_code == 200


def test_a_child_killed_once_is_retried_in_a_fresh_one(
    ml_server: MLServer, receiver: CallbackReceiver, media_server: MediaServer, long_speech: Path
) -> None:
    url = media_server.add("kill-once.mp3", long_speech)
    job_id = start_analysis(ml_server, url, receiver)
    victim = one_child(ml_server)
    os.kill(victim, signal.SIGKILL)
    assert_healthy(ml_server)
    final = receiver.wait_final(job_id, timeout_s=420).json
    assert final["status"] == "completed", final
    assert len(final["result"]["segments"]) > 0
    assert_healthy(ml_server)
    assert victim not in analysis_children(ml_server.proc.pid)
    assert ml_server.leftovers() == []


def test_a_poison_job_fails_media_crashed_after_one_retry(
    ml_server: MLServer, receiver: CallbackReceiver, media_server: MediaServer, long_speech: Path
) -> None:
    url = media_server.add("segv.mp3", long_speech)
    job_id = start_analysis(ml_server, url, receiver)
    first = one_child(ml_server)
    os.kill(first, signal.SIGSEGV)
    # The retry runs in a fresh child: crash that one too, as a poison file would.
    second = one_child(ml_server, other_than=first)
    os.kill(second, signal.SIGSEGV)
    final = receiver.wait_final(job_id, timeout_s=120).json
    assert final["status"] == "failed" and final["error_code"] == "MEDIA_CRASHED", final
    assert "SIGSEGV" in final["error_message"]
    record = ml_server.job(job_id)
    assert record["status"] == "failed" and record["error_code"] == "MEDIA_CRASHED"
    assert_healthy(ml_server)
    assert ml_server.leftovers() == []
    # Not re-run: one final callback, and a fresh child waits for the next job.
    assert len(receiver.finals(job_id)) == 1
    assert one_child(ml_server, other_than=second) != second


def test_the_71_video_is_analysed_end_to_end(
    ml_server: MLServer, receiver: CallbackReceiver, media_server: MediaServer, tmp_path: Path
) -> None:
    """The 73 KB 7.1 video that used to segfault the server, now a completed job."""
    path = tmp_path / "movie71.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "color=s=64x64:d=3", "-f", "lavfi", "-i", "sine=r=48000",
         "-filter_complex", "[1:a]aformat=channel_layouts=7.1[a]", "-map", "0:v", "-map", "[a]",
         "-t", "3", "-c:v", "libx264", "-c:a", "aac", str(path)],
        check=True,
    )  # fmt: skip
    job_id = new_job_id()
    url = media_server.add("movie71.mp4", path)
    assert ml_server.post(request_body(job_id, url, receiver.base_url)).status_code == 202
    final = receiver.wait_final(job_id, timeout_s=180).json
    assert final["status"] == "completed", final
    assert final["result"]["metadata"]["duration"] == pytest.approx(3.0, abs=0.1)
    assert_healthy(ml_server)


def _analyse(settings: MLSettings, path: Path) -> StageError:
    analyser = ChildAnalyser(settings, name="test-analysis")
    try:
        assert analyser.wait_ready(timeout_s=300)
        with pytest.raises(StageError) as info:
            analyser.analyse(path, options=PipelineOptions(language="en"), job_id="cap")
        return info.value
    finally:
        analyser.close()
        assert analyser.pid is None


def test_memory_over_the_cap_is_memory_limit() -> None:
    # 64 MB is far below what the loaded models alone take: the first check kills the child.
    error = _analyse(MLSettings(ml_worker_max_rss_mb=64), media.dialogue("wav").path)
    assert error.code == ErrorCode.MEMORY_LIMIT
    assert "ML_WORKER_MAX_RSS_MB" in error.message


def test_an_analysis_past_its_time_bound_is_analysis_timeout() -> None:
    settings = MLSettings(ml_task_realtime_factor=0.001, ml_analysis_overhead_s=0.01)
    error = _analyse(settings, media.dialogue("wav").path)
    assert error.code == ErrorCode.ANALYSIS_TIMEOUT
