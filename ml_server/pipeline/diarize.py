"""Diarization stage: GE2E speaker embeddings (resemblyzer) over sliding windows inside speech;
then speaker-homogeneous units (words cut at pauses and ASR segments, `speaker_units.py`)
clustered (Ward tree) with a silhouette-chosen count, a Viterbi re-segmentation of the windows
(`resegment.py`), and each word given the speaker whose windows cover it most (whisperX's
assign_word_speakers), voted per unit.

Windows go through the encoder in batches (mel front end per batch, so memory stays bounded
on long media); the pipeline runs this part on a second thread while transcription runs.
Method, calibration and figures: docs/pipeline.md, "Diarization".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
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
    PCM_SCALE,
    AsrSegment,
    AsrWord,
    Audio,
    Diarization,
    SpeakerTurn,
    SpeechRegion,
    mean_square,
)
from ml_server.pipeline.errors import Cancelled
from ml_server.pipeline.gap_count import gap_count
from ml_server.pipeline.resegment import resegment
from ml_server.pipeline.speaker_units import (
    SECONDS_PER_WORD,
    Unit,
    region_units,
    unit_embeddings,
    word_units,
)

MEL_FPS = 100  # resemblyzer's mel hop is 10 ms
WINDOW_S = partials_n_frames / MEL_FPS  # 1.6 s: what the encoder was trained on
_TARGET_DBFS = -30.0  # resemblyzer normalises utterances to this loudness
# resemblyzer's mel front end (its wav_to_mel_spectrogram), applied per batch of windows.
_N_FFT = sampling_rate * mel_window_length // 1000
_HOP = sampling_rate * mel_window_step // 1000

Embeddings = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]
Weights = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class DiarizeSettings:
    """How speakers are found. Every tuned number was chosen on the AMI `trn*` dev clips and
    checked on the held-out `dev*`/`tst*` clips (bench/bench_diarization.py --calibrate;
    docs/pipeline.md "Diarization")."""

    min_speakers: int | None = None
    max_speakers: int | None = None
    # Window hop: 0.8 s keeps one hour of speech under a minute of encoder time on one core.
    step_s: float = 0.8
    # Units: a new one starts after a pause this long, at an ASR segment or VAD region start,
    # or when it would grow past max_unit_s (the grid found pause 0.2–0.5 s alike on trn).
    unit_pause_s: float = 0.3
    max_unit_s: float = 6.0
    # More than one speaker only if the best cut's weighted silhouette beats this
    # (calibrated on trn from 0.1–0.3 for the count on speech units, below; the silhouette is
    # scale-free, so clean studio voices and far-field meeting voices share it, where a
    # distance threshold did not).
    min_silhouette: float = 0.15
    # The fewest speakers whose silhouette is within this of the best wins: with a dozen units
    # the silhouette of neighbouring counts differs by noise, and an invented speaker costs
    # more than a missed one (calibrated on trn from 0 / 0.03 / 0.06).
    count_tolerance: float = 0.03
    # A speaker with fewer words (or their estimate from speech time) than this is folded
    # into the nearest one: a caption with a wrong extra speaker is worse than a missed
    # interjection (calibrated on trn from 6 / 10 / 20).
    min_speaker_words: float = 10.0
    # Re-segmentation (Viterbi over windows): emission = scale × cosine; a speaker change
    # costs `reseg_penalty` (calibrated on trn; 0 iterations turns it off).
    reseg_scale: float = 10.0
    reseg_penalty: float = 0.5
    reseg_iterations: int = 2
    # Gap statistic (gap_count.py): a larger count it finds replaces the silhouette's.
    # `gap_references` uniform reference sets (0 turns it off) over the units' first
    # `gap_dims` principal components; k + 1 must beat k by `gap_z` spreads. Chosen on the trn
    # clips and seven espeak tuning sets no test uses (docs/pipeline.md "Diarization").
    gap_references: int = 10
    gap_dims: int = 4
    gap_z: float = 1.0
    max_auto_speakers: int = 10  # the count search's upper end without a max_speakers hint
    batch_size: int = 64
    max_cluster_units: int = 2000  # the tree is quadratic in memory: sample above this


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
    samples = audio.pcm  # int16: each batch of windows is made float below
    rms = float(np.sqrt(mean_square(audio)))  # blockwise: no float64 copy of hours of audio
    # resemblyzer normalises loudness before embedding; one gain for the whole signal keeps
    # windows comparable with each other.
    gain = np.float32(10 ** (_TARGET_DBFS / 20) / rms if rms > 1e-6 else 1.0)
    pcm_gain = gain / np.float32(PCM_SCALE)
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
            chunk = np.where(idx <= last, samples[np.minimum(idx, last)], 0).astype(np.float32)
            chunk *= pcm_gain
            mel = librosa.feature.melspectrogram(
                y=chunk, sr=audio.sample_rate, n_fft=_N_FFT, hop_length=_HOP, n_mels=mel_n_channels
            )  # (b, 40, frames)
            mels = np.ascontiguousarray(mel.transpose(0, 2, 1)[:, :partials_n_frames], np.float32)
            out.append(encoder(torch.from_numpy(mels).to(encoder.device)).cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def _unit(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


def _merge_into(labels: Labels, src: int, dst: int) -> Labels:
    out = labels.copy()
    out[out == src] = dst
    return out


def fold_small(
    x: npt.NDArray[np.float64],
    labels: Labels,
    weights: npt.NDArray[np.float64],
    min_weight: float,
    lo: int,
) -> Labels:
    """Fold the lightest cluster into the one with the most similar centroid while it weighs
    less than `min_weight` and more than `lo` clusters are left."""
    while True:
        ks = np.unique(labels)
        if len(ks) <= max(1, lo):
            return labels
        mass = np.array([weights[labels == k].sum() for k in ks])
        small = int(np.argmin(mass))
        if mass[small] >= min_weight:
            return labels
        cents = np.stack([_unit(x[labels == k].mean(axis=0)) for k in ks])
        sims = cents @ cents[small]
        sims[small] = -np.inf
        labels = _merge_into(labels, int(ks[small]), int(ks[int(np.argmax(sims))]))


def merge_to(x: npt.NDArray[np.float64], labels: Labels, hi: int) -> Labels:
    """Merge the two clusters with the most similar centroids until at most `hi` are left."""
    while len(ks := np.unique(labels)) > hi:
        cents = np.stack([_unit(x[labels == k].mean(axis=0)) for k in ks])
        sims = cents @ cents.T
        np.fill_diagonal(sims, -np.inf)
        i, j = divmod(int(np.argmax(sims)), len(ks))
        labels = _merge_into(labels, int(ks[i]), int(ks[j]))
    return labels


def _consecutive(labels: Labels) -> Labels:
    out: Labels = np.unique(labels, return_inverse=True)[1].astype(np.int64)
    return out


def count_bounds(opts: DiarizeSettings, n: int) -> tuple[int, int]:
    """(lo, hi): the speaker-count range the hints allow for `n` units (hints are hard)."""
    hi = min(n, opts.max_speakers or opts.max_auto_speakers)
    lo = min(max(1, opts.min_speakers or 1), hi)
    return lo, hi


def silhouette(distances: npt.NDArray[np.float64], labels: Labels, weights: Weights) -> float:
    """Weighted mean silhouette: how much nearer each item is to its own cluster than to the
    next one, relative to the larger of the two (scale-free: clean studio voices and far-field
    meeting voices sit at very different absolute distances). -1 for a single cluster."""
    ks, idx = np.unique(labels, return_inverse=True)
    if len(ks) < 2:
        return -1.0
    member = np.zeros((len(labels), len(ks)))
    member[np.arange(len(labels)), idx] = weights
    mass = member.sum(axis=0)
    sums = distances @ member  # (n, k): weighted distance sums to each cluster
    own_mass = mass[idx] - weights
    a = np.where(own_mass > 0, sums[np.arange(len(labels)), idx] / np.maximum(own_mass, 1e-12), 0)
    means = sums / np.maximum(mass, 1e-12)
    means[np.arange(len(labels)), idx] = np.inf
    b = means.min(axis=1)
    s = np.where(own_mass > 0, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float((s * weights).sum() / weights.sum())


def cluster(
    embeddings: Embeddings,
    opts: DiarizeSettings,
    weights: Weights | None = None,
) -> Labels:
    """Cluster labels (0-based, consecutive) with the speaker count chosen automatically.

    A Ward tree over the unit-length embeddings is cut into k = 2…max clusters; in each cut,
    clusters lighter than `min_speaker_words` (by `weights`, default 1 per row) fold into their
    nearest neighbour; among the cuts whose weighted silhouette beats `min_silhouette`, the one
    with the fewest speakers within `count_tolerance` of the best silhouette wins, else
    everything is one speaker. When the gap statistic finds more speakers, its cut wins (the
    silhouette prefers a coarse split when two voices are close). The count is always within
    [min_speakers, max_speakers].
    """
    n = embeddings.shape[0]
    lo, hi = count_bounds(opts, n)
    if n == 0 or hi <= 1:
        return np.zeros(n, dtype=np.int64)
    x = embeddings.astype(np.float64)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    # Ward (on unit vectors, so Euclidean ~ cosine) keeps clusters compact and balanced;
    # average linkage split lone outlier units off first, which the fold then undid, so the
    # cuts for 3 and 4 speakers often came back as 2.
    tree = linkage(x, method="ward")
    distances = np.clip(1.0 - x @ x.T, 0.0, 2.0)
    cuts: list[tuple[float, int, Labels]] = []
    for k in range(max(2, lo), hi + 1):
        cut = fcluster(tree, t=k, criterion="maxclust").astype(np.int64)
        labels = fold_small(x, cut, w, opts.min_speaker_words, lo)
        cuts.append((silhouette(distances, labels, w), len(np.unique(labels)), labels))
    chosen = _choose_cut(cuts, opts, lo, n)
    if opts.gap_references > 0:
        gap = gap_count(
            x,
            w,
            hi,
            lambda y, cut: fold_small(y, cut, w, opts.min_speaker_words, lo),
            opts.gap_references,
            opts.gap_dims,
            opts.gap_z,
        )
        if gap is not None and len(np.unique(gap)) > len(np.unique(chosen)):
            chosen = gap
    return _consecutive(merge_to(x, chosen, hi))


def _choose_cut(
    cuts: list[tuple[float, int, Labels]], opts: DiarizeSettings, lo: int, n: int
) -> Labels:
    """The fewest-speaker cut among those within `count_tolerance` of the best silhouette
    (all of them above `min_silhouette`); one speaker when none is, unless `lo` asks for more
    (then the best cut, whatever its score)."""
    if not cuts:
        return np.zeros(n, dtype=np.int64)
    top = max(score for score, _, _ in cuts)
    good = [c for c in cuts if c[0] > opts.min_silhouette and c[0] >= top - opts.count_tolerance]
    if not good:
        if lo <= 1:
            return np.zeros(n, dtype=np.int64)
        good = [max(cuts, key=lambda c: c[0])]
    return min(good, key=lambda c: c[1])[2]


def _cluster_all(
    embeddings: Embeddings, opts: DiarizeSettings, weights: npt.NDArray[np.float64]
) -> Labels:
    """Cluster an even sample of at most `max_cluster_units`, then label every unit by its
    nearest centroid (the tree is quadratic in memory; hours of media stay bounded)."""
    n = embeddings.shape[0]
    if n <= opts.max_cluster_units:
        return cluster(embeddings, opts, weights)
    pick = np.linspace(0, n - 1, opts.max_cluster_units).round().astype(np.intp)
    sample_labels = cluster(embeddings[pick], opts, weights[pick] * n / len(pick))
    k = int(sample_labels.max()) + 1
    cents = np.stack([embeddings[pick][sample_labels == c].mean(axis=0) for c in range(k)])
    labels: Labels = np.argmax(embeddings @ cents.T, axis=1).astype(np.int64)
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
    regions: tuple[SpeechRegion, ...] = ()


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
    return SpeakerEmbeddings(windows, embeddings, tuple(regions))


def segment_starts(segments: Sequence[AsrSegment]) -> set[int]:
    """Index (in the flat word list) of each ASR segment's first word."""
    out: set[int] = set()
    i = 0
    for s in segments:
        if s.words:
            out.add(i)
        i += len(s.words)
    return out


