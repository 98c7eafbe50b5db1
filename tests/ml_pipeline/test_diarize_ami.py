"""Diarization on real far-field meeting speech: five AMI clips (tests/data/ami, README there).

Counts must be in range (every reference speaker with ≥ 2 s found, none invented beyond the
clip's speakers) and words must go to the right speaker, with margins below what was measured
through both CTranslate2 int8 paths (docs/benchmarks.md). The count is decided on the speech
alone, so the ASR's int8 arithmetic cannot move it; the words, and so their share to the right
speaker, do move with it. trn08 is not asserted for its count: its best silhouette on speech
units is 0.152 against the 0.15 needed for a second speaker, so float rounding of another CPU
may land it on either side; its words are held to what one speaker would get.
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
from ml_server.pipeline.run import PipelineOptions, run_pipeline

DATA = Path(__file__).resolve().parents[1] / "data" / "ami"

# clip → least share of words to the right speaker (measured 2026-12-06, AMD EPYC with AVX-512,
# CT2_USE_MKL=0 / =1: dev01 0.87 / 0.87, trn06 0.94 / 0.94, trn03 0.95 / 0.86, dev00 0.95 / 0.91,
# trn08 0.76 / 0.60 with two speakers and 0.57 with one)
CASES = {"dev01": 0.75, "trn06": 0.85, "trn03": 0.75, "dev00": 0.65, "trn08": 0.45}
# Clips whose count is on the rule's edge (above): their words are checked, not their count.
EDGE = {"trn08"}


@pytest.mark.parametrize("clip", list(CASES))
def test_real_meeting_clip(clip: str, models: Models) -> None:
    turns = read_rttm(DATA / "reference.rttm")[clip]
    # Greedy decoding only: a window that falls back to sampling draws from CTranslate2's
    # per-thread generator, whose state depends on what this process decoded before (trn08's
    # Welsh first guess gave 0 or 7 words by test order). Without it the words are the same
    # whatever ran first.
    greedy = models.with_analysis(temperatures=(0.0,))
    result = run_pipeline(DATA / f"{clip}.wav", options=PipelineOptions(), models=greedy)
    words = [HypWord(w.start, w.end, w.speaker_id or "") for s in result.segments for w in s.words]
    seconds = speech_seconds(turns)
    needed = sum(1 for v in seconds.values() if v >= MIN_SPEAKER_S)
    found = len({w.speaker for w in words})
    right, total, _ = word_accuracy(words, turns)
    assert total >= 30, f"{clip}: only {total} words"
    if clip not in EDGE:
        assert needed <= found <= len(seconds), f"{clip}: {found} speakers, {right}/{total} words"
    # Edge clips included: a count may miss by one on the rule's edge, not run away.
    assert 1 <= found <= len(seconds) + 1, f"{clip}: {found} speakers"
    assert right / total >= CASES[clip], f"{clip}: {right}/{total} words to the right speaker"
    # Every word has a length (Whisper stacked or gave none to 3–7 words per clip: word_spans).
    flat = [w for seg in result.segments for w in seg.words]
    assert all(w.end > w.start for w in flat), [(w.word, w.start) for w in flat if w.end <= w.start]
