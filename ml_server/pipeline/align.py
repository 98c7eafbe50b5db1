"""Alignment stage: each word's start and end refined from the signal near Whisper's estimate.

No forced-alignment model loads here (the CTC aligners on PyPI fetch their weights at run time;
pocketsphinx's bundled HMM aligner costs more than the analysis may: docs/pipeline.md), so the
refinement is model-free and works on 10 ms frames:

1. level (dB) and speech/silence (a threshold set from the whole recording's level spread;
   above the mains hum, when the media has one); a boundary strength per frame =
   energy-valley depth + spectral flux (rise of log-mel bands);
2. starts: a dynamic programme over the words picks for each one a candidate frame near
   Whisper's start — a silence→speech edge or a strength peak — or keeps the estimate, so
   that the sum of (distance / `sigma_s` − strength) is least and starts stay in order, each at
   least `min_word_s` after the previous one;
3. ends: where the first pause (≥ `pause_s` of silence) after the start begins, or the next
   word's start less the silence just before it — never past the next word's start.

Only languages in `ALIGNED_LANGUAGES` (measured: bench/bench_alignment.py) are refined; others
keep Whisper's times, and `Aligned.method` says which happened (→ `metadata.word_timing`).
Words either way left with no length get one after diarization (`word_spans.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import librosa
import numpy as np
import numpy.typing as npt
import scipy.fft as sfft
from scipy.signal import butter, sosfilt, sosfiltfilt, welch

from ml_server.pipeline.data import AsrSegment, AsrWord, Audio, Transcript

ALIGNED_LANGUAGES = frozenset({"en"})
METHOD = "energy+spectral refinement"
WHISPER_ONLY = "whisper"

F64 = npt.NDArray[np.float64]
Sos = npt.NDArray[np.float64]  # second-order sections (scipy.signal)

MAINS_HZ = (50.0, 60.0)

_HOP_S = 0.01
_WIN_S = 0.02
_N_FFT = 512
_N_MELS = 24


@dataclass(frozen=True, slots=True)
class AlignSettings:
    # Every number below was chosen on the "tune" split of bench/bench_alignment.py (its own
    # sentences and voices) and is reported on the "report" split and the gapped clip.
    whisper_lag_s: float = 0.1  # how late Whisper's starts run in running speech (median)
    search_s: float = 0.1  # how far from the (lag-corrected) estimate a start may move
    sigma_s: float = 0.03  # distance that costs as much as one unit of boundary strength
    keep_cost: float = 0.6  # cost of keeping Whisper's start instead of a candidate
    edge_search_s: float = 0.3  # ... and how far a silence→speech edge may be
    edge_sigma_s: float = 0.2  # distance that costs as much as an edge's strength
    edge_strength: float = 2.0  # a silence→speech edge is the surest word start
    valley_db: float = 10.0  # a valley this deep scores 1
    flux_db: float = 6.0  # a mean log-mel rise this large scores 1
    min_strength: float = 0.3  # weaker peaks are not candidates
    min_word_s: float = 0.05
    pause_s: float = 0.15  # silence this long ends a word even before the next one starts
    end_search_s: float = 0.3  # how far past Whisper's end a word may still end
    silence_below_peak_db: float = 40.0  # speech: within this of the loud (95th pct) level
    silence_above_floor_db: float = 12.0  # ... and this far above the quiet (5th pct) level
    # Mains hum (a ground loop) raises the quiet level, so the quieter stretches of words fall
    # under the silence threshold and words are cut short (a hum as loud as the speech cut
    # every word to 50 ms). When the media hums — 50 or 60 Hz stands this far above its
    # neighbours in the long-term spectrum — the level is measured above its harmonics up to
    # `hum_harmonics` (a high-pass at 275 / 330 Hz). Real recordings measured (13 AMI, 27
    # audioeval) stand at most 6.9 dB there; the tune split's hum, 15 dB under the speech,
    # 35–39 dB. Media without hum is measured as before, sample for sample.
    hum_prominence_db: float = 15.0
    hum_harmonics: int = 5


@dataclass(frozen=True, slots=True)
class Aligned:
    transcript: Transcript
    method: str  # METHOD, or WHISPER_ONLY when the language has no aligner


@dataclass(frozen=True, slots=True)
class _Frames:
    """Features of the frames of one stretch of audio; frame i is centred at t0 + i·hop."""

    t0: float
    speech: npt.NDArray[np.bool_]
    edge: npt.NDArray[np.bool_]  # 2 speech frames after 2 silent ones
    strength: F64

    def time(self, i: int) -> float:
        return self.t0 + i * _HOP_S

    def index(self, t: float) -> int:
        return int(np.clip(round((t - self.t0) / _HOP_S), 0, self.speech.size - 1))


def align_words(audio: Audio, transcript: Transcript, opts: AlignSettings | None = None) -> Aligned:
    """The transcript with refined word times; Whisper's own where the language has no aligner."""
    o = opts or AlignSettings()
    words = transcript.words
    if transcript.language not in ALIGNED_LANGUAGES:
        return Aligned(transcript, WHISPER_ONLY)
    if not words:
        return Aligned(transcript, METHOD)
    hum = _hum_filter(audio, o)
    threshold = _speech_threshold(audio, o, hum)
    per_word = [
        f
        for seg in transcript.segments
        if seg.words
        for f in [_frames(audio, seg, threshold, o, hum)] * len(seg.words)
    ]
    starts = _pick_starts(words, per_word, o)
    ends = _pick_ends(words, per_word, starts, audio.duration, o)
    it = iter(zip(starts, ends, strict=True))
    segments = []
    for seg in transcript.segments:
        new = tuple(replace(w, start=s, end=e) for w, (s, e) in zip(seg.words, it, strict=False))
        segments.append(
            replace(seg, start=new[0].start, end=new[-1].end, words=new) if new else seg
        )
    return Aligned(replace(transcript, segments=tuple(segments)), METHOD)


