"""Diarization: speaker-count hints on real voices; the word merge as a pure function."""

from __future__ import annotations

import numpy as np

from ml_server.models import Models
from ml_server.pipeline.data import AsrWord, SpeechRegion
from ml_server.pipeline.decode import decode
from ml_server.pipeline.diarize import (
    DiarizeSettings,
    Window,
    assign_word_speakers,
    cluster,
    diarize,
    embed_windows,
    speech_windows,
)
from ml_server.pipeline.vad import detect_speech
from tests.support.media import dialogue


def _dialogue_embeddings(models: Models) -> np.ndarray:
    audio = decode(dialogue("wav").path, max_duration_s=600)
    windows = speech_windows(detect_speech(audio), audio.duration, 0.4)
    return embed_windows(audio, windows, models.speaker_encoder)


def test_automatic_count_and_hints(models: Models) -> None:
    emb = _dialogue_embeddings(models)
    assert len(set(cluster(emb, DiarizeSettings()).tolist())) == 2
    assert len(set(cluster(emb, DiarizeSettings(max_speakers=1)).tolist())) == 1
    assert len(set(cluster(emb, DiarizeSettings(min_speakers=3)).tolist())) == 3
    assert len(set(cluster(emb, DiarizeSettings(min_speakers=2, max_speakers=2)).tolist())) == 2
    assert len(set(cluster(emb, DiarizeSettings(min_speakers=4, max_speakers=4)).tolist())) == 4


def test_one_voice_is_one_speaker(models: Models) -> None:
    media = dialogue("wav")
    audio = decode(media.path, max_duration_s=600)
    windows = [
        w
        for w in speech_windows(detect_speech(audio), audio.duration, 0.4)
        if media.nearest_speaker((w.start + w.end) / 2) == "A"
    ]
    emb = embed_windows(audio, windows, models.speaker_encoder)
    assert len(set(cluster(emb, DiarizeSettings()).tolist())) == 1


def test_hints_reach_the_result(models: Models) -> None:
    audio = decode(dialogue("wav").path, max_duration_s=600)
    regions = detect_speech(audio)
    words = [AsrWord(" w", r.start + 0.2, r.start + 0.5, 1.0) for r in regions]
    one = diarize(audio, regions, words, DiarizeSettings(max_speakers=1), models.speaker_encoder)
    assert set(one.word_speakers) == {0} and one.num_speakers == 1
    three = diarize(audio, regions, words, DiarizeSettings(min_speakers=3), models.speaker_encoder)
    assert three.num_speakers == 3
    assert three.word_speakers[0] == 0  # ids by first appearance


def test_assign_word_speakers_by_overlap() -> None:
    windows = [Window(0.0, 1.6), Window(0.4, 2.0), Window(3.0, 4.6), Window(3.4, 5.0)]
    labels = np.array([1, 1, 0, 0], dtype=np.int64)
    words = [
        AsrWord(" a", 0.5, 0.9, 1.0),
        AsrWord(" b", 3.5, 3.8, 1.0),
        AsrWord(" c", 2.2, 2.2, 1.0),  # outside every window: nearest one
        AsrWord(" d", 9.0, 9.2, 1.0),
    ]
    speakers, confidence = assign_word_speakers(words, windows, labels)
    assert speakers == [1, 0, 1, 0]
    assert confidence[0] == 1.0 and confidence[1] == 1.0


def test_no_speech_no_windows() -> None:
    assert speech_windows([], 10.0, 0.4) == []
    assert assign_word_speakers([], [], np.zeros(0, dtype=np.int64)) == ([], [])


def test_short_region_gets_one_centred_window() -> None:
    [w] = speech_windows([SpeechRegion(1.0, 1.5)], 10.0, 0.4)
    assert abs((w.start + w.end) / 2 - 1.25) < 1e-6
