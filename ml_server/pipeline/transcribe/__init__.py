"""Transcription stage: one entry, `transcribe_speech` — the language chosen once (asked, or
detected on a bounded sample of the speech), then faster-whisper with word timestamps over the
VAD's speech regions, group by group so memory stays bounded on long media.

- `language`: which language (detection over a few windows, the runner-up retry);
- `turns`: reading in it — English to the English model and to the main one where it falters,
  turns clearly in another allowed language read in theirs;
- `reading`: one model over regions (temperatures, loops dropped, the second look);
- `segments`: combining readings (time order, cutting a region out, the surer of two);
- `groups`: bounded groups of regions.
"""

from __future__ import annotations

from collections.abc import Callable

from ml_server.pipeline.data import Audio, SpeechRegion, Transcript
from ml_server.pipeline.transcribe.groups import ASR_GROUP_S, group_regions, group_seconds
from ml_server.pipeline.transcribe.language import (
    CONFIDENT,
    DETECT_WINDOW_S,
    Ranking,
    choose_language,
    detect_language,
    detection_sample,
    in_likeliest_language,
)
from ml_server.pipeline.transcribe.reading import (
    LOG_PROB_THRESHOLD,
    LOOP_COMPRESSION_RATIO,
    UNDETERMINED,
    drop_loops,
    read,
    unread,
)
from ml_server.pipeline.transcribe.segments import (
    Segments,
    confident_words,
    in_time_order,
    surer_by_region,
    without,
)
from ml_server.pipeline.transcribe.settings import AsrModels, TranscribeSettings
from ml_server.pipeline.transcribe.turns import (
    faltering,
    in_language,
    in_other_languages,
    transcribe_in,
)

__all__ = [
    "ASR_GROUP_S",
    "CONFIDENT",
    "DETECT_WINDOW_S",
    "LOG_PROB_THRESHOLD",
    "LOOP_COMPRESSION_RATIO",
    "UNDETERMINED",
    "AsrModels",
    "Ranking",
    "Segments",
    "TranscribeSettings",
    "choose_language",
    "confident_words",
    "detect_language",
    "detection_sample",
    "drop_loops",
    "faltering",
    "group_regions",
    "group_seconds",
    "in_language",
    "in_likeliest_language",
    "in_other_languages",
    "in_time_order",
    "read",
    "surer_by_region",
    "transcribe_in",
    "transcribe_speech",
    "unread",
    "without",
]


def transcribe_speech(
    audio: Audio,
    regions: list[SpeechRegion],
    opts: TranscribeSettings,
    asr: AsrModels,
    on_progress: Callable[[float], None] | None = None,
) -> Transcript:
    """Words with timestamps for the speech in `regions`, in one language for the whole media.

    The language is chosen once, before the first group (on all the speech when it is one
    group, else on a bounded sample of it, `detection_sample`), then fixed for every group:
    one file is not transcribed in several languages by accident, and detection never holds
    all the speech at once.
    """
    groups = group_regions(regions, group_seconds(opts, asr))
    sample = regions if len(groups) <= 1 else detection_sample(regions, opts.detection_windows)
    ranking = choose_language(audio, sample, opts, asr)
    if not ranking:
        return Transcript(language=UNDETERMINED, language_probability=0.0, segments=())

    def in_language_of(language: str, probability: float) -> Transcript:
        return transcribe_in(
            audio, regions, opts, asr, language, probability, on_progress, groups=groups
        )

    return in_likeliest_language(ranking, in_language_of)
