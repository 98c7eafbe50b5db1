"""Emotion: the documented default (VADER valence + prosodic arousal) and the HF loading code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from ml_server.pipeline.data import Audio
from ml_server.pipeline.emotion import (
    PROTOTYPES,
    HFEmotionClassifier,
    SegmentFeatures,
    classify_segments,
    score_point,
)

SR = 16_000


def seg(
    text: str, db: float, hz: float, speaker: str = "SPEAKER_00", t: float = 0.0
) -> SegmentFeatures:
    return SegmentFeatures(speaker, text, t, t + 1.0, db, hz)


def test_prototype_points_get_their_label() -> None:
    for label, (v, a) in PROTOTYPES.items():
        emotion = score_point(v, a)
        assert emotion.label == label
        assert set(emotion.scores) == set(PROTOTYPES)
        assert abs(sum(emotion.scores.values()) - 1) < 1e-3


def test_text_valence_and_prosodic_arousal() -> None:
    analyzer = SentimentIntensityAnalyzer()
    audio = Audio(np.zeros(SR * 10, dtype=np.float32))
    segments = [
        seg("The report is on the table.", -30, 120, t=0),
        seg("The meeting starts at noon.", -30, 120, t=1),
        seg("I love this, it is wonderful!", -30, 120, t=2),
        seg("I hate this, it is terrible and awful!", -16, 190, t=3),
        seg("This is sad and I am so sorry.", -42, 95, t=4),
        seg("The bus arrives later today.", -30, 120, t=5),
    ]
    labels = [e.label for e in classify_segments(segments, audio, analyzer)]
    assert labels == ["neutral", "neutral", "happy", "angry", "sad", "neutral"]


def test_text_valence_follows_each_segments_language() -> None:
    """VADER reads English only: in French media an English turn still gets text valence,
    and in English media a French turn gets prosody alone."""
    analyzer = SentimentIntensityAnalyzer()
    audio = Audio(np.zeros(SR * 4, dtype=np.float32))
    english = SegmentFeatures("SPEAKER_00", "I love this!", 0, 1, -30, 120, language="en")
    french = SegmentFeatures("SPEAKER_01", "J'adore ça !", 2, 3, -30, 120, language="fr")
    untagged = SegmentFeatures("SPEAKER_00", "I love this!", 1, 2, -30, 120)
    in_french = classify_segments([english, french, untagged], audio, analyzer, language="fr")
    assert [e.method for e in in_french] == ["text+prosody", "prosody", "prosody"]
    in_english = classify_segments([english, french, untagged], audio, analyzer, language="en")
    assert [e.method for e in in_english] == ["text+prosody", "prosody", "text+prosody"]
    assert in_english[0].label == "happy"


def test_missing_prosody_is_fine() -> None:
    analyzer = SentimentIntensityAnalyzer()
    audio = Audio(np.zeros(SR, dtype=np.float32))
    [e] = classify_segments([SegmentFeatures("SPEAKER_00", "", 0, 0, None, None)], audio, analyzer)
    assert e.label == "neutral"


@pytest.fixture(scope="module")
def tiny_hf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised Wav2Vec2 audio classifier saved to a temp dir."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("tiny-emotion")
    labels = ["angry", "happy", "neutral", "sad"]
    config = transformers.Wav2Vec2Config(
        vocab_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
        classifier_proj_size=8,
        id2label=dict(enumerate(labels)),
        label2id={lab: i for i, lab in enumerate(labels)},
    )
    transformers.Wav2Vec2ForSequenceClassification(config).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=SR).save_pretrained(folder)
    return folder


def test_hf_audio_classifier_loads_from_folder_and_scores(tiny_hf_model: Path) -> None:
    classifier = HFEmotionClassifier(str(tiny_hf_model))
    assert classifier.labels == ["angry", "happy", "neutral", "sad"]
    rng = np.random.default_rng(3)
    audio = Audio((0.1 * rng.standard_normal(SR * 3)).astype(np.float32))
    segments = [
        SegmentFeatures("SPEAKER_00", "hello", 0.0, 1.5, -20, 200),
        SegmentFeatures("SPEAKER_01", "x", 2.0, 2.05, -20, None),  # shorter than the conv stack
    ]
    emotions = classify_segments(segments, audio, SentimentIntensityAnalyzer(), classifier)
    for e in emotions:
        assert set(e.scores) == set(classifier.labels)
        assert e.label in classifier.labels
        assert abs(sum(e.scores.values()) - 1) < 1e-3
        assert e.score == max(e.scores.values())


def test_hf_loading_never_downloads(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    with pytest.raises(OSError):
        HFEmotionClassifier("someone/not-in-the-local-cache")
    with pytest.raises(OSError):
        HFEmotionClassifier(str(tmp_path))
