"""The whole analysis through the ML server's API against bare faster-whisper (issue 22).

Run by hand:  .venv/bin/python -m bench.bench_speed [--hour] [--runs 1] [--json out.json]
              [--data ../shared/data/ami-dev]

Input: real meeting speech, the 13 ami-dev clips (../shared/data/ami-dev, beside the
repository; the benchmark stops with a message when they are absent) twice end to end, 13 min
in one 16 kHz 16-bit WAV; `--hour` repeats them to 1 h instead. In the same run, models warm
(one warm-up of each side on the first 60 s, then measured):

- analysis: `ecg ml-server` as a real process (one worker, bundled models, CPU) is sent a
  signed `POST /process` for the WAV, served over local HTTP, with `language: en` and with
  `auto`; timed from the request to the final signed callback, whose result gives the words;
- bare: faster-whisper in this process with its usual call, `transcribe(beam_size=5,
  vad_filter=True, word_timestamps=True)`, on the same bundled tiny.en (the model the analysis
  reads English with), int8 as the server loads it.

Reported for each: wall time, CPU seconds (user + system; for the server every process of its
tree, read from /proc, so Linux only), words found, real-time factor; the ratios
analysis/bare (wall and CPU); the server's peak RSS (`VmHWM` of each of its processes, the
largest being the analysis child). Runs alternate (bare, en, auto, …) so load on a shared
machine slows all alike. Target (issue 22): analysis ≤ 0.9× bare with `en`, ≤ 1.0× with `auto`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ecg_protocol import sign_headers
from ml_server.bundled import bundled_path
from ml_server.config import BUNDLED_ENGLISH_ASR
from tests.support.local_servers import CallbackReceiver, MediaServer
from tests.support.ml_service import SECRET, SERVER_ENV, new_job_id, request_body
from tests.support.net import free_port
from tests.support.procs import REPO_ROOT, ManagedProcess, ecg_command

DATA = REPO_ROOT.parent / "shared" / "data" / "ami-dev"
SAMPLE_RATE = 16_000
HOUR_S = 3600.0
WARM_UP_S = 60.0
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Measured:
    wall_s: float
    cpu_s: float
    words: int
    stages: dict[str, float] | None = None  # the analysis's metadata.processing_time


def speech(repeats: int | None, seconds: float | None, data: Path = DATA) -> np.ndarray:
    """The ami-dev clips end to end, `repeats` times or until `seconds`, as 16 kHz float32."""
    if not data.is_dir() or not any(data.glob("*.wav")):
        raise SystemExit(
            f"bench_speed needs the ami-dev clips at {data} (../shared/data/ami-dev beside the "
            "repository, or --data); they are not in the repository, so it cannot run here"
        )
    clips = []
    for path in sorted(data.glob("*.wav")):
        samples, rate = sf.read(path, dtype="float32", always_2d=False)
        if rate != SAMPLE_RATE or samples.ndim != 1:
            raise SystemExit(f"{path.name}: expected 16 kHz mono, got {rate} Hz {samples.shape}")
        clips.append(samples)
    one = np.concatenate(clips)
    if seconds is not None:
        repeats = int(np.ceil(seconds * SAMPLE_RATE / len(one)))
    audio = np.tile(one, repeats or 1)
    return audio[: int(seconds * SAMPLE_RATE)] if seconds is not None else audio


def wav_bytes(audio: np.ndarray, folder: Path, name: str) -> bytes:
    path = folder / name
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return path.read_bytes()


def _tree(root: int) -> list[int]:
    """`root` and every process below it, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(_stat(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += parents.get(pid, [])
    return out


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat fields from the state on (index 0 = state, 1 = ppid)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def tree_cpu_s(root: int) -> float:
    """User + system seconds of `root`'s tree, reaped children included."""
    total = 0
    for pid in _tree(root):
        try:
            f = _stat(pid)
        except OSError:
            continue
        total += sum(int(x) for x in f[11:15])  # utime stime cutime cstime
    return total / TICKS


def tree_peak_rss_mb(root: int) -> dict[int, float]:
    """Each live process's peak RSS (`VmHWM`) in MB."""
    out = {}
    for pid in _tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out[pid] = int(line.split()[1]) / 1024
        except OSError:
            continue
    return out


class Analysis:
    """The ML server as a process, the media it downloads and the callbacks it sends."""

    def __init__(self, proc: ManagedProcess, base_url: str) -> None:
        self.proc = proc
        self.base_url = base_url
        self.media = MediaServer()
        self.receiver = CallbackReceiver()

    def run(self, name: str, language: str, timeout_s: float) -> Measured:
        import httpx

        job_id = new_job_id()
        url = f"http://127.0.0.1:{self.media.port}/files/{name}"
        body = json.dumps(
            request_body(job_id, url, self.receiver.base_url, language=language)
        ).encode()
        headers = {"Content-Type": "application/json", **sign_headers(body, SECRET)}
        cpu0 = tree_cpu_s(self.proc.pid)
        started = time.perf_counter()
        response = httpx.post(f"{self.base_url}/process", content=body, headers=headers)
        response.raise_for_status()
        final = self.receiver.wait_final(job_id, timeout_s=timeout_s)
        wall = time.perf_counter() - started
        cpu = tree_cpu_s(self.proc.pid) - cpu0
        payload = final.json
        if payload["status"] != "completed":
            raise SystemExit(f"analysis {name} ({language}) failed: {payload}")
        result = payload["result"]
        words = sum(len(s["words"]) for s in result["segments"])
        return Measured(wall, cpu, words, result["metadata"]["processing_time"])

    def close(self) -> None:
        self.media.close()
        self.receiver.close()


def bare_run(model: Any, audio: np.ndarray) -> Measured:
    """faster-whisper as a user calls it: beam 5, its VAD, word timestamps."""
    cpu0 = time.process_time()
    started = time.perf_counter()
    segments, _ = model.transcribe(audio, beam_size=5, vad_filter=True, word_timestamps=True)
    words = sum(len(s.words or ()) for s in segments)  # the generator does the work
    return Measured(time.perf_counter() - started, time.process_time() - cpu0, words)


def summary(runs: list[Measured], duration_s: float) -> dict[str, Any]:
    wall = statistics.median(r.wall_s for r in runs)
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(statistics.median(r.cpu_s for r in runs), 2),
        "words": runs[-1].words,
        "rtf": round(wall / duration_s, 4),
        "all_wall_s": [round(r.wall_s, 2) for r in runs],
        "stages_s": runs[-1].stages,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hour", action="store_true", help="1 h of speech instead of 13 min")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--data", type=Path, default=DATA, help="the ami-dev clips")
    args = parser.parse_args(argv)

    audio = speech(None, HOUR_S, args.data) if args.hour else speech(2, None, args.data)
    duration = len(audio) / SAMPLE_RATE
    from faster_whisper import WhisperModel

    model_dir = bundled_path(BUNDLED_ENGLISH_ASR, Path(tempfile.gettempdir()))
    bare_model = WhisperModel(str(model_dir), device="cpu", compute_type="int8")

    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        root = Path(tmp)
        port = free_port()
        env = {
            **SERVER_ENV,
            "ECG_DATA_DIR": str(root / "data"),
            "TMPDIR": str(root),
            "ML_MAX_DOWNLOAD_BYTES": str(4 * 1024**3),
            "ML_DOWNLOAD_STALL_TIMEOUT_S": "60",
            "ML_CALLBACK_TIMEOUT_S": "30",
            "ML_DEVICE": "cpu",
        }
        command = ecg_command("ml-server", "--port", str(port))
        with ManagedProcess(command, env=env, log_path=root / "ml.log", name="ml-server") as proc:
            base = f"http://127.0.0.1:{port}"
            proc.wait_http_ok(f"{base}/health", timeout_s=120)
            analysis = Analysis(proc, base)
            try:
                analysis.media.files["warm.wav"] = wav_bytes(
                    audio[: int(WARM_UP_S * SAMPLE_RATE)], root, "warm.wav"
                )
                analysis.media.files["speech.wav"] = wav_bytes(audio, root, "speech.wav")
                timeout = 60 * duration  # generous: a loaded 2-core machine
                print(f"{duration:.0f} s of speech; warming up", flush=True)
                analysis.run("warm.wav", "auto", timeout)
                bare_run(bare_model, audio[: int(WARM_UP_S * SAMPLE_RATE)])
                bare: list[Measured] = []
                by_language: dict[str, list[Measured]] = {"en": [], "auto": []}
                for i in range(args.runs):
                    bare.append(bare_run(bare_model, audio))
                    print(f"run {i} bare: {bare[-1]}", flush=True)
                    for language, runs in by_language.items():
                        runs.append(analysis.run("speech.wav", language, timeout))
                        print(f"run {i} analysis {language}: {runs[-1]}", flush=True)
                rss = tree_peak_rss_mb(proc.pid)
            finally:
                analysis.close()

    bare_s = summary(bare, duration)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs)",
        "commit": _commit(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "duration_s": round(duration, 1),
        "runs": args.runs,
        "bare": bare_s,
    }
    for language, runs in by_language.items():
        s = summary(runs, duration)
        s["ratio_to_bare"] = round(s["wall_s"] / bare_s["wall_s"], 3)
        s["cpu_ratio_to_bare"] = round(s["cpu_s"] / bare_s["cpu_s"], 3)
        report[f"analysis_{language}"] = s
    report["ml_peak_rss_mb"] = round(max(rss.values()), 1)
    report["ml_peak_rss_by_process_mb"] = {str(k): round(v, 1) for k, v in rss.items()}
    report["bare_process_peak_rss_mb"] = round(_self_peak_mb(), 1)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


def _commit() -> str:
    """The code measured: HEAD, `-dirty` when the tree has changes."""
    import subprocess

    git = ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"]
    return subprocess.run(git, capture_output=True, text=True, check=False).stdout.strip()


def _self_peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main(sys.argv[1:])
