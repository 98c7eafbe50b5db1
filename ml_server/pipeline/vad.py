"""Voice activity stage: Silero VAD (ONNX, shipped in faster-whisper) → speech regions.

The regions also drive transcription (only speech is fed to Whisper) and diarization (speaker
embeddings are taken only inside speech), so VAD runs once per job.
"""

from __future__ import annotations

from dataclasses import dataclass

from faster_whisper.vad import VadOptions, get_speech_timestamps

from ml_server.pipeline.data import Audio, SpeechRegion


@dataclass(frozen=True, slots=True)
class VadSettings:
    threshold: float = 0.5
    min_speech_duration_ms: int = 250
    # Shorter than faster-whisper's 2 s so pauses between turns split regions.
    min_silence_duration_ms: int = 500
    speech_pad_ms: int = 200
    max_speech_duration_s: float = 30.0


def detect_speech(audio: Audio, opts: VadSettings | None = None) -> list[SpeechRegion]:
    """Speech regions of `audio` in seconds; empty for silence."""
    o = opts or VadSettings()
    if audio.size == 0:
        return []
    chunks = get_speech_timestamps(
        audio.window(),  # float32 of this audio only: the caller bounds it (bounded.py)
        VadOptions(
            threshold=o.threshold,
            min_speech_duration_ms=o.min_speech_duration_ms,
            min_silence_duration_ms=o.min_silence_duration_ms,
            speech_pad_ms=o.speech_pad_ms,
            max_speech_duration_s=o.max_speech_duration_s,
        ),
        sampling_rate=audio.sample_rate,
    )
    sr = audio.sample_rate
    return [SpeechRegion(start=c["start"] / sr, end=c["end"] / sr) for c in chunks]


def regions_to_chunks(regions: list[SpeechRegion], sample_rate: int) -> list[dict[str, int]]:
    """Regions as faster-whisper's sample-index chunks."""
    return [
        {"start": round(r.start * sample_rate), "end": round(r.end * sample_rate)} for r in regions
    ]
