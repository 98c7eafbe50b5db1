"""Peak memory of the analysis process against media duration (issue 9: bounded by design).

Run by hand:  .venv/bin/python -m bench.bench_memory [--durations 600,3600,10800]
              [--kinds silent,speech] [--json out.json]

For each duration and kind an MP3 is made with ffmpeg (silent: `anullsrc`; speech: the
synthetic two-voice dialogue of tests/support/media.py looped to length), then analysed by a
fresh analysis child (`ml_server.executor_child.ChildAnalyser`, the process the ML server
really runs jobs in, models loaded). Reported per run: the child's RSS once its models are
loaded, its peak RSS (`VmHWM` from /proc, the kernel's own high-water mark) and the wall time.
The target is a peak ≤ 1.5 GB at 3 h with the bundled model.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from ml_server.config import MLSettings
from ml_server.executor_child import ChildAnalyser
from ml_server.pipeline.errors import StageError
from ml_server.pipeline.run import PipelineOptions

TARGET_MB = 1536


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def make_media(kind: str, seconds: int, folder: Path) -> Path:
    """A mono 32 kbps MP3 of `seconds`: digital silence or looped synthetic speech."""
    out = folder / f"{kind}-{seconds}.mp3"
    if out.exists():
        return out
    ffmpeg = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
    if kind == "silent":
        source = ["-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono"]
    else:
        from tests.support.media import dialogue

        source = ["-stream_loop", "-1", "-i", str(dialogue("wav", long=True).path)]
    encode = ["-t", str(seconds), "-ac", "1", "-c:a", "libmp3lame", "-b:a", "32k", str(out)]
    subprocess.run([*ffmpeg, *source, *encode], check=True)
    return out


def measure(path: Path, settings: MLSettings) -> dict[str, Any]:
    """Analyse `path` in a fresh child; its loaded and peak RSS, wall time and outcome."""
    analyser = ChildAnalyser(settings, name="bench-memory")
    try:
        if not analyser.wait_ready():
            raise RuntimeError("the analysis child could not load the models")
        pid = analyser.pid
        assert pid is not None
        loaded = _status_mb(pid, "VmRSS")
        started = time.monotonic()
        outcome = "completed"
        words = 0
        try:
            result = analyser.analyse(path, options=PipelineOptions(language="en"), job_id="bench")
            words = sum(len(s.words) for s in result.segments)
        except StageError as exc:
            outcome = exc.code.value
        peak = _status_mb(pid, "VmHWM") if analyser.pid == pid else float("nan")
        return {
            "loaded_rss_mb": round(loaded),
            "peak_rss_mb": round(peak),
            "wall_s": round(time.monotonic() - started, 1),
            "outcome": outcome,
            "words": words,
        }
    finally:
        analyser.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--durations", default="600,3600,10800")
    parser.add_argument("--kinds", default="silent,speech")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--media-dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)
    # No memory cap and no time bound here: the benchmark measures what a job takes.
    settings = MLSettings(ml_worker_max_rss_mb=0, ml_analysis_overhead_s=1e6)
    rows = []
    for kind in args.kinds.split(","):
        for seconds in (int(d) for d in args.durations.split(",")):
            path = make_media(kind, seconds, args.media_dir)
            row = {"kind": kind, "duration_s": seconds, **measure(path, settings)}
            row["within_target"] = row["peak_rss_mb"] <= TARGET_MB
            print(json.dumps(row), flush=True)
            rows.append(row)
    report = {"machine": platform.node(), "python": platform.python_version(), "runs": rows}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
