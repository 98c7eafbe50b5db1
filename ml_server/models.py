"""The models a worker process holds: loaded once (`get_models`), passed to every job, with the
analysis settings they run under (`AnalysisSettings`, apart from the models themselves)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import ctranslate2
from faster_whisper import BatchedInferencePipeline, WhisperModel
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from ecg_protocol import ErrorCode, Stage
from ml_server import model_hub
from ml_server.bundled import bundled_path, is_bundled
from ml_server.config import MLSettings, get_ml_settings
from ml_server.languages import model_id, supported_languages
from ml_server.pipeline.diarize import GE2EEncoder, OnnxSpeakerEncoder, SpeakerEncoder
from ml_server.pipeline.emotion import HFEmotionClassifier
from ml_server.pipeline.errors import StageError
from ml_server.pipeline.transcribe import AsrModels

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    """How a job runs on the models: settings, read once per process with the models."""

    device: str = "cpu"  # where the models were loaded (`ML_DEVICE` resolved)
    beam_size: int = 1
    batch_size: int = 8
    max_media_duration_s: float = 4 * 3600.0
    languages: tuple[str, ...] = ("en",)  # what jobs may ask for (model ∩ ML_LANGUAGES)
    temperatures: tuple[float, ...] = (0.0, 0.4)
    language_windows: int = 3

    @classmethod
    def from_settings(
        cls, settings: MLSettings, *, device: str, languages: tuple[str, ...]
    ) -> AnalysisSettings:
        return cls(
            device=device,
            beam_size=settings.ml_beam_size,
            batch_size=settings.ml_batch_size or (4 if device == "cpu" else 8),
            max_media_duration_s=settings.ml_max_media_duration_s,
            languages=languages,
            temperatures=settings.temperatures,
            language_windows=settings.ml_language_windows,
        )


@dataclass(frozen=True, slots=True)
class HeldAsr:
    """One more ASR model a request may choose (ML_EXTRA_ASR_MODELS), loaded at start."""

    model: WhisperModel
    batched: BatchedInferencePipeline | None
    languages: tuple[str, ...]  # what a job on it may ask for (its languages ∩ ML_LANGUAGES)
    label: str  # the result's metadata.models.asr


@dataclass(frozen=True, slots=True)
class Models:
    """Loaded models plus their names and versions for the result's metadata, and the analysis
    settings they run under (`analysis`; also readable as `models.beam_size` and so on)."""

    asr: WhisperModel
    # Set on GPU, and on CPU with ML_CPU_BATCHED (regions joined into 30 s clips).
    batched_asr: BatchedInferencePipeline | None
    speaker_encoder: SpeakerEncoder
    sentiment: SentimentIntensityAnalyzer
    emotion_classifier: HFEmotionClassifier | None
    analysis: AnalysisSettings = AnalysisSettings()
    names: dict[str, str] = field(default_factory=dict)
    # The English route (ML_ASR_ENGLISH_MODEL); None: the main model transcribes English too.
    asr_english: WhisperModel | None = None
    batched_asr_english: BatchedInferencePipeline | None = None
    # Every ASR model a request may name, by id (`languages.held_models`); the main one is "".
    main_id: str = ""
    english_id: str = ""
    extra_asr: dict[str, HeldAsr] = field(default_factory=dict)

    def choose(self, model_id: str | None) -> Models:
        """These models with the ASR model a request named as the only one (no English route):
        a request that names a model gets that model. None or the main id: these models.
        UNSUPPORTED_MODEL for one not held (models are never loaded per request)."""
        if model_id is None or model_id == self.main_id:
            return self
        if model_id == self.english_id and self.asr_english is not None:
            label = self.names.get("asr_english", "").removesuffix(" for English")
            held = HeldAsr(self.asr_english, self.batched_asr_english, ("en",), label)
        elif model_id in self.extra_asr:
            held = self.extra_asr[model_id]
        else:
            held_ids = [self.main_id, self.english_id, *self.extra_asr]
            raise StageError(
                Stage.TRANSCRIBE,
                ErrorCode.UNSUPPORTED_MODEL,
                f"this worker holds no ASR model {model_id!r} "
                f"(held: {', '.join(i for i in held_ids if i)})",
            )
        names = {k: v for k, v in self.names.items() if k != "asr_english"}
        names["asr"] = held.label
        return dataclasses.replace(
            self,
            asr=held.model,
            batched_asr=held.batched,
            asr_english=None,
            batched_asr_english=None,
            names=names,
            analysis=dataclasses.replace(self.analysis, languages=held.languages),
        )

    def with_analysis(self, **changes: Any) -> Models:
        """The same models under changed analysis settings (`temperatures=(0.0,)`)."""
        return dataclasses.replace(self, analysis=dataclasses.replace(self.analysis, **changes))

    # The stages read the settings from `models`: each is the one in `analysis`.
    @property
    def device(self) -> str:
        return self.analysis.device

    @property
    def beam_size(self) -> int:
        return self.analysis.beam_size

    @property
    def batch_size(self) -> int:
        return self.analysis.batch_size

    @property
    def max_media_duration_s(self) -> float:
        return self.analysis.max_media_duration_s

    @property
    def languages(self) -> tuple[str, ...]:
        return self.analysis.languages

    @property
    def temperatures(self) -> tuple[float, ...]:
        return self.analysis.temperatures

    @property
    def language_windows(self) -> int:
        return self.analysis.language_windows

    def asr_models(self) -> AsrModels:
        """The ASR models as the transcription stage takes them."""
        return AsrModels(
            main=self.asr,
            main_batched=self.batched_asr,
            english=self.asr_english,
            english_batched=self.batched_asr_english,
        )


def _pkg_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def resolve_device(device: str) -> str:
    """`auto` → cuda when CTranslate2 sees a GPU, else cpu."""
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_asr_model(name: str, data_dir: Path | None = None) -> tuple[str, str]:
    """(what WhisperModel loads, the name reported in metadata)."""
    if is_bundled(name):
        path = bundled_path(name, data_dir or get_ml_settings().ecg_data_dir)
        return str(path), name.split(":", 1)[1]
    return name, Path(name).name if Path(name).is_dir() else name


def _load_asr(name: str, settings: MLSettings, device: str, compute_type: str) -> WhisperModel:
    path, label = resolve_asr_model(name, settings.ecg_data_dir)
    if model_hub.is_hub_name(name):
        # The cached snapshot; pulled (sha-checked) first when ML_ALLOW_DOWNLOAD allows it.
        path = model_hub.asr_source(name, allow_download=settings.ml_allow_download)
    logger.info("loading ASR %s (%s, %s)", label, device, compute_type)
    return WhisperModel(
        path,
        device=device,
        compute_type=compute_type,
        cpu_threads=settings.ml_cpu_threads,
        # Nothing is fetched at run time: a named model must already be in the local cache.
        local_files_only=True,
    )


def load_models(settings: MLSettings) -> Models:
    """Load every model the pipeline needs (seconds to minutes; call once per process)."""
    import torch
    from faster_whisper.vad import get_vad_model

    # Workers are processes; one torch thread each keeps them from fighting over cores.
    torch.set_num_threads(1)
    if settings.ml_asr_seed >= 0:
        # Before the first decode: each decoding thread seeds its sampler once, at first use.
        ctranslate2.set_random_seed(settings.ml_asr_seed)
    device = resolve_device(settings.ml_device)
    compute_type = settings.ml_compute_type
    if compute_type == "default":
        compute_type = "int8" if device == "cpu" else "float16"
    asr = _load_asr(settings.ml_asr_model, settings, device, compute_type)
    batching = device == "cuda" or settings.ml_cpu_batched
    batched = BatchedInferencePipeline(asr) if batching else None
    english_name = settings.ml_asr_english_model.strip()
    asr_english = None
    # Worth a second model only in front of a multilingual main model.
    if english_name and english_name != settings.ml_asr_model and asr.model.is_multilingual:
        asr_english = _load_asr(english_name, settings, device, compute_type)
    batched_english = BatchedInferencePipeline(asr_english) if asr_english and batching else None
    get_vad_model()  # faster-whisper caches the Silero session per process; load it now
    encoder = _load_speaker_encoder(settings, device)
    classifier = None
    if settings.ml_emotion_model:
        classifier = HFEmotionClassifier(settings.ml_emotion_model, device=device)
    names = _model_names(settings, device, compute_type, english=asr_english is not None)
    languages = supported_languages(settings) if asr.model.is_multilingual else ("en",)
    main_id = model_id(settings.ml_asr_model)
    english_id = model_id(english_name) if asr_english is not None else ""
    extra = _load_extra_asr(settings, device, compute_type, held={main_id, english_id})
    return Models(
        asr=asr,
        batched_asr=batched,
        speaker_encoder=encoder,
        sentiment=SentimentIntensityAnalyzer(),
        emotion_classifier=classifier,
        analysis=AnalysisSettings.from_settings(settings, device=device, languages=languages),
        names=names,
        asr_english=asr_english,
        batched_asr_english=batched_english,
        main_id=main_id,
        english_id=english_id,
        extra_asr=extra,
    )


def _load_extra_asr(
    settings: MLSettings, device: str, compute_type: str, *, held: set[str]
) -> dict[str, HeldAsr]:
    """ML_EXTRA_ASR_MODELS, loaded once beside the main (and English) model, ids in `held`."""
    extra: dict[str, HeldAsr] = {}
    for name in settings.extra_asr_models:
        ident = model_id(name)
        if ident in held or ident in extra:
            continue  # the main or English model, or listed twice: held already
        model = _load_asr(name, settings, device, compute_type)
        batching = device == "cuda" or settings.ml_cpu_batched
        batched = BatchedInferencePipeline(model) if batching else None
        languages = supported_languages(settings, name) if model.model.is_multilingual else ("en",)
        label = (
            f"{resolve_asr_model(name, settings.ecg_data_dir)[1]} {_runtime(device, compute_type)}"
        )
        extra[ident] = HeldAsr(model, batched, languages, label)
    return extra


def _model_names(
    settings: MLSettings, device: str, compute_type: str, *, english: bool
) -> dict[str, str]:
    """What the result's `metadata.models` says was used, with versions and the runtime."""
    emotion_name = (
        f"vader {_pkg_version('vaderSentiment')} + prosodic arousal (English); "
        "prosodic arousal alone (other languages)"
    )
    if settings.ml_emotion_model:
        emotion_name = f"{settings.ml_emotion_model} (transformers {_pkg_version('transformers')})"
    fw = _pkg_version("faster-whisper")
    runtime = _runtime(device, compute_type)
    names = {
        "asr": f"{resolve_asr_model(settings.ml_asr_model, settings.ecg_data_dir)[1]} {runtime}",
        "vad": f"silero-vad v6 (faster-whisper {fw})",
        "speaker_encoder": _speaker_encoder_name(settings),
        "emotion": emotion_name,
        "prosody": "yin-f0 + rms-dbfs (numpy)",
    }
    if english:
        label = resolve_asr_model(settings.ml_asr_english_model.strip(), settings.ecg_data_dir)[1]
        names["asr_english"] = f"{label} {runtime} for English"
    return names


