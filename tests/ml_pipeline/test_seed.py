"""Sampling is seeded (`ML_ASR_SEED`): two fresh worker processes decoding the same clip at a
sampling temperature give the same words. A window that falls back to the 0.4 temperature
samples the same way, so a fresh worker's answer for a media no longer varies from start to
start (docs/pipeline.md, "Seeded sampling")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ml_server.config import MLSettings
from tests.support.languages import AUDIOEVAL_DIR

# Decodes the clip twice in one process at temperature 1.0 (every token sampled) and prints
# each decode's words on a line.
_WORKER = """
import sys
from pathlib import Path
from ml_server.config import MLSettings
from ml_server.models import load_models
from ml_server.pipeline.run import PipelineOptions, run_pipeline
from ml_server.pipeline.data import DecodingHints

settings = MLSettings(
    ml_device="cpu", ml_emotion_model=None, ml_asr_english_model="",
    ecg_data_dir=Path(sys.argv[2]), ml_asr_seed=int(sys.argv[3]),
)
models = load_models(settings)
options = PipelineOptions(language="fr", decoding=DecodingHints(temperature=1.0))
for _ in range(2):
    result = run_pipeline(Path(sys.argv[1]), options=options, models=models)
    print("|".join(w.word for s in result.segments for w in s.words))
"""


def _decodes(clip: Path, data_dir: Path, seed: int) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, str(clip), str(data_dir), str(seed)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return done.stdout.splitlines()[-2:]


def test_a_fresh_worker_samples_the_same_words(ml_settings: MLSettings) -> None:
    clip = AUDIOEVAL_DIR / "fr" / "pangrama.flac"
    first = _decodes(clip, ml_settings.ecg_data_dir, seed=0)
    again = _decodes(clip, ml_settings.ecg_data_dir, seed=0)
    assert len(first) == 2 and all(first), first
    assert first == again
