"""Emotion stage: one {label, score, scores} per segment.

Default method (no speech-emotion model ships in any package, so nothing is pretended):
valence from the segment's text with VADER (lexicon + rules, MIT), arousal from prosody — the
segment's loudness (dB) and pitch (semitones) relative to the same speaker's median over the
whole media. The (valence, arousal) point is scored against five prototypes on the
valence/arousal plane (Russell's circumplex) and the scores are a softmax of negative squared
distances:

    neutral (0, 0)  happy (0.6, 0.2)  excited (0.5, 0.8)  angry (-0.6, 0.7)  sad (-0.6, -0.5)

So a neutral label means "nothing stands out", not "the model is sure". With one segment per
speaker, arousal is 0 (no baseline to compare with).

VADER's lexicon is English: on other languages it scores nearly every text 0, which would read
as "neutral valence" when it means "unknown". So for a transcript in any other language the
valence axis is dropped and the point is scored on arousal alone, against prototypes that
arousal can tell apart: calm (-0.5), neutral (0), excited (0.8). Each emotion says which method
gave it (`method`: `text+prosody`, `prosody` or `classifier`).

`ML_EMOTION_MODEL` instead loads a Hugging Face audio-classification model (a local folder or a
name already in the local cache; never downloaded) and classifies each segment's audio; its
`id2label` labels become the labels.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from ecg_protocol import Emotion
from ml_server.pipeline.data import Audio

PROTOTYPES: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "happy": (0.6, 0.2),
    "excited": (0.5, 0.8),
    "angry": (-0.6, 0.7),
    "sad": (-0.6, -0.5),
}
# Arousal-only prototypes, at the arousal of the 2-D ones they stand for (sad → calm).
AROUSAL_PROTOTYPES: dict[str, float] = {"calm": -0.5, "neutral": 0.0, "excited": 0.8}
TEXT_VALENCE_LANGUAGES = frozenset({"en"})  # VADER's lexicon and rules are English
_TEMPERATURE = 0.15
_DB_SCALE = 6.0  # dB above the speaker's median that counts as clearly louder
_ST_SCALE = 3.0  # semitones above the speaker's median that count as clearly higher


@dataclass(frozen=True, slots=True)
class SegmentFeatures:
    """What the emotion stage needs to know about one segment."""

    speaker: str
    text: str
    start: float
    end: float
    volume_db: float | None  # mean over words
    pitch_hz: float | None  # median over voiced words
    language: str | None = None  # the segment's own; None: the media's


class HFEmotionClassifier:
    """A Hugging Face audio-classification model, loaded once per process."""

    def __init__(self, name_or_path: str, device: str = "cpu") -> None:
        # Imported here: transformers is the optional `hf` extra.
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        self.name = name_or_path
        self.device = device
        self.extractor: Any = AutoFeatureExtractor.from_pretrained(  # type: ignore[no-untyped-call]
            name_or_path, local_files_only=True
        )
        self.model: Any = AutoModelForAudioClassification.from_pretrained(
            name_or_path, local_files_only=True
        )
        self.model.to(device)
        self.model.eval()
        id2label: dict[int, str] = self.model.config.id2label
        self.labels = [str(id2label[i]) for i in range(len(id2label))]

    def classify(self, samples: np.ndarray, sample_rate: int) -> dict[str, float]:
        """Label probabilities for one clip."""
        import torch

        # Convolutional front ends need a minimum length; pad short clips with silence.
        min_len = sample_rate // 2
        if samples.shape[0] < min_len:
            samples = np.pad(samples, (0, min_len - samples.shape[0]))
        inputs = self.extractor(samples, sampling_rate=sample_rate, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.inference_mode():
            logits = self.model(**inputs).logits[0]
        probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return {lab: round(float(p), 4) for lab, p in zip(self.labels, probs, strict=True)}


def _baselines(segments: Sequence[SegmentFeatures]) -> dict[str, tuple[float | None, float | None]]:
    vols: dict[str, list[float]] = defaultdict(list)
    pitches: dict[str, list[float]] = defaultdict(list)
    for s in segments:
        if s.volume_db is not None:
            vols[s.speaker].append(s.volume_db)
        if s.pitch_hz is not None:
            pitches[s.speaker].append(s.pitch_hz)
    speakers = {s.speaker for s in segments}
    return {
        sp: (
            float(np.median(vols[sp])) if vols[sp] else None,
            float(np.median(pitches[sp])) if pitches[sp] else None,
        )
        for sp in speakers
    }


def arousal(seg: SegmentFeatures, base_db: float | None, base_hz: float | None) -> float:
    """Prosodic arousal in [-1, 1] relative to the speaker's baseline."""
    z = 0.0
    if seg.volume_db is not None and base_db is not None:
        z += (seg.volume_db - base_db) / _DB_SCALE
    if seg.pitch_hz is not None and base_hz is not None and base_hz > 0:
        z += 12 * math.log2(seg.pitch_hz / base_hz) / _ST_SCALE
    return math.tanh(z / 2)


def _softmax(logits: dict[str, float], method: str) -> Emotion:
    top = max(logits.values())
    exp = {lab: math.exp(x - top) for lab, x in logits.items()}
    total = sum(exp.values())
    scores = {lab: round(e / total, 4) for lab, e in exp.items()}
    label = max(scores, key=lambda k: scores[k])
    return Emotion(label=label, score=scores[label], scores=scores, method=method)


def score_point(valence: float, arousal_: float) -> Emotion:
    """Softmax over the prototypes of the (valence, arousal) point."""
    logits = {
        lab: -((valence - v) ** 2 + (arousal_ - a) ** 2) / _TEMPERATURE
        for lab, (v, a) in PROTOTYPES.items()
    }
    return _softmax(logits, "text+prosody")


def score_arousal(arousal_: float) -> Emotion:
    """Softmax over the arousal-only prototypes (no text valence)."""
    logits = {lab: -((arousal_ - a) ** 2) / _TEMPERATURE for lab, a in AROUSAL_PROTOTYPES.items()}
    return _softmax(logits, "prosody")


def classify_segments(
    segments: Sequence[SegmentFeatures],
    audio: Audio,
    sentiment: SentimentIntensityAnalyzer,
    classifier: HFEmotionClassifier | None = None,
    language: str | None = "en",
) -> list[Emotion]:
    """One emotion per segment: the HF model when given, else valence + arousal for a segment
    in English (its own language, else the media's `language`), else arousal alone."""
    if classifier is not None:
        out: list[Emotion] = []
        sr = audio.sample_rate
        for s in segments:
            clip = audio.window(int(s.start * sr), math.ceil(s.end * sr))
            scores = classifier.classify(clip, sr)
            label = max(scores, key=lambda k: scores[k])
            out.append(
                Emotion(label=label, score=scores[label], scores=scores, method="classifier")
            )
        return out
    base = _baselines(segments)
    return [
        score_point(
            float(sentiment.polarity_scores(s.text)["compound"]) if s.text else 0.0,
            arousal(s, *base[s.speaker]),
        )
        if (s.language or language) in TEXT_VALENCE_LANGUAGES
        else score_arousal(arousal(s, *base[s.speaker]))
        for s in segments
    ]
