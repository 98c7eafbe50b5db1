"""Diarization on real far-field meeting speech: five AMI clips (tests/data/ami, README there).

Counts must be in range (every reference speaker with ≥ 2 s found, none invented beyond the
clip's speakers) and words must go to the right speaker, with margins well below what was
measured (docs/benchmarks.md): the pipeline is deterministic, so load cannot move these.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.bench_diarization import (
    MIN_SPEAKER_S,
    HypWord,
    read_rttm,
    speech_seconds,
    word_accuracy,
)
from ml_server.models import Models
from ml_server.pipeline import PipelineOptions, run_pipeline

DATA = Path(__file__).resolve().parents[1] / "data" / "ami"

# clip → least share of words to the right speaker (measured 2026-12-01: dev01 0.87, trn06 0.94,
# trn03 0.95, dev00 0.95, trn08 0.76)
CASES = {"dev01": 0.75, "trn06": 0.85, "trn03": 0.85, "dev00": 0.85, "trn08": 0.65}


@pytest.mark.parametrize("clip", list(CASES))
def test_real_meeting_clip(clip: str, models: Models) -> None:
    turns = read_rttm(DATA / "reference.rttm")[clip]
    result = run_pipeline(DATA / f"{clip}.wav", options=PipelineOptions(), models=models)
    words = [HypWord(w.start, w.end, w.speaker_id or "") for s in result.segments for w in s.words]
    seconds = speech_seconds(turns)
    needed = sum(1 for v in seconds.values() if v >= MIN_SPEAKER_S)
    found = len({w.speaker for w in words})
    right, total, _ = word_accuracy(words, turns)
    assert total >= 30, f"{clip}: only {total} words"
    assert needed <= found <= len(seconds), f"{clip}: {found} speakers, {right}/{total} words"
    assert right / total >= CASES[clip], f"{clip}: {right}/{total} words to the right speaker"
