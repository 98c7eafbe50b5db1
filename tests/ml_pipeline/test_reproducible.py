"""`ML_COMPUTE_TYPE=float32` gives the same answers on both of CTranslate2's CPU paths, and
with an older CPU's (AVX2) kernels.

CTranslate2 computes with MKL on Intel CPUs and with oneDNN elsewhere; with int8 weights the two
round differently and read different words on hard speech (docs/benchmarks.md, "Reproducible
answers": 8 of 13 AMI clips). The README offers float32 as the mode whose answers a customer's
server reproduces; this holds it to that on the test dialogue (whose words int8's two paths
already read differently) and a French clip: clear speech, where float32's rounding is far
from any decision. Each path runs in its own process (CTranslate2 picks it when it loads).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.bench_paths import ISA_ENV
from tests.support.media import dialogue
from tests.support.procs import REPO_ROOT

FRENCH = REPO_ROOT / "tests" / "data" / "audioeval" / "fr" / "pangrama.flac"

# Runs the pipeline on each path given and prints, per file, the language and every word with
# its speaker and times.
_ANALYSE = """
import json, sys
from pathlib import Path
from ml_server.config import MLSettings
from ml_server.models import load_models
from ml_server.pipeline.run import PipelineOptions, run_pipeline
models = load_models(MLSettings(ml_compute_type="float32", ml_emotion_model=None))
out = []
for path in sys.argv[1:]:
    result = run_pipeline(Path(path), options=PipelineOptions(), models=models)
    words = [(w.word, w.speaker_id, w.start, w.end) for s in result.segments for w in s.words]
    out.append({"language": result.metadata.language, "words": words})
print(json.dumps(out))
"""


# Another CPU's kernels on this one: every library capped to AVX2.
AVX2_KERNELS = ISA_ENV["AVX2"]


def _has_avx2() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.is_file() and " avx2" in cpuinfo.read_text()


def _answers(
    name: str, env_extra: dict[str, str], paths: list[Path], tmp_path: Path
) -> list[dict[str, object]]:
    env = {**os.environ, **env_extra, "ECG_DATA_DIR": str(tmp_path / f"data-{name}")}
    done = subprocess.run(
        [sys.executable, "-c", _ANALYSE, *map(str, paths)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,  # two short files: ≈ 10 s on a quiet 2-core machine, models loaded
        check=False,
    )
    assert done.returncode == 0, (name, done.stderr[-2000:])
    answers: list[dict[str, object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return answers


def test_float32_reads_the_same_on_both_cpu_paths(tmp_path: Path) -> None:
    paths = [dialogue("wav").path, FRENCH]
    configurations = {"oneDNN": {"CT2_USE_MKL": "0"}, "MKL": {"CT2_USE_MKL": "1"}}
    if _has_avx2():  # an x86-64 CPU without AVX2 has no older kernels to try
        configurations["oneDNN, AVX2 kernels"] = {"CT2_USE_MKL": "0", **AVX2_KERNELS}
    runs = {name: _answers(name, env, paths, tmp_path) for name, env in configurations.items()}
    first, *others = runs.values()
    for name, other in zip(list(runs)[1:], others, strict=True):
        for path, a, b in zip(paths, first, other, strict=True):
            assert a["language"] == b["language"], (name, path.name)
            words_a, words_b = a["words"], b["words"]
            assert isinstance(words_a, list) and isinstance(words_b, list)
            assert len(words_a) >= 5, (path.name, words_a)
            # Words and speakers exactly; times to Whisper's 20 ms frame (a frame boundary is
            # the one place float rounding could still land on either side).
            assert [(w[0], w[1]) for w in words_a] == [(w[0], w[1]) for w in words_b], (
                name,
                path.name,
            )
            for wa, wb in zip(words_a, words_b, strict=True):
                assert abs(wa[2] - wb[2]) <= 0.021 and abs(wa[3] - wb[3]) <= 0.021, (name, wa, wb)
