"""Benchmark the analysis pipeline against bare faster-whisper transcription.

Run by hand:  .venv/bin/python -m bench.bench_pipeline [--runs 3] [--json out.json]

On a ≥ 60 s synthetic two-voice clip (tests/support/media.py, mp4 with a video track), with
models loaded once before timing: per-stage times of `run_pipeline`, and the same model's bare
`WhisperModel.transcribe(word_timestamps=True)` on the same decoded audio with the same
decoding options (beam size from settings, no VAD). CPU seconds are reported beside wall
time: on a shared machine they show the work apart from waiting. Runs alternate (bare,
pipeline, bare, …) so a busy shared machine slows both alike. Peak
RSS is the process's ru_maxrss at the end (models + all runs).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from ml_server.config import BUNDLED_ASR, BUNDLED_ENGLISH_ASR, MLSettings
from ml_server.models import load_models
from ml_server.pipeline.decode import decode
from ml_server.pipeline.run import PipelineOptions, run_pipeline
from tests.support.media import dialogue


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default=BUNDLED_ASR)
    parser.add_argument(
        "--english-model", default=BUNDLED_ENGLISH_ASR, help='"" = the main model does English'
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    media = dialogue("mp4", long=True)
    settings = MLSettings(
        ml_asr_model=args.model,
        ml_asr_english_model=args.english_model,
        ml_device=args.device,
        ml_emotion_model=None,
    )
    t0 = time.perf_counter()
    models = load_models(settings)
    load_s = time.perf_counter() - t0
    rss_after_load = _rss_mb()
    audio = decode(media.path, max_duration_s=3600)

    def bare() -> float:
        cpu.append(-time.process_time())
        start = time.perf_counter()
        # The model the pipeline transcribes this English media with (the English route).
        segments, _ = (models.asr_english or models.asr).transcribe(
            audio.window(), beam_size=models.beam_size, word_timestamps=True, vad_filter=False
        )
        n = sum(len(s.words or ()) for s in segments)  # the generator does the work
        assert n > 0
        cpu[-1] += time.process_time()
        return time.perf_counter() - start

    def pipeline() -> tuple[float, dict[str, float]]:
        cpu_pipe.append(-time.process_time())
        start = time.perf_counter()
        result = run_pipeline(media.path, options=PipelineOptions(), models=models)
        cpu_pipe[-1] += time.process_time()
        return time.perf_counter() - start, dict(result.metadata.processing_time)

    cpu: list[float] = []
    cpu_pipe: list[float] = []
    bare()  # warm-up: first calls allocate buffers
    pipeline()
    cpu.clear()
    cpu_pipe.clear()
    bare_s: list[float] = []
    total_s: list[float] = []
    stages: list[dict[str, float]] = []
    for _ in range(args.runs):
        bare_s.append(bare())
        t, st = pipeline()
        total_s.append(t)
        stages.append(st)
    rss_end = _rss_mb()
    med_bare = statistics.median(bare_s)
    med_total = statistics.median(total_s)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.node()} ({platform.machine()}, {_cpus()} CPUs)",
        "model": models.names["asr"],
        "english_model": models.names.get("asr_english"),
        "clip_s": round(audio.duration, 2),
        "runs": args.runs,
        "model_load_s": round(load_s, 2),
        "bare_transcribe_s": round(med_bare, 3),
        "pipeline_s": round(med_total, 3),
        "ratio_pipeline_to_bare": round(med_total / med_bare, 3),
        # Noise-robust views: fastest run of each, and the median over adjacent pairs.
        "ratio_of_fastest_runs": round(min(total_s) / min(bare_s), 3),
        "median_pairwise_ratio": round(
            statistics.median(p / b for p, b in zip(total_s, bare_s, strict=True)), 3
        ),
        "cpu_ratio": round(statistics.median(cpu_pipe) / statistics.median(cpu), 3),
        "real_time_factor": round(med_total / audio.duration, 3),
        # CPU seconds (all threads) tell the work apart from waiting on a busy shared machine.
        "bare_cpu_s": round(statistics.median(cpu), 3),
        "pipeline_cpu_s": round(statistics.median(cpu_pipe), 3),
        "stage_s": {k: round(statistics.median(s[k] for s in stages), 3) for k in stages[0]},
        "peak_rss_mb": round(rss_end, 1),
        "rss_after_load_mb": round(rss_after_load, 1),
        "all_bare_s": [round(x, 3) for x in bare_s],
        "all_pipeline_s": [round(x, 3) for x in total_s],
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main(sys.argv[1:])