def _runtime(device: str, compute_type: str) -> str:
    return f"(faster-whisper {_pkg_version('faster-whisper')}, {device}/{compute_type})"


def _load_speaker_encoder(settings: MLSettings, device: str) -> SpeakerEncoder:
    """GE2E (bundled), or the ONNX encoder `ML_SPEAKER_MODEL` names (SpeakerModelError if it
    is missing or breaks the contract: the worker does not start)."""
    encoder: SpeakerEncoder
    if settings.ml_speaker_model:
        path = Path(settings.ml_speaker_model).expanduser()
        logger.info("loading speaker encoder %s (ONNX)", path)
        encoder = OnnxSpeakerEncoder.load(path, device)
    else:
        encoder = GE2EEncoder.load(device)
    _warm_up(encoder)
    return encoder


def _speaker_encoder_name(settings: MLSettings) -> str:
    if settings.ml_speaker_model:
        name = Path(settings.ml_speaker_model).name
        return f"{name} (onnxruntime {_pkg_version('onnxruntime')}, 80-bin Kaldi fbank + CMN)"
    return f"resemblyzer GE2E {_pkg_version('resemblyzer')}"


def _warm_up(encoder: SpeakerEncoder) -> None:
    """Run the front end and the encoder once: librosa's first call compiles (numba), which
    would otherwise land on the first job."""
    import numpy as np

    from ml_server.pipeline.data import Audio
    from ml_server.pipeline.diarize import WINDOW_S, Window, embed_windows

    embed_windows(Audio(np.zeros(32_000, dtype=np.int16)), [Window(0.0, WINDOW_S)], encoder)


_lock = threading.Lock()
_cached: Models | None = None


def get_models(settings: MLSettings | None = None) -> Models:
    """The process's models, loaded on first use (thread-safe)."""
    global _cached
    with _lock:
        if _cached is None:
            _cached = load_models(settings or get_ml_settings())
        return _cached
