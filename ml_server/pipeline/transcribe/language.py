"""Which language: asked, or detected over a few windows of speech spread across the media.

The language is chosen before decoding and then fixed: one asked language is used as is;
otherwise (`auto` or a list) the multilingual model's language probabilities are averaged over
up to `detection_windows` 10 s windows of speech, middle first, until one language is clearly
ahead (faster-whisper looks only at the start), restricted to the allowed languages and
renormalised. An unsure guess that reads nothing gets a clear runner-up once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim

from ecg_protocol import ErrorCode, Stage
from ml_server.pipeline.data import Audio, FloatArray, SpeechRegion, Transcript
from ml_server.pipeline.errors import StageError
from ml_server.pipeline.transcribe.reading import speech_of
from ml_server.pipeline.transcribe.settings import AsrModels, TranscribeSettings

# Detection stops adding windows once one language holds this share of the probability. It
# never changes a short media's answer (one window); chosen as "clearly decided", not tuned.
CONFIDENT = 0.9
# Seconds of speech one detection pass encodes. The encoder's cost grows with its input (CPU,
# base: 0.65 s for Whisper's 30 s window, 0.10 s for 10 s); see docs/pipeline.md, *Languages*,
# for how 10 s was chosen.
DETECT_WINDOW_S = 10.0
# Languages with their detected probability, most probable first.
Ranking = list[tuple[str, float]]


def detect_language(
    speech: FloatArray,
    model: WhisperModel,
    allowed: Sequence[str] | None,
    windows: int,
) -> Ranking:
    """The allowed languages, most probable first, each with its share of the probability
    averaged over up to `windows` windows of `DETECT_WINDOW_S` spread over `speech`.

    Windows are taken from the middle outwards (an intro of music or of another language sits
    at the start), and detection stops once the running average gives one allowed language
    CONFIDENT or more: each window is a full encoder pass, which on CPU costs about a third of
    tiny.en transcribing a minute of English.
    """
    extractor = model.feature_extractor
    span = int(DETECT_WINDOW_S * extractor.sampling_rate)
    frames = span // int(extractor.hop_length)
    total = int(speech.shape[0])
    count = 1 if total <= span else min(windows, math.ceil(total / span))
    starts = [int(x) for x in np.linspace(0, max(0, total - span), count)]
    middle = (total - span) / 2
    summed: dict[str, float] = {}
    ranking: Ranking = []
    for start in sorted(starts, key=lambda x: abs(x - middle)):
        piece = speech[start : start + span]
        encoded = model.encode(pad_or_trim(extractor(piece)[..., :frames], length=frames))
        # A window's vote counts by how much speech it holds (only a short media's is short).
        weight = piece.shape[0] / span
        for token, prob in model.model.detect_language(encoded)[0]:
            code = token[2:-2]
            if allowed is None or code in allowed:
                summed[code] = summed.get(code, 0.0) + weight * prob
        if not summed:
            raise StageError(
                Stage.TRANSCRIBE,
                ErrorCode.UNSUPPORTED_LANGUAGE,
                f"the ASR model detects none of {', '.join(allowed or ())}",
            )
        # "The most probable of those": the share within the allowed set.
        total_prob = sum(summed.values()) or 1.0
        ranking = sorted(((c, p / total_prob) for c, p in summed.items()), key=lambda x: -x[1])
        if ranking[0][1] >= CONFIDENT:
            break
    return ranking


def choose_language(
    audio: Audio, regions: list[SpeechRegion], opts: TranscribeSettings, asr: AsrModels
) -> Ranking:
    """The asked language alone (probability 1), or the allowed ones ranked by detection over
    `regions`; empty when there is nothing to detect in (no speech, several languages allowed)."""
    multilingual = bool(asr.main.model.is_multilingual)
    if not multilingual and any(code != "en" for code in opts.languages or ("en",)):
        raise StageError(
            Stage.TRANSCRIBE,
            ErrorCode.UNSUPPORTED_LANGUAGE,
            "the loaded ASR model is English-only",
        )
    language = opts.language or (None if multilingual else "en")
    if language is not None:
        return [(language, 1.0)]
    if not regions:
        return []
    speech, _ = speech_of(audio, regions)
    return detect_language(speech, asr.main, opts.languages, opts.detection_windows)


def in_likeliest_language(
    ranking: Ranking, decode: Callable[[str, float], Transcript]
) -> Transcript:
    """`decode` in the most probable language; in the runner-up when the first was an unsure
    guess (below CONFIDENT) that nothing was read in at the first temperature, and the
    runner-up is a clear second (`_clear_runner_up`).

    Far-field English is often heard as Welsh, and base then decodes Welsh that is all loops,
    dropped, or a few words the sampling fallback drew. No segment read greedily is the sign
    the guess was wrong; the runner-up gets one try (never more: a media that is not speech in
    any language costs at most two decodes), and is kept only if it read words greedily: a
    reading of digits and punctuation alone ("8.") says nothing about which language was
    spoken. A second decode costs time only on such media (docs/pipeline.md, "Runner-up retry").
    """
    language, probability = ranking[0]
    transcript = decode(language, probability)
    if _read(transcript) or probability >= CONFIDENT or not _clear_runner_up(ranking):
        return transcript
    retry = decode(*ranking[1])
    return retry if _read(retry, words=True) else transcript


def _clear_runner_up(ranking: Ranking) -> bool:
    """The runner-up holds most of the probability the first guess leaves: a two-way doubt
    (English or Welsh), where the runner-up is the one other answer. When the rest is spread
    over several languages, which of them comes second is a matter of hundredths that the CPU's
    int8 arithmetic moves (pl/liczenie: lv 0.201, cs 0.196), so a retry would try a language
    picked by rounding; the first guess stands instead."""
    if len(ranking) < 2:
        return False
    first, second = ranking[0][1], ranking[1][1]
    return second > (1.0 - first) / 2


def _read(transcript: Transcript, *, words: bool = False) -> bool:
    """Some of the speech was read at the first temperature (not sampled, not dropped); with
    `words`, a reading that holds a letter of some script, not only digits or punctuation."""
    return any(
        seg.greedy and (not words or any(ch.isalpha() for ch in seg.text))
        for seg in transcript.segments
    )


def detection_sample(regions: list[SpeechRegion], windows: int) -> list[SpeechRegion]:
    """At most `windows` detection windows of speech for language detection, taken from the middle
    of the media outwards (as `detect_language` takes its windows), in media order."""
    budget = windows * DETECT_WINDOW_S
    middle = (regions[0].start + regions[-1].end) / 2 if regions else 0.0
    chosen: list[SpeechRegion] = []
    total = 0.0
    for region in sorted(regions, key=lambda r: abs((r.start + r.end) / 2 - middle)):
        if total >= budget:
            break
        chosen.append(region)
        total += region.end - region.start
    return sorted(chosen, key=lambda r: r.start)
