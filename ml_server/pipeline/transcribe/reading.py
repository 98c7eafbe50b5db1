"""Reading speech with one faster-whisper model: word timestamps over the VAD's regions, a
short temperature list, loops dropped, and a second look at regions the first pass skipped.

VAD already ran, so its regions are reused instead of letting faster-whisper run Silero again:
where decoding is batched (GPU, and CPU unless ML_CPU_BATCHED=false) and the speech fills two
30 s clips or more, the regions joined into clips become the batched pipeline's
`clip_timestamps`; otherwise the speech is cut out and concatenated (what `vad_filter=True`
does inside faster-whisper) and decoded sequentially. Either way times are mapped back.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.transcribe import restore_speech_timestamps

from ml_server.pipeline.data import AsrSegment, AsrWord, Audio, FloatArray, SpeechRegion, Transcript
from ml_server.pipeline.transcribe.groups import BATCH_CLIP_S
from ml_server.pipeline.transcribe.segments import in_time_order
from ml_server.pipeline.transcribe.settings import TranscribeSettings
from ml_server.pipeline.vad import regions_to_chunks

UNDETERMINED = "und"  # ISO 639-2: no speech, several languages allowed
# Whisper writes Chinese in traditional or simplified characters at random; a short prompt in
# simplified characters steers it (a known Whisper behaviour, not tuned on the test clips: the
# sentence is in none of them). A Devanagari prompt for Hindi (base writes Urdu script) was
# tried and dropped: base then loops on 2 of the 3 Hindi clips, at 4x the decoding time.
SCRIPT_PROMPTS: dict[str, str] = {"zh": "以下是普通话的句子。"}
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


def speech_of(audio: Audio, regions: list[SpeechRegion]) -> tuple[FloatArray, list[dict[str, int]]]:
    """The regions' float32 samples end to end (what `collect_chunks` makes) and their chunks."""
    chunks = regions_to_chunks(regions, audio.sample_rate)
    return audio.gather(chunks), chunks


def batch_clips(
    chunks: list[dict[str, int]], sample_rate: int, max_s: float = BATCH_CLIP_S
) -> list[dict[str, float]]:
    """Clips of the gathered speech for the batched pipeline, in seconds: consecutive regions
    joined while they fit in `max_s` (fewer, fuller windows: each costs one encoder pass, as
    `vad_filter=True` joins them), a longer region cut into equal pieces that fit (VAD caps a
    region at 30 s, but its padding can pass that)."""
    limit = int(max_s * sample_rate)
    spans: list[tuple[int, int]] = []
    start: int | None = None
    at = 0
    for c in chunks:
        length = max(0, c["end"] - c["start"])
        if start is not None and at + length - start > limit:
            spans.append((start, at))
            start = None
        if length > limit:
            pieces = -(-length // limit)
            edges = [at + length * i // pieces for i in range(pieces + 1)]
            spans.extend(itertools.pairwise(edges))
        elif length:
            start = at if start is None else start
        at += length
        if length > limit:
            start = None
    if start is not None and at > start:
        spans.append((start, at))
    return [{"start": a / sample_rate, "end": b / sample_rate} for a, b in spans]


def _token_budget(speech_s: float) -> int | None:
    """Most tokens one window may decode; None (the model's own limit) past ~13 s of speech."""
    budget = int(speech_s * MAX_TOKENS_PER_S) + _TOKEN_SLACK
    return budget if budget < _MAX_NEW_TOKENS else None


def read(
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
    if (
        batched is not None
        and len(batch_clips(regions_to_chunks(regions, audio.sample_rate), audio.sample_rate)) < 2
    ):
        # A batch of one clip is sequential decoding without its temperature fallback and
        # without seeking past where Whisper stopped, at the same cost (one encoder pass): a
        # 30 s meeting clip read batched lost 24 of its 61 words.
        batched = None
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
    out += _second_look(
        audio, regions, out, opts, model, {**common, "language": language}, batched is not None
    )
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


def to_look_at(
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
    common: dict[str, Any],
    after_batched: bool = False,
) -> list[AsrSegment]:
    """Segments read from regions the first pass skipped, each decoded alone in the same
    language (at most MAX_SECOND_LOOKS, longest first; Whisper's no-speech rule stays on, so
    a region of noise still gives nothing). Sequentially, with the temperature fallback, even
    after a batched first pass: batched decoding has no fallback, so a region it read as a
    loop (dropped) gets its second chance here. None when the first pass read nothing at all: that
    media is not speech the model reads (the runner-up retry's case), not a skipped window.

    After a batched first pass the regions are read in one sequential decode, end to end in
    time order, not one by one: each decode costs a full 30 s encoder pass however short the
    region (tiny.en, 2 cores: 0.66 s), and a batched clip leaves more regions unread than
    sequential decoding does, since it cannot seek past where Whisper stopped (13 min of
    ami-dev: 12 regions, 38 s of speech, 10.6 s one by one)."""
    if not segments:
        return []
    looks = to_look_at(regions, segments)
    if after_batched and looks:
        in_order = sorted(looks, key=lambda r: r.start)
        budget = _token_budget(sum(r.end - r.start for r in in_order))
        found, _ = _decode(
            audio, in_order, opts, model, None, {**common, "max_new_tokens": budget}, None
        )
        return found
    out: list[AsrSegment] = []
    for region in looks:
        budget = _token_budget(region.end - region.start)
        found, _ = _decode(
            audio, [region], opts, model, None, {**common, "max_new_tokens": budget}, None
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
    speech, chunks = speech_of(audio, regions)
    if batched is not None:
        # With timestamps (faster-whisper's batched default is without): a clip comes back in
        # Whisper's own segments, so a loop drops its segment, not the whole 30 s clip, and
        # the reading goes on past a pause (13 min of ami-dev: 1,053 words against 964).
        raw, info = batched.transcribe(
            speech,
            clip_timestamps=batch_clips(chunks, audio.sample_rate),
            batch_size=opts.batch_size,
            without_timestamps=False,
            **common,
        )
    else:
        raw, info = model.transcribe(
            speech, vad_filter=False, condition_on_previous_text=False, **common
        )
    segments: Iterable[Any] = restore_speech_timestamps(raw, chunks, audio.sample_rate)

    return _kept(segments, min(common["temperature"]), audio.duration, on_progress), info


def _kept(
    segments: Iterable[Any],
    first_temperature: float,
    duration: float,
    on_progress: Callable[[float], None] | None,
) -> list[AsrSegment]:
    """faster-whisper's segments as ours, loops dropped, words without text left out."""
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
        if on_progress is not None and duration > 0:
            on_progress(min(1.0, float(seg.end) / duration))
    return out
