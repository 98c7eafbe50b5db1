"""Transcription stage: language choice, then faster-whisper with word timestamps over the
VAD's speech regions.

The language is chosen before decoding and then fixed: one asked language is used as is;
otherwise (`auto` or a list) the multilingual model's language probabilities are averaged over
up to `detection_windows` 10 s windows of speech spread across the media, middle first, until
one language is clearly ahead (faster-whisper looks only at the start), restricted to the
allowed languages and renormalised. English then goes to
the faster English-only model when one is loaded. Decoding tries `temperatures` in turn, a
short list so that audio the model cannot read costs a bounded number of decodes per window.

VAD already ran, so its regions are reused instead of letting faster-whisper run Silero again:
on CPU the speech is cut out and concatenated (what `vad_filter=True` does inside
faster-whisper) and times are mapped back; on GPU the regions become the batched pipeline's
`clip_timestamps`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.transcribe import restore_speech_timestamps

from ecg_protocol import ErrorCode, Stage
from ml_server.pipeline.data import (
    AsrSegment,
    AsrWord,
    Audio,
    DecodingHints,
    FloatArray,
    SpeechRegion,
    Transcript,
)
from ml_server.pipeline.errors import StageError
from ml_server.pipeline.vad import regions_to_chunks

# Whisper writes Chinese in traditional or simplified characters at random; a short prompt in
# simplified characters steers it (a known Whisper behaviour, not tuned on the test clips: the
# sentence is in none of them). A Devanagari prompt for Hindi (base writes Urdu script) was
# tried and dropped: base then loops on 2 of the 3 Hindi clips, at 4x the decoding time.
SCRIPT_PROMPTS: dict[str, str] = {"zh": "以下是普通话的句子。"}
# Detection stops adding windows once one language holds this share of the probability. It
# never changes a short media's answer (one window); chosen as "clearly decided", not tuned.
CONFIDENT = 0.9
# Seconds of speech one detection pass encodes. The encoder's cost grows with its input (CPU,
# base: 0.65 s for Whisper's 30 s window, 0.10 s for 10 s); see docs/pipeline.md, *Languages*,
# for how 10 s was chosen.
DETECT_WINDOW_S = 10.0
UNDETERMINED = "und"  # ISO 639-2: no speech, several languages allowed
# Languages with their detected probability, most probable first.
Ranking = list[tuple[str, float]]
Segments = tuple[AsrSegment, ...]
# Bound on tokens decoded per second of speech, so a model looping on audio it cannot read
# stops early on short media. The densest reference text of the 27 audioeval clips is 12.4
# tokens/s (Hindi, base's tokenizer); 30/s leaves 2.4x room plus slack for timestamp tokens.
MAX_TOKENS_PER_S = 30.0
_TOKEN_SLACK = 24
_MAX_NEW_TOKENS = 400  # Whisper's 448-token context less the prompt
# Whisper's own test of a failed decode (gzip ratio of the text, its default): a segment still
# above it after every fallback temperature is a loop ("请问问问…", "语语语…"), not speech;
# it is dropped.
LOOP_COMPRESSION_RATIO = 2.4
# Whisper sometimes ends a 30 s window early and never reads the speech after it, most often
# where the language or the voice changes (an English and a French voice in turn: five of six
# regions skipped). A region the first pass gave no word is decoded once more on its own; at
# most this many per call, the longest first, since each costs one encoder pass.
MAX_SECOND_LOOKS = 8
# Shorter regions are left alone: VAD's shortest speech (250 ms) with its padding.
MIN_SECOND_LOOK_S = 0.5
# Whisper's own test of a failed decode by log-probability (faster-whisper's default): below
# it at the first temperature, Whisper falls back to sampling.
LOG_PROB_THRESHOLD = -1.0


@dataclass(frozen=True, slots=True)
class AsrModels:
    """The ASR models a worker holds: the main one and the optional faster English route."""

    main: WhisperModel
    main_batched: BatchedInferencePipeline | None = None
    english: WhisperModel | None = None
    english_batched: BatchedInferencePipeline | None = None


@dataclass(frozen=True, slots=True)
class TranscribeSettings:
    # One code: transcribe in it. Several: detect among them. None: detect among all.
    languages: tuple[str, ...] | None = None
    beam_size: int = 1
    batch_size: int = 8
    temperatures: tuple[float, ...] = (0.0, 0.4)
    detection_windows: int = 3
    hints: DecodingHints = field(default_factory=DecodingHints)

    @property
    def language(self) -> str | None:
        """The one asked language, if exactly one was asked."""
        return self.languages[0] if self.languages and len(self.languages) == 1 else None


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


def _speech(audio: Audio, regions: list[SpeechRegion]) -> tuple[FloatArray, list[dict[str, int]]]:
    """The regions' float32 samples end to end (what `collect_chunks` makes) and their chunks."""
    chunks = regions_to_chunks(regions, audio.sample_rate)
    return audio.gather(chunks), chunks


