"""Diarization stage: GE2E speaker embeddings (resemblyzer) over sliding windows inside speech,
agglomerative clustering on cosine distance with an automatic speaker count, and a pure merge
that gives each word the speaker whose windows cover it most (whisperX's assign_word_speakers).

Windows go through the encoder in batches (mel front end per batch, so memory stays bounded
on long media); the pipeline runs this part on a second thread while transcription runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import librosa
import numpy as np
import numpy.typing as npt
import torch
from resemblyzer import VoiceEncoder
from resemblyzer.hparams import (
    mel_n_channels,
    mel_window_length,
    mel_window_step,
    partials_n_frames,
    sampling_rate,
)
from scipy.cluster.hierarchy import fcluster, linkage

from ecg_protocol import Stage
from ml_server.pipeline.data import (
    AsrWord,
    Audio,
    Diarization,
    SpeakerTurn,
    SpeechRegion,
    mean_square,
)
from ml_server.pipeline.errors import Cancelled

MEL_FPS = 100  # resemblyzer's mel hop is 10 ms
WINDOW_S = partials_n_frames / MEL_FPS  # 1.6 s: what the encoder was trained on
_TARGET_DBFS = -30.0  # resemblyzer normalises utterances to this loudness
# resemblyzer's mel front end (its wav_to_mel_spectrogram), applied per batch of windows.
_N_FFT = sampling_rate * mel_window_length // 1000
_HOP = sampling_rate * mel_window_step // 1000

Embeddings = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class DiarizeSettings:
    min_speakers: int | None = None
    max_speakers: int | None = None
    step_s: float = 0.8
    # Centroids at least this cosine-similar are one voice (GE2E: same speaker ≳ 0.85,
    # different speakers ≲ 0.7 on our clips).
    merge_similarity: float = 0.78
    overcluster: int = 12
    min_cluster_fraction: float = 0.05  # smaller clusters are folded into a neighbour
    max_auto_speakers: int = 10
    batch_size: int = 64
    max_cluster_windows: int = 2000


@dataclass(frozen=True, slots=True)
class Window:
    start: float
    end: float


def speech_windows(regions: list[SpeechRegion], duration: float, step_s: float) -> list[Window]:
    """1.6 s windows every `step_s` inside each region (one centred window for a short one)."""
    out: list[Window] = []
    for r in regions:
        length = r.end - r.start
        if length <= WINDOW_S:
            mid = (r.start + r.end) / 2
            start = min(max(0.0, mid - WINDOW_S / 2), max(0.0, duration - WINDOW_S))
            out.append(Window(start, start + WINDOW_S))
            continue
        starts = np.arange(r.start, r.end - WINDOW_S + 1e-6, step_s)
        if r.end - WINDOW_S - starts[-1] > step_s / 2:
            starts = np.append(starts, r.end - WINDOW_S)
        out.extend(Window(float(s), float(s) + WINDOW_S) for s in starts)
    return out


def embed_windows(
    audio: Audio,
    windows: list[Window],
    encoder: VoiceEncoder,
    batch_size: int = 64,
    should_stop: Callable[[], bool] | None = None,
) -> Embeddings:
    """L2-normalised speaker embedding of each window, shape (n, 256).

    Mel spectrograms are computed per batch of windows (not for the whole signal at once), so
    memory stays bounded on hours of media. `should_stop` is polled between batches.
    """
    if not windows:
        return np.zeros((0, 256), dtype=np.float32)
    samples = audio.samples
    rms = float(np.sqrt(mean_square(samples)))  # blockwise: no float64 copy of hours of audio
    # resemblyzer normalises loudness before embedding; one gain for the whole signal keeps
    # windows comparable with each other.
    gain = np.float32(10 ** (_TARGET_DBFS / 20) / rms if rms > 1e-6 else 1.0)
    span = partials_n_frames * _HOP
    starts = np.array([round(w.start * audio.sample_rate) for w in windows])
    # Past the end reads as silence; indices are clipped instead of padding (copying) the audio.
    last = samples.shape[0] - 1
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for i in range(0, len(windows), batch_size):
            if should_stop is not None and should_stop():
                raise Cancelled(Stage.DIARIZE)
            idx = starts[i : i + batch_size, None] + np.arange(span)[None, :]
            chunk = np.where(idx <= last, samples[np.minimum(idx, last)], 0.0).astype(np.float32)
            chunk *= gain
            mel = librosa.feature.melspectrogram(
                y=chunk, sr=audio.sample_rate, n_fft=_N_FFT, hop_length=_HOP, n_mels=mel_n_channels
            )  # (b, 40, frames)
            mels = np.ascontiguousarray(mel.transpose(0, 2, 1)[:, :partials_n_frames], np.float32)
            out.append(encoder(torch.from_numpy(mels).to(encoder.device)).cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def cluster(embeddings: Embeddings, opts: DiarizeSettings) -> npt.NDArray[np.int64]:
    """Cluster labels (0-based) with the speaker count chosen automatically within the hints.

    An average-linkage tree (cosine) is over-cut into many clusters; clusters too small to be
    a speaker are folded into their nearest neighbour; then the two clusters with the most
    similar centroids merge while that similarity is above `merge_similarity` (the same
    voice) or there are more than `max_speakers`, never going below `min_speakers`.
    Finally every window moves to its nearest centroid.
    """
    n = embeddings.shape[0]
    hi = min(n, opts.max_speakers or opts.max_auto_speakers)
    lo = min(max(1, opts.min_speakers or 1), hi)
    if n == 0 or hi <= 1:
        return np.zeros(n, dtype=np.int64)
    x = embeddings.astype(np.float64)
    z = linkage(x, method="average", metric="cosine")
    k0 = min(n, max(opts.overcluster, hi))
    groups = [
        np.flatnonzero(lab == c)
        for lab in [fcluster(z, t=k0, criterion="maxclust")]
        for c in np.unique(lab)
    ]
    min_size = max(2, int(opts.min_cluster_fraction * n))

    def centroid(idx: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        v = x[idx].mean(axis=0)
        out: npt.NDArray[np.float64] = v / max(float(np.linalg.norm(v)), 1e-12)
        return out

    while len(groups) > 1:
        cents = np.stack([centroid(g) for g in groups])
        sims = cents @ cents.T
        np.fill_diagonal(sims, -np.inf)
        sizes = np.array([len(g) for g in groups])
        small = np.flatnonzero(sizes < min_size)
        if small.size and len(groups) > lo and small.size < len(groups):
            i = int(small[np.argmin(sizes[small])])
            big = np.flatnonzero(sizes >= min_size)
            j = int(big[np.argmax(sims[i, big])])
        else:
            flat = int(np.argmax(sims))
            i, j = divmod(flat, len(groups))
            if len(groups) <= lo or (sims[i, j] < opts.merge_similarity and len(groups) <= hi):
                break
        merged = np.concatenate([groups[i], groups[j]])
        groups = [g for k, g in enumerate(groups) if k not in (i, j)] + [merged]
    labels = np.zeros(n, dtype=np.int64)
    for c, g in enumerate(groups):
        labels[g] = c
    return _refine(embeddings, labels)


def _refine(embeddings: Embeddings, labels: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Reassign windows to the nearest centroid (two passes); tree cuts are greedy."""
    k = int(labels.max()) + 1
    for _ in range(2):
        cents = np.stack([embeddings[labels == c].mean(axis=0) for c in range(k)])
        cents /= np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-9)
        new = np.argmax(embeddings @ cents.T, axis=1).astype(np.int64)
        # Never empty a cluster (the count hints may have asked for it).
        if len(np.unique(new)) < k:
            break
        labels = new
    return labels


