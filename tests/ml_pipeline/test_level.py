"""Far too quiet media is raised for the models that listen, never for the measurements
(level.py)."""

from __future__ import annotations

import difflib
import math
from pathlib import Path

import numpy as np
import pytest

from ml_server.models import Models
from ml_server.pipeline import level
from ml_server.pipeline.data import Audio
from ml_server.pipeline.decode import decode
from ml_server.pipeline.run import PipelineOptions, run_pipeline
from tests.support.media import dialogue, write_wav


def _tone(peak_dbfs: float) -> Audio:
    t = np.arange(16_000) / 16_000
    return Audio(10 ** (peak_dbfs / 20) * np.sin(2 * np.pi * 300 * t))


def test_ordinary_levels_are_heard_as_they_are() -> None:
    audio = _tone(-20.0)
    assert level.listening_gain_db(audio) == 0.0
    assert level.for_listening(audio) is audio
    silence = Audio(np.zeros(16_000, dtype=np.int16))
    assert level.peak_dbfs(silence) == -math.inf
    assert level.for_listening(silence) is silence


def test_quiet_media_is_raised_to_the_target_within_the_cap() -> None:
    quiet = level.for_listening(_tone(-45.0))
    assert level.peak_dbfs(quiet) == pytest.approx(level.TARGET_PEAK_DBFS, abs=0.1)
    # Near-silence is raised by the cap only, so it stays quiet.
    faint = level.for_listening(_tone(-70.0))
    assert level.peak_dbfs(faint) == pytest.approx(-70.0 + level.MAX_GAIN_DB, abs=1.0)


def test_quiet_speech_is_read_and_measured_as_it_is(models: Models, tmp_path: Path) -> None:
    """The two-voice dialogue at a -57 dBFS peak: unraised, base detected another language and
    invented a sentence; raised, it reads the English, while volume_db stays the media's."""
    media = dialogue("wav")
    samples = decode(media.path, max_duration_s=600).window()
    quiet = samples * (10 ** (-57 / 20) / float(np.abs(samples).max()))
    path = write_wav(tmp_path / "quiet.wav", quiet)
    result = run_pipeline(path, options=PipelineOptions(), models=models)
    assert result.metadata.language == "en"
    said = " ".join(s.text for s in result.segments).lower().split()
    truth = media.text.lower().split()
    matcher = difflib.SequenceMatcher(a=truth, b=said, autojunk=False)
    assert sum(b.size for b in matcher.get_matching_blocks()) >= 0.6 * len(truth), said
    volumes = [w.volume_db for s in result.segments for w in s.words if w.volume_db is not None]
    assert volumes and max(volumes) < -50.0, max(volumes, default=None)