def _regions(speech: SpeakerEmbeddings) -> list[SpeechRegion]:
    return list(speech.regions) or [SpeechRegion(w.start, w.end) for w in speech.windows]


def _units(
    speech: SpeakerEmbeddings, words: list[AsrWord], starts: set[int], opts: DiarizeSettings
) -> list[Unit]:
    if words:
        return word_units(words, starts, _regions(speech), opts.unit_pause_s, opts.max_unit_s)
    return region_units(_regions(speech), opts.max_unit_s)


def speech_count(speech: SpeakerEmbeddings, opts: DiarizeSettings) -> int:
    """How many speakers talk, judged on the speech alone: VAD regions cut into units of at
    most `max_unit_s`, clustered with the automatic count within the hints.

    Never on the transcript: word units move with every difference in the ASR's words and
    times, and those differ between CPUs (CTranslate2's int8 arithmetic: MKL on Intel, oneDNN
    elsewhere); counted on word units, 2 of the 11 AMI dev clips changed count between the two
    paths on one machine, on speech units none did (docs/pipeline.md, "Diarization").
    """
    units = region_units(_regions(speech), opts.max_unit_s)
    starts = np.array([w.start for w in speech.windows])
    ends = np.array([w.end for w in speech.windows])
    x = unit_embeddings(units, starts, ends, speech.embeddings)
    labels = _cluster_all(x, opts, np.array([u.weight for u in units]))
    return int(labels.max()) + 1 if labels.size else 1


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


