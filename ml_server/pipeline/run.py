"""The analysis pipeline (docs/pipeline.md): decode → vad → transcribe → align → diarize →
prosody → emotion → result.

`run_pipeline` runs every stage after download on a local media file, with models loaded once
per process (`ml_server.models.get_models`). Each stage is a module with typed input → typed
output; this function only sequences them, times them, reports progress and checks for
cancellation between stages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ecg_protocol import AnalysisResult, Emotion, ErrorCode, Segment, Stage
from ml_server.allocator import give_back
from ml_server.pipeline.data import Audio, DecodingHints, Diarization, SpeechRegion, Transcript
from ml_server.pipeline.errors import Cancelled, StageError

if TYPE_CHECKING:
    from ml_server.models import Models
    from ml_server.pipeline.prosody import PitchTrack

__all__ = ["STAGE_PROGRESS", "Cancelled", "PipelineOptions", "StageError", "run_pipeline"]

logger = logging.getLogger(__name__)

# Progress reported when each stage starts; download (the service's) owns 0–10.
STAGE_PROGRESS: dict[Stage, int] = {
    Stage.DECODE: 10,
    Stage.VAD: 15,
    Stage.TRANSCRIBE: 20,
    Stage.ALIGN: 74,
    Stage.DIARIZE: 75,
    Stage.PROSODY: 85,
    Stage.EMOTION: 90,
    Stage.FINALIZE: 95,
}
_TRANSCRIBE_END = 73  # transcription reports 20..73 as it goes


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    """Per-job options (from the request)."""

    language: str = "auto"
    min_speakers: int | None = None
    max_speakers: int | None = None
    filename: str | None = None
    decoding: DecodingHints = field(default_factory=DecodingHints)


def _job_languages(value: str, supported: tuple[str, ...]) -> tuple[str, ...] | None:
    """The job's languages (None = any the model knows); UNSUPPORTED_LANGUAGE otherwise."""
    from ecg_protocol.languages import LanguageError
    from ml_server.languages import ALL_LANGUAGES, resolve_request

    try:
        allowed = resolve_request(value, supported)
    except LanguageError as exc:
        raise StageError(Stage.TRANSCRIBE, ErrorCode.UNSUPPORTED_LANGUAGE, str(exc)) from exc
    return None if allowed == ALL_LANGUAGES else allowed


def _no_progress(stage: Stage, progress: int) -> None:
    return None


def _never() -> bool:
    return False


class _Stages:
    """Runs the stages of one job: progress (never backwards), timings, cancel checks, and
    any unexpected exception turned into the stage's PROCESSING_ERROR."""

    def __init__(
        self, progress: Callable[[Stage, int], None], should_cancel: Callable[[], bool], job_id: str
    ) -> None:
        self._progress = progress
        self.should_cancel = should_cancel
        self._job_id = job_id
        self._last = 0
        self.timings: dict[str, float] = {}

    def report(self, stage: Stage, value: int) -> None:
        # Monotonic by construction: never send a value lower than one already sent.
        if value > self._last:
            self._last = value
            self._progress(stage, value)

    @contextmanager
    def stage(self, name: Stage) -> Iterator[None]:
        if self.should_cancel():
            raise Cancelled(name)
        self.report(name, STAGE_PROGRESS[name])
        t0 = time.perf_counter()
        try:
            yield
        except (StageError, Cancelled):
            raise
        except Exception as exc:
            logger.exception("job %s: stage %s failed", self._job_id, name.value)
            raise StageError(
                name, ErrorCode.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}"
            ) from exc
        finally:
            # Summed: a stage may run in parts (prosody's pitch is waited for after diarize).
            elapsed = time.perf_counter() - t0
            self.timings[name.value] = self.timings.get(name.value, 0.0) + elapsed
        logger.info("job %s: %s took %.2f s", self._job_id, name.value, self.timings[name.value])


def run_pipeline(
    media_path: Path | str,
    *,
    options: PipelineOptions,
    models: Models,
    progress: Callable[[Stage, int], None] = _no_progress,
    should_cancel: Callable[[], bool] = _never,
    job_id: str = "-",
) -> AnalysisResult:
    """Analyse a local media file. Raises StageError (with a stable code) or Cancelled."""
    from ml_server.pipeline import bounded, decode, level

    # A plain string path is a path: taken as one here, not failed at the end, after the
    # whole analysis, with PROCESSING_ERROR.
    media_path = Path(media_path)

    # Before any work: a language this worker's model cannot transcribe fails at once.
    languages = _job_languages(options.language, models.languages)
    stages = _Stages(progress, should_cancel, job_id)
    with stages.stage(Stage.DECODE):
        audio = decode.decode(media_path, max_duration_s=models.max_media_duration_s)
        # Far too quiet media is raised for the models that listen (level.py); the prosody
        # and emotion stages measure the media as it is.
        listening = level.for_listening(audio)
    with stages.stage(Stage.VAD):
        regions = bounded.detect_speech(listening)  # in windows: memory bounded on long media
    give_back()  # VAD's windows are freed: their pages go back before transcription's peak
    heard = _words_and_speakers(audio, listening, regions, options, languages, models, stages)
    del listening  # the raised copy, where there is one, is not kept past hearing
    described = _describe_segments(audio, heard, models, stages)
    with stages.stage(Stage.FINALIZE):
        result = _assemble(media_path, audio, heard, described, options, models, stages)
    # FINALIZE's own time is known only now; it is tiny but reported for completeness.
    finalize_s = stages.timings[Stage.FINALIZE.value]
    result.metadata.processing_time[Stage.FINALIZE.value] = round(finalize_s, 3)
    give_back()  # a worker holds between jobs what it held before this one
    return result


