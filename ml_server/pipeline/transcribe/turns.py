"""Reading in the chosen language: English to the English model (and to the main one where
it falters), and turns clearly in another allowed language read in theirs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from faster_whisper import BatchedInferencePipeline, WhisperModel

from ecg_protocol import ErrorCode, Stage
from ml_server.allocator import give_back
from ml_server.pipeline.data import AsrSegment, Audio, SpeechRegion, Transcript
from ml_server.pipeline.errors import StageError
from ml_server.pipeline.transcribe.groups import share
from ml_server.pipeline.transcribe.language import CONFIDENT, detect_language
from ml_server.pipeline.transcribe.reading import read, speech_of, to_look_at
from ml_server.pipeline.transcribe.segments import (
    Segments,
    in_time_order,
    surer_by_region,
    without,
)
from ml_server.pipeline.transcribe.settings import AsrModels, TranscribeSettings

# `in_other_languages` leaves the unread regions after this many in a row found no other clear
# language: they are looked at longest first, so in media of one language (far-field English
# whose regions fail Whisper's test) the rest are as unlikely to hold one, and each look costs
# an encoder pass of the main model (13 min of ami-dev with `auto`: 8 looks, 9 s, none found
# another language). Where turns are in two languages, the other's are the regions left
# unread. Regions read confidently, looked at when the language was an unclear pick, are
# not cut short. Chosen as "a few", not tuned on a clip.
QUIET_LOOKS = 3


def transcribe_in(
    audio: Audio,
    regions: list[SpeechRegion],
    opts: TranscribeSettings,
    asr: AsrModels,
    language: str,
    probability: float,
    on_progress: Callable[[float], None] | None = None,
    groups: list[list[SpeechRegion]] | None = None,
) -> Transcript:
    """Transcribe in one chosen language (its detected probability reported), English routed
    to the English model, group by group where `groups` (of `regions`) are given; when the
    language was detected, speech left unread in it that is clearly another allowed language
    is read in that one (`in_other_languages`), once over all of `regions`: its bound on the
    regions looked at is the media's, not each group's (each look is an encoder pass of the
    main model, 0.7 s on 2 cores)."""
    parts = groups or [regions]
    segments: list[AsrSegment] = []
    for n, group in enumerate(parts):
        part_progress = share(on_progress, n, len(parts))
        segments.extend(in_language(audio, group, opts, asr, language, part_progress))
        give_back()  # the group's buffers: freed pages would otherwise pile up over hours
    if opts.language is None and asr.main.model.is_multilingual:
        segments = in_other_languages(audio, regions, segments, opts, asr, language, probability)
    return Transcript(
        language=language,
        language_probability=probability,
        segments=tuple(in_time_order(segments)),
    )


def in_language(
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

    def by(
        model: WhisperModel, batched: BatchedInferencePipeline | None, where: list[SpeechRegion]
    ) -> Segments:
        return read(audio, where, fixed, model, batched, on_progress).segments

    # tiny.en cannot translate, and English needs no translating: it takes English as before.
    if language != "en" or asr.english is None:
        return by(asr.main, asr.main_batched, regions)
    fast = by(asr.english, asr.english_batched, regions)
    faltered = faltering(regions, fast)
    if not faltered:
        return fast
    # Where the small English model faltered (far-field meeting speech falls back to sampling,
    # clean speech does not; docs/pipeline.md "When tiny.en falters"), the main model reads
    # those regions too, and each keeps the reading with more confidently read words (the main
    # one on a tie); the regions tiny.en read confidently are not read twice.
    return surer_by_region(fast, by(asr.main, asr.main_batched, faltered), faltered)


def faltering(regions: list[SpeechRegion], segments: Segments) -> list[SpeechRegion]:
    """The regions a segment that failed Whisper's test overlaps."""
    failed = [seg for seg in segments if not seg.confident]
    return [r for r in regions if any(s.start < r.end and s.end > r.start for s in failed)]


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
    invented words. Those replace the words the failed decode put in the region. After
    QUIET_LOOKS such regions in a row found no other language, the rest are left.

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
    unread_ones = to_look_at(regions, confident)
    quiet = 0  # looks at unread regions in a row that found no other clear language
    for region in to_look_at(regions, confident, also_read=probability < CONFIDENT):
        if quiet >= QUIET_LOOKS and region in unread_ones:
            continue
        speech, _ = speech_of(audio, [region])
        # Detected among every language, not the allowed ones renormalised: speech in a third
        # language would otherwise be "clearly" whichever allowed one it is least unlike.
        other, other_share = detect_language(speech, asr.main, None, 1)[0]
        allowed = opts.languages is None or other in opts.languages
        if other == language or not allowed or other_share < CONFIDENT:
            quiet += 1
            continue
        quiet = 0
        found = [seg for seg in in_language(audio, [region], opts, asr, other) if seg.confident]
        if found:
            out = [*without(out, region), *found]
    return out
