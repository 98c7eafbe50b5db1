"""Transcription stage: faster-whisper with word timestamps over the VAD's speech regions.

VAD already ran, so its regions are reused instead of letting faster-whisper run Silero again:
on CPU the speech is cut out and concatenated (what `vad_filter=True` does inside
faster-whisper) and times are mapped back; on GPU the regions become the batched pipeline's
`clip_timestamps`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.transcribe import restore_speech_timestamps
from faster_whisper.vad import collect_chunks

from ml_server.pipeline.data import AsrSegment, AsrWord, Audio, SpeechRegion, Transcript
from ml_server.pipeline.vad import regions_to_chunks


@dataclass(frozen=True, slots=True)
class TranscribeSettings:
    language: str | None = None  # None = detect
    beam_size: int = 1
    batch_size: int = 8


def transcribe(
    audio: Audio,
    regions: list[SpeechRegion],
    opts: TranscribeSettings,
    model: WhisperModel,
    batched: BatchedInferencePipeline | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> Transcript:
    """Words with timestamps for the speech in `audio`; no regions gives no segments."""
    multilingual = bool(model.model.is_multilingual)
    if not regions:
        language = opts.language or ("en" if not multilingual else None)
        return Transcript(
            language=language, language_probability=1.0 if language else 0.0, segments=()
        )
    common: dict[str, Any] = {
        "language": opts.language,
        "beam_size": opts.beam_size,
        "word_timestamps": True,
    }
    if batched is not None:
        clips = [{"start": r.start, "end": r.end} for r in regions]
        raw, info = batched.transcribe(
            audio.samples, clip_timestamps=clips, batch_size=opts.batch_size, **common
        )
        segments: Iterable[Any] = raw
    else:
        chunks = regions_to_chunks(regions, audio.sample_rate)
        pieces, _ = collect_chunks(audio.samples, chunks, sampling_rate=audio.sample_rate)
        speech = np.concatenate(pieces) if pieces else audio.samples[:0]
        raw, info = model.transcribe(
            speech, vad_filter=False, condition_on_previous_text=False, **common
        )
        segments = restore_speech_timestamps(raw, chunks, audio.sample_rate)

    out: list[AsrSegment] = []
    # The generator does the work lazily: consume it here, while the model is held.
    for seg in segments:
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
        out.append(
            AsrSegment(
                start=float(seg.start), end=float(seg.end), text=seg.text.strip(), words=words
            )
        )
        if on_progress is not None and audio.duration > 0:
            on_progress(min(1.0, float(seg.end) / audio.duration))
    language = str(info.language) if info.language else opts.language
    if not multilingual:
        language = "en"
    return Transcript(
        language=language,
        language_probability=float(info.language_probability or 0.0),
        segments=tuple(out),
    )
