"""The OpenAI-compatible transcription API's pure parts: waiting for a job and shaping answers.

`verbose_json` follows OpenAI's `TranscriptionVerbose` (language name, duration, text,
segments, words) and adds our fields on each word and segment (speaker, volume_db, pitch_hz,
emotion, the segment's language), which OpenAI clients keep as extras.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models.job import Job
from app.services.captions import CaptionOptions, render
from app.services.job_service import FINAL, JobService
from ecg_protocol import AnalysisResult, Segment
from ecg_protocol.languages import WHISPER_LANGUAGES

ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json"]
Task = Literal["transcribe", "translate"]

MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "text/plain; charset=utf-8",  # OpenAI answers captions as text/plain too
    "vtt": "text/plain; charset=utf-8",
}


async def wait_for_final(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    job_id: uuid.UUID,
    owner: str,
    timeout_s: float,
) -> Job | None:
    """The job once completed or failed; None when `timeout_s` passes first.

    Polls the database (the webhook writes there, on whichever replica gets the callback),
    from every 0.2 s up to every 2 s.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.2
    while True:
        async with session_factory() as session:
            job = await JobService(session).get_job(job_id=job_id, owner=owner)
        if job is not None and job.status in FINAL:
            return job
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 1.5, 2.0)


def _text(segments: Sequence[Segment]) -> str:
    return " ".join(s.text.strip() for s in segments if s.text.strip())


def _segment(n: int, seg: Segment, task: Task) -> dict[str, Any]:
    probs = [w.probability for w in seg.words if w.probability is not None]
    return {
        "id": n,
        "seek": 0,
        "start": seg.start,
        "end": seg.end,
        "text": seg.text,
        "tokens": [],
        "temperature": 0.0,
        # Not kept per segment by the pipeline: the mean word probability stands in for
        # avg_logprob's role (confidence), and the other two take neutral values.
        "avg_logprob": 0.0 if not probs else round(sum(probs) / len(probs) - 1.0, 4),
        "compression_ratio": 1.0,
        "no_speech_prob": 0.0,
        "speaker": seg.speaker.speaker_id,
        "emotion": seg.emotion.model_dump() if seg.emotion else None,
        # A turn may be read in another language than the media's; null in older results.
        "language": _language_name(seg.language, task) if seg.language else None,
    }


def _language_name(code: str, task: Task) -> str:
    """OpenAI names a language in lower-case English ("english"), not by code; a translation
    is English."""
    return WHISPER_LANGUAGES.get(code.lower(), code).lower() if task == "transcribe" else "english"


def verbose_json(
    result: AnalysisResult, *, task: Task, granularities: Sequence[str]
) -> dict[str, Any]:
    """OpenAI's verbose_json, plus speaker, loudness, pitch and emotion."""
    body: dict[str, Any] = {
        "task": task,
        "language": _language_name(result.metadata.language or "", task),
        "duration": result.metadata.duration or 0.0,
        "text": _text(result.segments),
    }
    if "segment" in granularities or not granularities:
        body["segments"] = [_segment(n, s, task) for n, s in enumerate(result.segments)]
    if "word" in granularities:
        body["words"] = [
            {
                "word": w.word.strip(),
                "start": w.start,
                "end": w.end,
                "speaker": w.speaker_id or s.speaker.speaker_id,
                "volume_db": w.volume_db,
                "pitch_hz": w.pitch_hz,
                "probability": w.probability,
            }
            for s in result.segments
            for w in s.words
        ]
    return body


def transcription_body(
    result: AnalysisResult,
    fmt: ResponseFormat,
    *,
    task: Task = "transcribe",
    granularities: Sequence[str] = (),
) -> str:
    """The answer's body in `fmt`, as OpenAI's `/v1/audio/transcriptions` gives it."""
    if fmt == "json":
        return json.dumps({"text": _text(result.segments)}, ensure_ascii=False)
    if fmt == "verbose_json":
        body = verbose_json(result, task=task, granularities=granularities)
        return json.dumps(body, ensure_ascii=False)
    if fmt == "text":
        return _text(result.segments) + "\n"
    # OpenAI's captions carry no speaker names; ours ask for them with the export endpoint.
    return render(result, fmt, CaptionOptions(speaker_labels=False))


def sse(data: dict[str, Any]) -> bytes:
    """One server-sent event carrying `data` as JSON."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def stream_events(result: AnalysisResult) -> list[dict[str, Any]]:
    """OpenAI's transcription stream: a `transcript.text.delta` per segment, then one
    `transcript.text.done` whose text is the deltas joined."""
    texts = [s.text.strip() for s in result.segments if s.text.strip()]
    events: list[dict[str, Any]] = [
        {"type": "transcript.text.delta", "delta": text if n == 0 else " " + text}
        for n, text in enumerate(texts)
    ]
    events.append({"type": "transcript.text.done", "text": " ".join(texts)})
    return events
