"""Where the answers differ between CPU arithmetic paths and instruction sets, per clip.

Run by hand:  .venv/bin/python -m bench.bench_paths [--bench languages|diarization]
              [--compute-type int8|float32] [--isas native,AVX2] [--json out.json]

CTranslate2 computes with MKL on Intel CPUs and with oneDNN elsewhere (`CT2_USE_MKL=1` / `=0`
force one), and each library picks its kernels by the CPU's instruction set (AVX2, AVX-512…);
with int8 weights they round differently, so a customer's server may read other words than
ours. This runs one answer benchmark (`bench_languages`: the 27 audioeval clips, in the
repository; `bench_diarization`: the 13 ami-dev clips, beside it in ../shared/data) once per
configuration — each path, on each instruction set asked — each in its own process with the
compute type asked (`ML_COMPUTE_TYPE`), and prints every clip whose answers are not the same in
all of them (language, its probability, text, words, speakers, scores; timings and memory are
not answers) with the fields that differ, then how many differ.

`--isas AVX2` adds the kernels an older CPU would run, on this one: it caps CTranslate2's own
kernels (`CT2_FORCE_CPU_ISA`), oneDNN's (`ONEDNN_MAX_CPU_ISA`), MKL's (`MKL_ENABLE_INSTRUCTIONS`)
and torch's (`ATEN_CPU_CAPABILITY`, the speaker encoder); onnxruntime (the VAD) has no such cap.
It is more configurations, not a copy of a given older CPU: capped to AVX2, this AVX-512 EPYC's
int8 words were not those a first-generation (AVX2) EPYC read. A cap above what the CPU has is
refused by CTranslate2 (the run fails, and says so).
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
# Each library's name for a cap on the instruction set ("native": no cap).
ISA_ENV = {
    "AVX512": {
        "CT2_FORCE_CPU_ISA": "AVX512",
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI",
        "MKL_ENABLE_INSTRUCTIONS": "AVX512",
        "ATEN_CPU_CAPABILITY": "avx512",
    },
    "AVX2": {
        "CT2_FORCE_CPU_ISA": "AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
    },
    "native": {},
}
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


def differences(reports: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """For each name whose answers are not the same in every report: each differing field's
    value in each report ({name: {field: {report: value}}}; field "" for a whole value)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    names = sorted(set().union(*(r.keys() for r in reports.values())))
    for name in names:
        values = {config: report.get(name) for config, report in reports.items()}
        first = next(iter(values.values()))
        if all(v == first for v in values.values()):
            continue
        rows = {config: v for config, v in values.items() if isinstance(v, dict)}
        if len(rows) == len(values):
            fields = sorted(set().union(*(v.keys() for v in rows.values())))
            out[name] = {}
            for field in fields:
                by_config = {config: v.get(field) for config, v in rows.items()}
                if len({json.dumps(x, sort_keys=True) for x in by_config.values()}) > 1:
                    out[name][field] = by_config
        else:
            out[name] = {"": values}
    return out


def run_under(bench: str, env_extra: dict[str, str], out: Path) -> dict[str, Any]:
    """One run of `bench.bench_<bench>` with `env_extra` in its environment; its report."""
    env = {**os.environ, **env_extra}
    command = [sys.executable, "-m", f"bench.bench_{bench}", "--json", str(out)]
    done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        sys.exit(f"bench_paths: bench_{bench} failed with {env_extra} ({done.returncode})")
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def configurations(isas: list[str], compute_type: str) -> dict[str, dict[str, str]]:
    """Each configuration's name (`oneDNN/AVX2`) and the environment that sets it up."""
    return {
        f"{path}/{isa}": {"CT2_USE_MKL": mkl, "ML_COMPUTE_TYPE": compute_type, **ISA_ENV[isa]}
        for isa in isas
        for path, mkl in PATHS.items()
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bench", choices=("languages", "diarization"), default="languages")
    parser.add_argument("--compute-type", default="int8", help="ML_COMPUTE_TYPE for every run")
    parser.add_argument("--isas", default="native", help=f"comma-separated, of {list(ISA_ENV)}")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    isas = [isa.strip() for isa in args.isas.split(",") if isa.strip()]
    if unknown := [isa for isa in isas if isa not in ISA_ENV]:
        parser.error(f"unknown instruction set(s) {unknown}; known: {list(ISA_ENV)}")
    with tempfile.TemporaryDirectory(prefix="bench-paths-") as tmp:
        reports = {
            name: per_clip(run_under(args.bench, env, Path(tmp) / f"{i}.json"))
            for i, (name, env) in enumerate(configurations(isas, args.compute_type).items())
        }
    differ = differences(reports)
    configs = list(reports)
    for name, fields in differ.items():
        shown = "; ".join(
            f"{field or name}: " + " / ".join(repr(v[c]) for c in configs)
            for field, v in fields.items()
        )
        print(f"{name} differs ({' / '.join(configs)}): {shown}")
    total = len(set().union(*(r.keys() for r in reports.values())))
    print(
        f"{args.bench}, {args.compute_type}, {' / '.join(configs)}: {len(differ)} of {total} "
        "answers (each clip, the pooled figures, the model names) are not the same in all"
    )
    result = {
        "bench": args.bench,
        "compute_type": args.compute_type,
        "configurations": configs,
        "answers": total,
        "differ": differ,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    return result


if __name__ == "__main__":
    main()