def _hum_filter(audio: Audio, o: AlignSettings) -> Sos | None:
    """A high-pass above the media's mains hum, or None when it has none (AlignSettings)."""
    sr = audio.sample_rate
    if audio.size < 2 * sr:
        return None
    # The long-term spectrum at 1 Hz resolution, from at most 8 stretches of 10 s spread
    # over the media (hum is steady; hours need not be read).
    piece = min(audio.size, 10 * sr)
    starts = np.linspace(0, audio.size - piece, min(8, max(1, audio.size // piece))).astype(int)
    power = np.mean(
        [welch(audio.window(a, a + piece), fs=sr, nperseg=sr)[1] for a in starts], axis=0
    )
    for mains in MAINS_HZ:
        i = round(mains)
        around = float(np.median(np.r_[power[i - 6 : i - 2], power[i + 3 : i + 7]]))
        if 10 * np.log10(power[i - 1 : i + 2].max() / max(around, 1e-20)) >= o.hum_prominence_db:
            # Above the last harmonic, not a notch at each: a notch a few Hz wide rings for
            # ~100 ms, which carries a word's level past its end.
            cutoff = (o.hum_harmonics + 0.5) * mains
            sos: Sos = butter(4, cutoff, btype="highpass", fs=sr, output="sos")
            return sos
    return None


def _speech_threshold(audio: Audio, o: AlignSettings, hum: Sos | None) -> float:
    """Frame level (dB) above which a frame is speech, from the recording's level spread."""
    hop = round(_HOP_S * audio.sample_rate)
    n = audio.size // hop
    if n == 0:
        return 0.0
    # Non-overlapping 10 ms frames, a minute at a time: hours of media need no full-size copy.
    block = hop * 6_000
    state = None if hum is None else np.zeros((hum.shape[0], 2))
    parts = []
    for a in range(0, n * hop, block):
        x = audio.window(a, min(a + block, n * hop)).astype(np.float64)
        if hum is not None:
            x, state = sosfilt(hum, x, zi=state)
        parts.append(np.square(x).reshape(-1, hop).mean(axis=1))
    mean_sq = np.concatenate(parts)
    quiet, loud = np.percentile(10 * np.log10(mean_sq + 1e-10), [5, 95])
    return float(max(quiet + o.silence_above_floor_db, loud - o.silence_below_peak_db))


def _level_db(x: F64, sr: int) -> F64:
    hop, win = round(_HOP_S * sr), round(_WIN_S * sr)
    if x.size < win:
        return np.zeros(0)
    energy = np.concatenate([[0.0], np.cumsum(x * x)])
    starts = np.arange(0, x.size - win + 1, hop)
    mean_sq = (energy[starts + win] - energy[starts]) / win
    out: F64 = 10 * np.log10(mean_sq + 1e-10)
    return out


def _frames(
    audio: Audio, seg: AsrSegment, threshold: float, o: AlignSettings, hum: Sos | None
) -> _Frames:
    """Speech mask and boundary strength over the segment's words plus the search margins."""
    sr = audio.sample_rate
    margin = max(o.search_s, o.edge_search_s, o.end_search_s) + _WIN_S
    t0 = max(0.0, min(w.start for w in seg.words) - margin - o.whisper_lag_s)
    t1 = min(audio.duration, max(w.end for w in seg.words) + margin)
    a = int(t0 * sr)
    x = audio.window(a, max(a, int(t1 * sr))).astype(np.float64)
    hop, win = round(_HOP_S * sr), round(_WIN_S * sr)
    x = np.pad(x, (0, max(0, win - x.size)))
    level = _level_db(x if hum is None else sosfiltfilt(hum, x, padlen=min(x.size - 1, 64)), sr)
    speech = level > threshold
    n = level.size
    # float32 for the spectra: half the work of float64, and 24 log bands need no more.
    window = np.hanning(win).astype(np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float32), win)[::hop][:n]
    spec = sfft.rfft(frames * window, _N_FFT, axis=1)
    power = spec.real**2 + spec.imag**2
    bands = 10 * np.log10(power @ _mel_bank(sr).T + 1e-10)
    # Onset: how much the bands rise from the frame before to the frame after.
    flux = np.zeros(n)
    if n > 2:
        rise = np.maximum(bands[2:] - bands[:-2], 0.0).mean(axis=1)
        flux[1:-1] = np.where(speech[2:], rise, 0.0)
    valley = _valley_depth(level, 5)
    strength = valley / o.valley_db + flux / o.flux_db
    # A word starting after silence: 2 speech frames after 2 silent ones (not a flicker).
    edge = np.zeros(n, dtype=bool)
    if n > 3:
        edge[2:-1] = speech[2:-1] & speech[3:] & ~speech[1:-2] & ~speech[:-3]
    return _Frames(t0=t0 + _WIN_S / 2, speech=speech, edge=edge, strength=strength)


@lru_cache(maxsize=4)
def _mel_bank(sr: int) -> npt.NDArray[np.float32]:
    bank: npt.NDArray[np.float32] = librosa.filters.mel(
        sr=sr, n_fft=_N_FFT, n_mels=_N_MELS, fmin=80.0, fmax=sr / 2 - 400
    ).astype(np.float32)
    return bank


def _valley_depth(level: F64, k: int) -> F64:
    """How far each frame lies below the lower of the loudest frames within k on either side."""
    n = level.size
    padded = np.pad(level, k, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, k)
    left = windows[:n].max(axis=1)  # frames i-k .. i-1
    right = windows[k + 1 : k + 1 + n].max(axis=1)  # frames i+1 .. i+k
    out: F64 = np.maximum(np.minimum(left, right) - level, 0.0)
    return out


def _candidates(guess: float, f: _Frames, o: AlignSettings) -> tuple[F64, F64]:
    """Times and costs of the places a word may start; its (lag-corrected) estimate first."""
    # Silence→speech edges are sure enough to be looked for further away than peaks.
    reach = max(o.search_s, o.edge_search_s)
    lo, hi = f.index(guess - reach), f.index(guess + reach)
    idx = np.arange(lo, hi + 1)
    t = f.t0 + idx * _HOP_S
    dist = np.abs(t - guess)
    s = f.strength[lo : hi + 1]
    left = np.concatenate([[-np.inf], s[:-1]])
    right = np.concatenate([s[1:], [-np.inf]])
    peak = (s >= left) & (s > right) & (s >= o.min_strength) & (dist <= o.search_s + 1e-9)
    edge = f.edge[lo : hi + 1]
    peak &= ~edge & f.speech[np.minimum(idx + 1, f.speech.size - 1)]
    times = np.concatenate([[guess], t[edge], t[peak]])
    costs = np.concatenate(
        [
            [o.keep_cost],
            dist[edge] / o.edge_sigma_s - o.edge_strength,
            dist[peak] / o.sigma_s - s[peak],
        ]
    )
    return times, costs


def _pick_starts(words: list[AsrWord], frames: list[_Frames], o: AlignSettings) -> list[float]:
    """The least-cost sequence of starts, in order and spaced (Viterbi over the candidates).

    Two starts are at least `min_word_s` apart, or as far apart as Whisper's own estimates
    when those are closer, so keeping every estimate is always a valid path.
    """
    guesses = np.maximum.accumulate([w.start for w in words]) - o.whisper_lag_s
    cands = [_candidates(float(g), f, o) for g, f in zip(guesses, frames, strict=True)]
    best = cands[0][1]
    back: list[npt.NDArray[np.intp]] = []
    for k in range(1, len(words)):
        t_prev, (t, cost) = cands[k - 1][0], cands[k]
        gap = min(o.min_word_s, guesses[k] - guesses[k - 1])
        allowed = t[:, None] >= t_prev[None, :] + gap - 1e-9
        total = np.where(allowed, best[None, :], np.inf)
        j = np.argmin(total, axis=1)
        back.append(j)
        best = total[np.arange(t.size), j] + cost
    j = int(np.argmin(best))
    starts = [float(cands[-1][0][j])]
    for k in range(len(words) - 1, 0, -1):
        j = int(back[k - 1][j])
        starts.append(float(cands[k - 1][0][j]))
    return [round(max(0.0, t), 3) for t in reversed(starts)]


def _pick_ends(
    words: list[AsrWord],
    frames: list[_Frames],
    starts: list[float],
    duration: float,
    o: AlignSettings,
) -> list[float]:
    """Each word's end: where its speech stops (see the module doc), within its neighbours."""
    ends = []
    pause = max(1, round(o.pause_s / _HOP_S))
    for k, (w, f) in enumerate(zip(words, frames, strict=True)):
        start = starts[k]
        limit = max(start, starts[k + 1] if k + 1 < len(words) else duration)
        last = min(limit, max(w.end, start + o.min_word_s) + o.end_search_s)
        lo, hi = f.index(start + o.min_word_s), f.index(last)
        end = None
        silent = 0
        for i in range(lo, hi + 1):
            silent = silent + 1 if not f.speech[i] else 0
            if silent >= pause:
                end = f.time(i - silent + 1)
                break
        if end is None and last >= limit:
            # Touching the next word: end where the silence just before it starts.
            i = hi
            while i > lo and not f.speech[i - 1]:
                i -= 1
            end = f.time(i) if i < hi else limit
        if end is None:
            end = min(limit, max(w.end, start + o.min_word_s))
        ends.append(round(float(np.clip(end, start, limit)), 3))
    return ends
