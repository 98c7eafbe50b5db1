"""Run every benchmark in turn with its default settings (`make bench`).

Each benchmark prints its own table; figures worth keeping go into docs/benchmarks.md by hand,
with the machine and the date. Pass names to run a subset: `python -m bench.run_all status e2e`.
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHES = {
    "pipeline": "bench.bench_pipeline",
    "alignment": "bench.bench_alignment",
    "status": "bench.bench_status",
    "webhook": "bench.bench_webhook",
    "e2e": "bench.bench_e2e",
    "workers": "bench.bench_workers",
    "load": "bench.load_backend",
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHES)}")
        return 2
    failed: list[str] = []
    for name in names:
        print(f"\n=== {name} ({BENCHES[name]})", flush=True)
        started = time.monotonic()
        rc = subprocess.call([sys.executable, "-m", BENCHES[name]])
        print(f"=== {name}: exit {rc} after {time.monotonic() - started:.0f} s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