def _clips(chunks: list[dict[str, int]], sample_rate: int) -> list[dict[str, float]]:
    """Each chunk's place in the gathered speech, in seconds (the batched pipeline's clips)."""
    clips: list[dict[str, float]] = []
    at = 0
    for c in chunks:
        length = max(0, c["end"] - c["start"])
        clips.append({"start": at / sample_rate, "end": (at + length) / sample_rate})
        at += length
    return clips


def _token_budget(speech_s: float) -> int | None:
    """Most tokens one window may decode; None (the model's own limit) past ~13 s of speech."""
    budget = int(speech_s * MAX_TOKENS_PER_S) + _TOKEN_SLACK
    return budget if budget < _MAX_NEW_TOKENS else None


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
    speech, _ = _speech(audio, regions)
    return detect_language(speech, asr.main, opts.languages, opts.detection_windows)


def transcribe_speech(
    audio: Audio,
    regions: list[SpeechRegion],
    opts: TranscribeSettings,
    asr: AsrModels,
    on_progress: Callable[[float], None] | None = None,
) -> Transcript:
    """Choose the language (asked or detected), route English to the English model, transcribe."""
    ranking = choose_language(audio, regions, opts, asr)
    if not ranking:
        return Transcript(language=UNDETERMINED, language_probability=0.0, segments=())
    return in_likeliest_language(
        ranking,
        lambda language, probability: transcribe_in(
            audio, regions, opts, asr, language, probability, on_progress
        ),
    )


def in_likeliest_language(
    ranking: Ranking, decode: Callable[[str, float], Transcript]
) -> Transcript:
    """`decode` in the most probable language; in the runner-up when the first was an unsure
    guess (below CONFIDENT) that nothing was read in at the first temperature.

    Far-field English is often heard as Welsh, and base then decodes Welsh that is all loops,
    dropped, or a few words the sampling fallback drew. No segment read greedily is the sign
    the guess was wrong; the runner-up gets one try (never more: a media that is not speech in
    any language costs at most two decodes), and is kept only if something in it was read
    greedily. A second decode costs time only on such media
    (docs/pipeline.md, "Runner-up retry").
    """
    language, probability = ranking[0]
    transcript = decode(language, probability)
    if _read(transcript) or probability >= CONFIDENT or len(ranking) < 2:
        return transcript
    retry = decode(*ranking[1])
    return retry if _read(retry) else transcript


def _read(transcript: Transcript) -> bool:
    """Some of the speech was read at the first temperature (not sampled, not dropped)."""
    return any(seg.greedy for seg in transcript.segments)


def transcribe_in(
    audio: Audio,
    regions: list[SpeechRegion],
    opts: TranscribeSettings,
    asr: AsrModels,
    language: str,
    probability: float,
    on_progress: Callable[[float], None] | None = None,
) -> Transcript:
    """Transcribe in one chosen language (its detected probability reported), English routed
    to the English model; when the language was detected, speech left unread in it that is
    clearly another allowed language is read in that one (`in_other_languages`)."""
    segments = list(_in_language(audio, regions, opts, asr, language, on_progress))
    if opts.language is None and asr.main.model.is_multilingual:
        segments = in_other_languages(audio, regions, segments, opts, asr, language, probability)
    return Transcript(
        language=language,
        language_probability=probability,
        segments=tuple(in_time_order(segments)),
    )