def _cluster_all(embeddings: Embeddings, opts: DiarizeSettings) -> npt.NDArray[np.int64]:
    """Cluster an even sample of at most `max_cluster_windows`, then label every window by
    its nearest centroid (the tree is quadratic in memory; hours of media stay bounded)."""
    n = embeddings.shape[0]
    if n <= opts.max_cluster_windows:
        return cluster(embeddings, opts)
    pick = np.linspace(0, n - 1, opts.max_cluster_windows).round().astype(np.intp)
    sample_labels = cluster(embeddings[pick], opts)
    k = int(sample_labels.max()) + 1
    cents = np.stack([embeddings[pick][sample_labels == c].mean(axis=0) for c in range(k)])
    labels: npt.NDArray[np.int64] = np.argmax(embeddings @ cents.T, axis=1).astype(np.int64)
    return labels


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


@dataclass(frozen=True, slots=True)
class SpeakerEmbeddings:
    """Windows inside speech and their embeddings (the part that needs no transcript)."""

    windows: list[Window]
    embeddings: Embeddings


def embed_speech(
    audio: Audio,
    regions: list[SpeechRegion],
    opts: DiarizeSettings,
    encoder: VoiceEncoder,
    should_stop: Callable[[], bool] | None = None,
) -> SpeakerEmbeddings:
    """Embed sliding windows over the speech regions."""
    windows = speech_windows(regions, audio.duration, opts.step_s)
    embeddings = embed_windows(audio, windows, encoder, opts.batch_size, should_stop)
    return SpeakerEmbeddings(windows, embeddings)


def assign_speakers(
    speech: SpeakerEmbeddings, words: list[AsrWord], opts: DiarizeSettings
) -> Diarization:
    """Cluster the windows and give every word a speaker, ids ordered by first appearance."""
    labels = _cluster_all(speech.embeddings, opts)
    raw, conf = assign_word_speakers(words, speech.windows, labels)
    # Relabel by first appearance (words first, then windows no word touched).
    order: dict[int, int] = {}
    for lab in [*raw, *labels.tolist()]:
        order.setdefault(int(lab), len(order))
    turns = tuple(
        SpeakerTurn(start=w.start, end=w.end, speaker=order[int(lab)])
        for w, lab in zip(speech.windows, labels.tolist(), strict=True)
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
    encoder: VoiceEncoder,
) -> Diarization:
    """Speaker of every word, ids ordered by first appearance."""
    return assign_speakers(embed_speech(audio, regions, opts, encoder), words, opts)
