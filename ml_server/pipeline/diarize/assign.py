"""Who said each word: units of words clustered into the counted speakers, a Viterbi
re-segmentation of the windows, each word given the speaker whose windows cover it most
(whisperX's assign_word_speakers), voted per unit."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ml_server.pipeline.data import (
    AsrSegment,
    AsrWord,
    Audio,
    Diarization,
    SpeakerTurn,
    SpeechRegion,
)
from ml_server.pipeline.diarize.count import Labels, _unit, cluster_all, count_speakers
from ml_server.pipeline.diarize.embed import (
    SpeakerEmbeddings,
    SpeakerEncoder,
    Window,
    embed_speech,
    speech_regions,
)
from ml_server.pipeline.diarize.resegment import resegment
from ml_server.pipeline.diarize.settings import DiarizeSettings
from ml_server.pipeline.diarize.speaker_units import Unit, region_units, unit_embeddings, word_units


def assign_word_speakers(
    words: list[AsrWord], windows: list[Window], labels: npt.NDArray[np.int64]
) -> tuple[list[int], list[float]]:
    """Speaker of each word: the label with the most window overlap; nearest window if none.

    Returns the raw labels and the winning share of the vote (a confidence in [0, 1]).
    """
    if not windows:
        return [0] * len(words), [0.0] * len(words)
    starts = np.array([w.start for w in windows])
    ends = np.array([w.end for w in windows])
    centres = (starts + ends) / 2
    k = int(labels.max()) + 1
    speakers: list[int] = []
    confidence: list[float] = []
    for w in words:
        ws, we = w.start, max(w.end, w.start + 0.02)
        overlap = np.clip(np.minimum(ends, we) - np.maximum(starts, ws), 0.0, None)
        if overlap.sum() <= 0:
            nearest = int(np.argmin(np.abs(centres - (ws + we) / 2)))
            speakers.append(int(labels[nearest]))
            confidence.append(0.5)
            continue
        # Windows centred on the word know it best; weight by closeness as well as overlap.
        weight = overlap / (1.0 + np.abs(centres - (ws + we) / 2))
        votes = np.bincount(labels, weights=weight, minlength=k)
        best = int(np.argmax(votes))
        speakers.append(best)
        confidence.append(float(votes[best] / votes.sum()))
    return speakers, confidence


def segment_starts(segments: Sequence[AsrSegment]) -> set[int]:
    """Index (in the flat word list) of each ASR segment's first word."""
    out: set[int] = set()
    i = 0
    for s in segments:
        if s.words:
            out.add(i)
        i += len(s.words)
    return out


def _units(
    speech: SpeakerEmbeddings, words: list[AsrWord], starts: set[int], opts: DiarizeSettings
) -> list[Unit]:
    if words:
        return word_units(words, starts, speech_regions(speech), opts.unit_pause_s, opts.max_unit_s)
    return region_units(speech_regions(speech), opts.max_unit_s)


def _unit_vote(
    units: list[Unit], raw: list[int], conf: list[float], k: int
) -> tuple[list[int], list[float]]:
    """Each unit's words take the unit's majority label (confidence-weighted); a unit holds
    one voice, so a lone dissenting word is a window-grid artefact."""
    labels, confidence = list(raw), list(conf)
    for u in units:
        if not u.words:
            continue
        votes = np.bincount([raw[i] for i in u.words], [conf[i] for i in u.words], minlength=k)
        best = int(np.argmax(votes))
        share = float(votes[best] / max(votes.sum(), 1e-12))
        for i in u.words:
            if labels[i] != best:
                labels[i], confidence[i] = best, share
    return labels, confidence


def assign_speakers(
    speech: SpeakerEmbeddings,
    words: list[AsrWord],
    opts: DiarizeSettings,
    starts: set[int] | None = None,
) -> Diarization:
    """Speaker of every word and window, ids ordered by first appearance.

    The count comes from the speech alone (`count_speakers`); units (words cut at pauses and at
    ASR segment starts `starts`, or VAD regions without a transcript) are clustered into that
    many speakers; a Viterbi pass over the windows lets turns follow the voice; words vote per
    unit.
    """
    if not speech.windows:
        raw, conf = assign_word_speakers(words, [], np.zeros(0, dtype=np.int64))
        return _diarization(raw, conf, speech.windows, np.zeros(0, dtype=np.int64))
    count = count_speakers(speech, opts)
    opts = dataclasses.replace(opts, min_speakers=count, max_speakers=count)
    units = _units(speech, words, starts or set(), opts)
    w_starts = np.array([w.start for w in speech.windows])
    w_ends = np.array([w.end for w in speech.windows])
    x = unit_embeddings(units, w_starts, w_ends, speech.embeddings)
    weights = np.array([u.weight for u in units])
    unit_labels = cluster_all(x, opts, weights)
    k = int(unit_labels.max()) + 1
    models = np.stack(
        [_unit((x[unit_labels == j] * weights[unit_labels == j, None]).sum(0)) for j in range(k)]
    )
    if opts.reseg_iterations > 0 and k > 1:
        path = resegment(
            speech.embeddings, models, opts.reseg_scale, opts.reseg_penalty, opts.reseg_iterations
        )
    else:
        path = np.argmax(speech.embeddings.astype(np.float64) @ models.T, axis=1).astype(np.int64)
    raw, conf = assign_word_speakers(words, speech.windows, path)
    raw, conf = _unit_vote(units, raw, conf, k)
    if len(set(raw) | set(path.tolist())) < k:
        # Re-segmentation emptied a counted speaker: keep the clustering's labels.
        path = unit_labels[np.argmax(speech.embeddings @ x.T, axis=1)]
        raw = [0] * len(words)
        for u, lab in zip(units, unit_labels.tolist(), strict=True):
            for i in u.words:
                raw[i] = lab
    return _diarization(raw, conf, speech.windows, path)


def _diarization(
    raw: list[int], conf: list[float], windows: list[Window], path: Labels
) -> Diarization:
    """Relabel by first appearance (words first, then windows no word touched)."""
    order: dict[int, int] = {}
    for lab in [*raw, *path.tolist()]:
        order.setdefault(int(lab), len(order))
    turns = tuple(
        SpeakerTurn(start=w.start, end=w.end, speaker=order[int(lab)])
        for w, lab in zip(windows, path.tolist(), strict=True)
    )
    return Diarization(
        word_speakers=tuple(order[s] for s in raw),
        word_confidence=tuple(round(c, 3) for c in conf),
        num_speakers=len(order),
        turns=turns,
    )


def diarize(
    audio: Audio,
    regions: list[SpeechRegion],
    words: list[AsrWord],
    opts: DiarizeSettings,
    encoder: SpeakerEncoder,
    starts: set[int] | None = None,
) -> Diarization:
    """Speaker of every word, ids ordered by first appearance."""
    return assign_speakers(embed_speech(audio, regions, opts, encoder), words, opts, starts)