@dataclass(frozen=True, slots=True)
class _Heard:
    """What was said, when, and by whom (the transcribe → align → diarize steps)."""

    transcript: Transcript
    word_timing: str
    diarization: Diarization
    pitch: PitchTrack  # over the speech regions; prosody adds any word outside them


@dataclass(frozen=True, slots=True)
class _Described:
    """Segments with their words' prosody, and each segment's emotion."""

    segments: list[Segment]
    emotions: list[Emotion]


def _words_and_speakers(
    media: Audio,
    audio: Audio,
    regions: list[SpeechRegion],
    options: PipelineOptions,
    languages: tuple[str, ...] | None,
    models: Models,
    stages: _Stages,
) -> _Heard:
    """Transcribe and embed at once, then align the words and give each its speaker.

    Speaker embeddings need only the audio and the speech regions, so they are computed on a
    second thread while faster-whisper transcribes (both release the GIL); the diarize stage
    then only waits for them, clusters and assigns words. The same thread then tracks the
    pitch of `media` (its gate allows for any raise) over the speech regions, where the
    words will be: decoding leaves part of a core idle (13 min of ami-dev, 2 cores: 1.5 cores
    busy), and the prosody stage then computes only frames of words outside the regions.
    """
    from ml_server.pipeline import align, diarize, prosody, word_spans

    diarize_opts = diarize.DiarizeSettings(
        min_speakers=options.min_speakers, max_speakers=options.max_speakers
    )
    abandon = threading.Event()  # set when the job stops early: the embedding thread quits too

    def stop() -> bool:
        return abandon.is_set() or stages.should_cancel()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecg-embed") as pool:
        try:
            with stages.stage(Stage.TRANSCRIBE):
                embedding = pool.submit(
                    diarize.embed_speech, audio, regions, diarize_opts, models.speaker_encoder, stop
                )
                spans = prosody.around([(r.start, r.end) for r in regions])
                pitch = pool.submit(prosody.track_pitch, media, spans=spans, stop=stop)
                transcript = _transcribe(audio, regions, options, languages, models, stages)
            give_back()  # the decoders' buffers, before align and diarize make theirs
            with stages.stage(Stage.ALIGN):
                aligned = align.align_words(audio, transcript)
            transcript = aligned.transcript
            with stages.stage(Stage.DIARIZE):
                diarization = diarize.assign_speakers(
                    embedding.result(),
                    transcript.words,
                    diarize_opts,
                    diarize.segment_starts(transcript.segments),
                )
            with stages.stage(Stage.PROSODY):  # its first part: the pitch over the regions
                track = pitch.result()
        except BaseException:
            # Whatever stopped the job, the thread's work is not needed: it stops at its next
            # check instead of the pool waiting for it (the pitch of hours of speech).
            abandon.set()
            raise
    # Words with no length get one only now: the diarization's settings were calibrated on the
    # aligner's times, and spreading first moved an edge clip's speaker count (docs/pipeline.md
    # "Word spans"). Prosody and the result use it.
    spread = word_spans.spread(transcript, audio.duration)
    return _Heard(spread, aligned.method, diarization, track)


def _transcribe(
    audio: Audio,
    regions: list[SpeechRegion],
    options: PipelineOptions,
    languages: tuple[str, ...] | None,
    models: Models,
    stages: _Stages,
) -> Transcript:
    """The speech regions to text, in groups (memory bounded), reporting 20..73 % as it goes."""
    from ml_server.pipeline import transcribe

    span = _TRANSCRIBE_END - STAGE_PROGRESS[Stage.TRANSCRIBE]

    def on_asr_progress(fraction: float) -> None:
        # Transcription is most of the time: a cancel also stops it between segments.
        if stages.should_cancel():
            raise Cancelled(Stage.TRANSCRIBE)
        stages.report(Stage.TRANSCRIBE, STAGE_PROGRESS[Stage.TRANSCRIBE] + int(span * fraction))

    return transcribe.transcribe_speech(
        audio,
        regions,
        transcribe.TranscribeSettings(
            languages=languages,
            hints=options.decoding,
            beam_size=models.beam_size,
            batch_size=models.batch_size,
            temperatures=models.temperatures,
            detection_windows=models.language_windows,
        ),
        models.asr_models(),
        on_progress=on_asr_progress,
    )


def _describe_segments(audio: Audio, heard: _Heard, models: Models, stages: _Stages) -> _Described:
    """How each word was said (prosody), then each segment's emotion."""
    from ml_server.pipeline import assemble, emotion, prosody

    with stages.stage(Stage.PROSODY):
        word_prosody = prosody.measure_words(audio, heard.transcript.words, known=heard.pitch)
    with stages.stage(Stage.EMOTION):
        segments = assemble.build_segments(heard.transcript, heard.diarization, word_prosody)
        emotions = emotion.classify_segments(
            assemble.segment_features(segments),
            audio,
            models.sentiment,
            models.emotion_classifier,
            language=heard.transcript.language,
        )
    return _Described(segments, emotions)


def _assemble(
    media_path: Path,
    audio: Audio,
    heard: _Heard,
    described: _Described,
    options: PipelineOptions,
    models: Models,
    stages: _Stages,
) -> AnalysisResult:
    from ml_server.pipeline import assemble

    return assemble.build_result(
        described.segments,
        described.emotions,
        filename=options.filename or media_path.name,
        duration=audio.duration,
        transcript=heard.transcript,
        models=models.names,
        processing_time=stages.timings,
        word_timing=heard.word_timing,
    )