def in_time_order(segments: Sequence[AsrSegment]) -> list[AsrSegment]:
    """`segments` with every word in time order: a segment that spans another's words is cut
    around them.

    Reads of separate decodes are combined (the second look, a turn read in its own
    language), and one Whisper segment may span several VAD regions whose turns between its
    words were read apart. Sorted by segment start alone, the words would go out of order and
    the result's monotonic word times would pile the later-read words at one instant.
    """
    keyed = sorted(
        ((n, w) for n, seg in enumerate(segments) for w in seg.words),
        key=lambda item: (item[1].start, item[0]),
    )
    out = [
        _piece(segments[n], [w for _, w in run])
        for n, run in itertools.groupby(keyed, key=lambda item: item[0])
    ]
    out += [seg for seg in segments if not seg.words]
    return sorted(out, key=lambda seg: seg.start)


def _piece(seg: AsrSegment, words: list[AsrWord]) -> AsrSegment:
    """`seg` cut down to `words` (itself when they are all of its words)."""
    if len(words) == len(seg.words):
        return seg
    text = "".join(w.word for w in words).strip()
    return dataclasses.replace(
        seg, start=words[0].start, end=words[-1].end, words=tuple(words), text=text
    )


def _in_language(
    audio: Audio,
    regions: list[SpeechRegion],
    opts: TranscribeSettings,
    asr: AsrModels,
    language: str,
    on_progress: Callable[[float], None] | None = None,
) -> Segments:
    """The segments of `regions` decoded in `language`; English by the English model, and by
    the main one too where the English model faltered."""
    multilingual = bool(asr.main.model.is_multilingual)
    translate = opts.hints.task == "translate" and language != "en"
    if translate and not multilingual:
        raise StageError(
            Stage.TRANSCRIBE,
            ErrorCode.UNSUPPORTED_LANGUAGE,
            "an English-only model cannot translate",
        )
    fixed = dataclasses.replace(opts, languages=(language,))

    def read(model: WhisperModel, batched: BatchedInferencePipeline | None) -> Segments:
        return transcribe(audio, regions, fixed, model, batched, on_progress).segments

    # tiny.en cannot translate, and English needs no translating: it takes English as before.
    if language != "en" or asr.english is None:
        return read(asr.main, asr.main_batched)
    fast = read(asr.english, asr.english_batched)
    if all(seg.confident for seg in fast):
        return fast
    # The small English model faltered (far-field meeting speech falls back to sampling, clean
    # speech does not; docs/pipeline.md "When tiny.en falters"): the main model reads it too,
    # and the reading with more confidently read words is kept (the main one on a tie).
    return surer(fast, read(asr.main, asr.main_batched))


def surer(fast: Segments, careful: Segments) -> Segments:
    """The reading with more confidently read words; `careful` (the main model's) on a tie."""
    return careful if confident_words(careful) >= confident_words(fast) else fast


def confident_words(segments: Segments) -> int:
    return sum(len(seg.words) for seg in segments if seg.confident)


def in_other_languages(
    audio: Audio,
    regions: list[SpeechRegion],
    segments: Sequence[AsrSegment],
    opts: TranscribeSettings,
    asr: AsrModels,
    language: str,
    probability: float = 1.0,
) -> list[AsrSegment]:
    """`segments` with the regions they read nothing of confidently after decoding in
    `language` (and its second look) read in another language where that is clear; when
    `language` itself was an unclear pick (its detected `probability` under CONFIDENT), the
    regions it did read too.

    Two people who speak different languages in turn: the detected language is one of them,
    and the other's turns decoded in it give nothing (Whisper's no-speech rule), or only what
    the sampling fallback drew — lost words and a lost speaker. Each region with no confident
    word (the longest first, at most MAX_SECOND_LOOKS, none shorter than MIN_SECOND_LOOK_S)
    gets its language detected alone; only a clearly decided (CONFIDENT, detection's own
    share) other language the request allows is decoded, and only its confident segments are
    kept, so far-field speech that is merely hard to read (heard as Welsh, unsurely) adds no
    invented words. Those replace the words the failed decode put in the region.

    Whisper's English decoder translates what it does not recognise: decided English, a
    Spanish turn comes back as confident English ("Call the world." for "Hola mundo"), so it
    is not unread. Media with one clear language need no more; in media whose language was
    an unclear pick (typically several languages in turn), regions already read are looked
    at too, after the unread ones and within the same bound.

    Unchanged when nothing in `language` was read greedily: then the language itself is in
    doubt (the runner-up retry's case), not a region.
    """
    out = list(segments)
    if not any(seg.greedy for seg in segments):
        return out
    confident = [seg for seg in segments if seg.confident]
    for region in _to_look_at(regions, confident, also_read=probability < CONFIDENT):
        speech, _ = _speech(audio, [region])
        # Detected among every language, not the allowed ones renormalised: speech in a third
        # language would otherwise be "clearly" whichever allowed one it is least unlike.
        other, share = detect_language(speech, asr.main, None, 1)[0]
        allowed = opts.languages is None or other in opts.languages
        if other == language or not allowed or share < CONFIDENT:
            continue
        found = [seg for seg in _in_language(audio, [region], opts, asr, other) if seg.confident]
        if found:
            out = [*without(out, region), *found]
    return out


