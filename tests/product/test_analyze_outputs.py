"""`ecg analyze a b -o DIR` against a real `ecg backend` process (fake ML server behind it):
every format written for both inputs and parsed back by independent parsers, and a rate limit
waited out before the second upload instead of failing it."""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pysubs2
import pytest
import srt
import webvtt

from ecg_cli.analyze import FORMATS, run_analyze
from ecg_cli.main import build_parser
from tests.support.fake_ml import FakeMLServer
from tests.support.net import free_port
from tests.support.procs import ManagedProcess, ecg_command
from tests.support.results import caption_result

SECRET = "cli-test-secret"


@pytest.fixture
def fake_ml() -> Iterator[FakeMLServer]:
    with FakeMLServer(secret=SECRET) as server:
        yield server


@pytest.fixture
def backend(tmp_path: Path, fake_ml: FakeMLServer) -> Iterator[str]:
    port = free_port()
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ecg.db'}",
        "MODEL_SERVER_URL": fake_ml.url,
        "WEBHOOK_SECRET_KEY": SECRET,
        "ECG_DATA_DIR": str(tmp_path / "data"),
        "FASTAPI_BASE_URL": f"http://127.0.0.1:{port}",
        "RATE_LIMIT_PROCESS": "1 per 3 seconds",
    }
    cmd = ecg_command("backend", "--host", "127.0.0.1", "--port", str(port))
    with ManagedProcess(cmd, env=env, log_path=tmp_path / "backend.log") as proc:
        proc.start()
        url = f"http://127.0.0.1:{port}"
        proc.wait_http_ok(f"{url}/health", timeout_s=60)
        yield url


def _finish_jobs(fake: FakeMLServer, n: int, timeout_s: float) -> list[float]:
    """Complete each job as it is dispatched; when each arrived."""
    arrived: list[float] = []
    deadline = time.monotonic() + timeout_s
    while len(arrived) < n:
        assert time.monotonic() < deadline, "jobs were not dispatched"
        for job_id in list(fake.accepted)[len(arrived) :]:
            arrived.append(time.monotonic())
            future = fake.finish(job_id, caption_result().to_stored())
            assert future is not None and future.result(timeout=10) == 200
        time.sleep(0.05)
    return arrived


def test_two_inputs_every_format_and_a_rate_limit_waited_out(
    backend: str, fake_ml: FakeMLServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = []
    for name in ("first.mp4", "second.wav"):
        path = tmp_path / name
        path.write_bytes(b"\x00" * 4096)
        inputs.append(str(path))
    out = tmp_path / "captions"
    args: argparse.Namespace = build_parser().parse_args(
        ["analyze", *inputs, "-o", str(out), "--backend", backend, "--timeout", "60", "--quiet"]
    )
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        run = pool.submit(run_analyze, args)
        arrived = _finish_jobs(fake_ml, 2, timeout_s=60)
        assert run.result(timeout=60) == 0
    printed = capsys.readouterr()
    # The second file waited for the limit (1 per 3 s) before uploading; it was not refused.
    assert "rate limited; waiting" in printed.err
    assert arrived[1] - arrived[0] >= 1.5
    assert printed.out.count("completed in") == 2
    words = [w.word for s in caption_result().segments for w in s.words]
    for stem in ("first", "second"):
        files = {fmt: out / f"{stem}.{fmt}" for fmt in FORMATS}
        assert all(p.is_file() for p in files.values()), sorted(out.iterdir())
        assert len(list(srt.parse(files["srt"].read_text(encoding="utf-8")))) > 2
        assert webvtt.read(str(files["vtt"])).captions
        ass = pysubs2.load(str(files["ass"]))
        assert {e.style for e in ass.events} == {"SPEAKER_00", "SPEAKER_01"}
        rows = list(csv.DictReader(io.StringIO(files["tsv"].read_text()), delimiter="\t"))
        assert [r["speaker"] for r in rows] == ["SPEAKER_00", "SPEAKER_01"]
        assert files["txt"].read_text(encoding="utf-8").split()[-1] == words[-1]
        assert json.loads(files["json"].read_text())["segments"][1]["text"].startswith("Yes")
