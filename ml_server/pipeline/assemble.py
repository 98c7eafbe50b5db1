"""Assembly: ASR segments split at speaker changes, every word complete, metadata.

The result it builds is described field by field in docs/result-schema.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from ecg_protocol import AnalysisResult, Emotion, Metadata, Segment, Speaker, Word
from ml_server.pipeline.data import Diarization, Transcript, WordProsody
from ml_server.pipeline.emotion import SegmentFeatures


def speaker_id(index: int) -> str:
    return f"SPEAKER_{index:02d}"


def build_segments(
    transcript: Transcript, diarization: Diarization, prosody: Sequence[WordProsody]
) -> list[Segment]:
    """Segments with complete words; a new segment starts wherever the speaker changes.

    Word times are made monotonic (a word never starts before the previous one ends, never
    ends before it starts), so every word lies inside its segment.
    """
    segments: list[Segment] = []
    prev_end = 0.0
    i = 0
    for asr in transcript.segments:
        current: list[tuple[Word, float, str]] = []
        for w in asr.words:
            start = round(max(w.start, prev_end), 3)
            end = round(max(w.end, start), 3)
            prev_end = end
            spk = speaker_id(diarization.word_speakers[i])
            word = Word(
                word=w.word.strip(),
                start=start,
                end=end,
                speaker_id=spk,
                volume_db=prosody[i].volume_db,
                pitch_hz=prosody[i].pitch_hz,
                probability=round(w.probability, 4),
            )
            if current and current[-1][0].speaker_id != spk:
                segments.append(_segment(current, asr.language or transcript.language))
                current = []
            current.append((word, diarization.word_confidence[i], w.word))
            i += 1
        if current:
            segments.append(_segment(current, asr.language or transcript.language))
    return segments


def _segment(items: list[tuple[Word, float, str]], language: str | None) -> Segment:
    words = [w for w, _, _ in items]
    confidence = sum(c for _, c, _ in items) / len(items)
    return Segment(
        start=words[0].start,
        end=words[-1].end,
        speaker=Speaker(
            speaker_id=words[0].speaker_id or speaker_id(0), confidence=round(confidence, 3)
        ),
        text="".join(raw for _, _, raw in items).strip(),
        words=words,
        language=language,
    )


def segment_features(segments: Sequence[Segment]) -> list[SegmentFeatures]:
    """What the emotion stage reads from each segment."""
    out = []
    for s in segments:
        vols = [w.volume_db for w in s.words if w.volume_db is not None]
        pitches = sorted(w.pitch_hz for w in s.words if w.pitch_hz is not None)
        out.append(
            SegmentFeatures(
                speaker=s.speaker.speaker_id,
                text=s.text,
                start=s.start,
                end=s.end,
                volume_db=sum(vols) / len(vols) if vols else None,
                pitch_hz=pitches[len(pitches) // 2] if pitches else None,
                language=s.language,
            )
        )
    return out


def build_result(
    segments: Sequence[Segment],
    emotions: Sequence[Emotion],
    *,
    filename: str | None,
    duration: float,
    transcript: Transcript,
    models: dict[str, str],
    processing_time: dict[str, float],
    word_timing: str | None = None,
) -> AnalysisResult:
    """The result (docs/result-schema.md)."""
    final = [s.model_copy(update={"emotion": e}) for s, e in zip(segments, emotions, strict=True)]
    speakers = {s.speaker.speaker_id for s in final}
    return AnalysisResult(
        metadata=Metadata(
            filename=filename,
            duration=round(duration, 3),
            total_segments=len(final),
            unique_speakers=len(speakers),
            language=transcript.language,
            language_probability=round(transcript.language_probability, 4),
            models=dict(models),
            word_timing=word_timing,
            processing_time={k: round(v, 3) for k, v in processing_time.items()},
        ),
        segments=final,
    )