def without(segments: Sequence[AsrSegment], region: SpeechRegion) -> list[AsrSegment]:
    """`segments` less their words whose middle lies in `region` (a segment left without a
    word is dropped; one that keeps some is cut down to them)."""
    out: list[AsrSegment] = []
    for seg in segments:
        kept = tuple(w for w in seg.words if not region.start <= (w.start + w.end) / 2 < region.end)
        if len(kept) == len(seg.words):
            out.append(seg)
        elif kept:
            out.append(_piece(seg, list(kept)))
    return out


def transcribe(
    audio: Audio,
    regions: list[SpeechRegion],
    opts: TranscribeSettings,
    model: WhisperModel,
    batched: BatchedInferencePipeline | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> Transcript:
    """Words with timestamps for the speech in `audio` with one model; no regions, no segments."""
    multilingual = bool(model.model.is_multilingual)
    language = opts.language if multilingual else "en"
    if not regions:
        return Transcript(
            language=language or UNDETERMINED,
            language_probability=1.0 if language else 0.0,
            segments=(),
        )
    common: dict[str, Any] = {
        "language": language,
        "beam_size": opts.beam_size,
        "word_timestamps": True,
        "temperature": _temperatures(opts),
        "initial_prompt": opts.hints.prompt or SCRIPT_PROMPTS.get(language or ""),
        "hotwords": opts.hints.hotwords,
        "task": "translate" if opts.hints.task == "translate" and multilingual else "transcribe",
        # One sample per fallback temperature (default 5): with the short temperature list this
        # bounds a window that never decodes cleanly to len(temperatures) decodes.
        "best_of": 1,
        # Set here, not left to faster-whisper's default: `drop_loops` uses the same bound.
        "compression_ratio_threshold": LOOP_COMPRESSION_RATIO,
        "log_prob_threshold": LOG_PROB_THRESHOLD,
        "max_new_tokens": _token_budget(sum(r.end - r.start for r in regions)),
    }
    out, info = _decode(audio, regions, opts, model, batched, common, on_progress)
    if not out:
        # The VAD heard speech and Whisper's no-speech rule dropped all of it. Once more without
        # that rule; kept on otherwise, since without it base invents text after the last word
        # (docs/pipeline.md, "No-speech rule").
        out, info = _decode(
            audio, regions, opts, model, batched, {**common, "no_speech_threshold": None}, None
        )
    if language is None:
        language = str(info.language)
    out += _second_look(audio, regions, out, opts, model, batched, {**common, "language": language})
    return Transcript(
        language=language,
        language_probability=1.0 if opts.language else float(info.language_probability or 0.0),
        segments=tuple(dataclasses.replace(seg, language=language) for seg in in_time_order(out)),
    )


def unread(regions: list[SpeechRegion], segments: Sequence[AsrSegment]) -> list[SpeechRegion]:
    """The regions no word of `segments` overlaps."""
    starts = np.array([w.start for s in segments for w in s.words])
    ends = np.array([w.end for s in segments for w in s.words])
    return [r for r in regions if not ((ends > r.start) & (starts < r.end)).any()]


def _to_look_at(
    regions: list[SpeechRegion], segments: Sequence[AsrSegment], also_read: bool = False
) -> list[SpeechRegion]:
    """The regions worth another decode: the unread ones, then (`also_read`) the others; none
    under MIN_SECOND_LOOK_S, the longest first within each, at most MAX_SECOND_LOOKS in all
    (each costs an encoder pass)."""
    long_enough = [r for r in regions if r.end - r.start >= MIN_SECOND_LOOK_S]
    missed = unread(long_enough, segments)
    read = [r for r in long_enough if r not in missed] if also_read else []
    return (_longest_first(missed) + _longest_first(read))[:MAX_SECOND_LOOKS]


def _longest_first(regions: list[SpeechRegion]) -> list[SpeechRegion]:
    return sorted(regions, key=lambda r: r.end - r.start, reverse=True)


def _second_look(
    audio: Audio,
    regions: list[SpeechRegion],
    segments: list[AsrSegment],
    opts: TranscribeSettings,
    model: WhisperModel,
    batched: BatchedInferencePipeline | None,
    common: dict[str, Any],
) -> list[AsrSegment]:
    """Segments read from regions the first pass skipped, each decoded alone in the same
    language (at most MAX_SECOND_LOOKS, longest first; Whisper's no-speech rule stays on, so
    a region of noise still gives nothing). None when the first pass read nothing at all: that
    media is not speech the model reads (the runner-up retry's case), not a skipped window."""
    if not segments:
        return []
    out: list[AsrSegment] = []
    for region in _to_look_at(regions, segments):
        budget = _token_budget(region.end - region.start)
        found, _ = _decode(
            audio, [region], opts, model, batched, {**common, "max_new_tokens": budget}, None
        )
        out += found
    return out


def _temperatures(opts: TranscribeSettings) -> list[float]:
    """The asked sampling temperature alone (OpenAI's meaning of `temperature` > 0), else the
    bounded fallback list."""
    asked = opts.hints.temperature
    return [asked] if asked else list(opts.temperatures)


def drop_loops(segments: Iterable[Any]) -> Iterator[Any]:
    """faster-whisper's segments without those that stayed loops after every fallback: it keeps
    the best attempt even when all failed its compression test, and a temperature fallback
    samples, so whether a loop survives would otherwise depend on the sampler's state."""
    return (seg for seg in segments if seg.compression_ratio <= LOOP_COMPRESSION_RATIO)


def _decode(
    audio: Audio,
    regions: list[SpeechRegion],
    opts: TranscribeSettings,
    model: WhisperModel,
    batched: BatchedInferencePipeline | None,
    common: dict[str, Any],
    on_progress: Callable[[float], None] | None,
) -> tuple[list[AsrSegment], Any]:
    # Either way only the regions' own samples are made float (never the whole media): the
    # batched pipeline gets them end to end with each region as a clip, and every time is
    # mapped back to the media's as on CPU.
    speech, chunks = _speech(audio, regions)
    if batched is not None:
        clips = _clips(chunks, audio.sample_rate)
        raw, info = batched.transcribe(
            speech, clip_timestamps=clips, batch_size=opts.batch_size, **common
        )
    else:
        raw, info = model.transcribe(
            speech, vad_filter=False, condition_on_previous_text=False, **common
        )
    segments: Iterable[Any] = restore_speech_timestamps(raw, chunks, audio.sample_rate)

    first_temperature = min(common["temperature"])
    out: list[AsrSegment] = []
    # The generator does the work lazily: consume it here, while the model is held.
    for seg in drop_loops(segments):
        words = tuple(
            AsrWord(
                word=w.word,  # leading space kept: joining words rebuilds the text
                start=float(w.start),
                end=float(w.end),
                probability=float(w.probability),
            )
            for w in (seg.words or ())
            if w.word.strip()
        )
        if not words:
            continue
        greedy = seg.temperature is None or seg.temperature <= first_temperature
        out.append(
            AsrSegment(
                start=float(seg.start),
                end=float(seg.end),
                text=seg.text.strip(),
                words=words,
                greedy=greedy,
                confident=greedy
                and seg.avg_logprob >= LOG_PROB_THRESHOLD
                and seg.compression_ratio <= LOOP_COMPRESSION_RATIO,
            )
        )
        if on_progress is not None and audio.duration > 0:
            on_progress(min(1.0, float(seg.end) / audio.duration))
    return out, info