def _fold_few_word_speakers(
    speech: SpeakerEmbeddings,
    words: list[int],
    path: Labels,
    opts: DiarizeSettings,
) -> dict[int, int]:
    """Map each label to the one it is folded into: speakers left with fewer than
    `min_speaker_words` words after re-segmentation join the most similar speaker."""
    k = max([*path.tolist(), *words, 0]) + 1
    emb = speech.embeddings.astype(np.float64)
    labels = np.arange(k, dtype=np.int64)
    counts = np.bincount(np.asarray(words, dtype=np.int64), minlength=k).astype(np.float64)
    if not words:  # no transcript: weigh speakers by their windows' speech instead
        counts = np.bincount(path, minlength=k).astype(np.float64) * (
            opts.step_s / SECONDS_PER_WORD
        )
    present = [j for j in range(k) if (path == j).any() or counts[j] > 0]
    lo, _ = count_bounds(opts, len(present))
    cents = np.stack(
        [_unit(emb[path == j].mean(axis=0)) if (path == j).any() else emb[0] for j in present]
    )
    folded = fold_small(
        cents, np.arange(len(present), dtype=np.int64), counts[present], opts.min_speaker_words, lo
    )
    for i, j in enumerate(present):
        labels[j] = present[int(folded[i])]
    return {j: int(labels[j]) for j in range(k)}


