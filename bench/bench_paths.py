"""Where the answers differ between CTranslate2's two CPU arithmetic paths, per clip.

Run by hand:  .venv/bin/python -m bench.bench_paths [--bench languages|diarization]
              [--compute-type int8|float32] [--json out.json]

CTranslate2 computes with MKL on Intel CPUs and with oneDNN elsewhere (`CT2_USE_MKL=1` / `=0`
force one); with int8 weights the two round differently, so a customer's server may read other
words than ours. This runs one answer benchmark (`bench_languages`: the 27 audioeval clips,
in the repository; `bench_diarization`: the 13 ami-dev clips, beside it in ../shared/data) once
under each path, each in its own process with the compute type asked (`ML_COMPUTE_TYPE`), and
prints every clip whose answer differs (language, its probability, text, words, speakers,
scores; timings and memory are not answers) with the fields that differ, then how many differ.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PATHS = {"oneDNN": "0", "MKL": "1"}
# Keys that measure time or memory, not what was heard.
NOT_ANSWERS = frozenset(
    {"seconds", "stages", "rtf", "rtf_all_clips", "load_s", "peak_rss_mb", "date", "machine"}
)


def answers(value: Any) -> Any:
    """`value` without its timings and memory, at any depth."""
    if isinstance(value, dict):
        return {k: answers(v) for k, v in value.items() if k not in NOT_ANSWERS}
    if isinstance(value, list):
        return [answers(v) for v in value]
    return value


def per_clip(report: dict[str, Any]) -> dict[str, Any]:
    """The report's answers by clip (`rows` or `clips`), plus its other answers by name."""
    out: dict[str, Any] = {}
    for key, value in answers(report).items():
        if key in ("rows", "clips") and isinstance(value, list):
            out.update({str(row["clip"]): row for row in value})
        else:
            out[key] = value
    return out


def differences(first: dict[str, Any], second: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """For each name whose answers differ: the differing fields, as (first, second)."""
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(first.keys() | second.keys()):
        a, b = first.get(name), second.get(name)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out[name] = {
                k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)
            }
        else:
            out[name] = {"": (a, b)}
    return out


def run_under(bench: str, mkl: str, compute_type: str, out: Path) -> dict[str, Any]:
    """One run of `bench.bench_<bench>` with the path and compute type asked; its report."""
    env = {**os.environ, "CT2_USE_MKL": mkl, "ML_COMPUTE_TYPE": compute_type}
    command = [sys.executable, "-m", f"bench.bench_{bench}", "--json", str(out)]
    done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        sys.exit(f"bench_paths: bench_{bench} failed under CT2_USE_MKL={mkl} ({done.returncode})")
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bench", choices=("languages", "diarization"), default="languages")
    parser.add_argument("--compute-type", default="int8", help="ML_COMPUTE_TYPE for both runs")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-paths-") as tmp:
        reports = {
            name: per_clip(
                run_under(args.bench, mkl, args.compute_type, Path(tmp) / f"{name}.json")
            )
            for name, mkl in PATHS.items()
        }
    first, second = reports.values()
    differ = differences(first, second)
    for name, fields in differ.items():
        shown = "; ".join(f"{k or name}: {a!r} / {b!r}" for k, (a, b) in sorted(fields.items()))
        print(f"{name} differs (oneDNN / MKL): {shown}")
    print(
        f"{args.bench}, {args.compute_type}: {len(differ)} of {len(first)} answers (each clip, "
        "the pooled figures, the model names) differ between the paths"
    )
    result = {
        "bench": args.bench,
        "compute_type": args.compute_type,
        "answers": len(first),
        "differ": {name: {k: list(v) for k, v in f.items()} for name, f in differ.items()},
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    return result


if __name__ == "__main__":
    main()