def assign_speakers(
    speech: SpeakerEmbeddings,
    words: list[AsrWord],
    opts: DiarizeSettings,
    starts: set[int] | None = None,
) -> Diarization:
    """Speaker of every word and window, ids ordered by first appearance.

    Units (words cut at pauses and at ASR segment starts `starts`, or VAD regions without a
    transcript) are clustered with an automatic count; a Viterbi pass over the windows then
    lets turns follow the voice; words vote per unit; few-word speakers are folded away.
    """
    if not speech.windows:
        raw, conf = assign_word_speakers(words, [], np.zeros(0, dtype=np.int64))
        return _diarization(raw, conf, speech.windows, np.zeros(0, dtype=np.int64))
    if words:
        # The count comes from the speech alone; the words only place the turns.
        count = speech_count(speech, opts)
        opts = dataclasses.replace(opts, min_speakers=count, max_speakers=count)
    units = _units(speech, words, starts or set(), opts)
    w_starts = np.array([w.start for w in speech.windows])
    w_ends = np.array([w.end for w in speech.windows])
    x = unit_embeddings(units, w_starts, w_ends, speech.embeddings)
    weights = np.array([u.weight for u in units])
    unit_labels = _cluster_all(x, opts, weights)
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
    fold = _fold_few_word_speakers(speech, raw, path, opts)
    raw = [fold[r] for r in raw]
    path = np.array([fold[int(p)] for p in path], dtype=np.int64)
    lo, _ = count_bounds(opts, len(units))
    if len(set(raw) | set(path.tolist())) < lo:
        # Re-segmentation emptied a speaker the hints ask for: keep the clustering's labels.
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
    encoder: VoiceEncoder,
    starts: set[int] | None = None,
) -> Diarization:
    """Speaker of every word, ids ordered by first appearance."""
    return assign_speakers(embed_speech(audio, regions, opts, encoder), words, opts, starts)
