"""Diarization stage: who said each word.

`embed` — speaker embeddings (a `SpeakerEncoder`: resemblyzer's GE2E by default, or an ONNX
WeSpeaker/3D-Speaker encoder, `ML_SPEAKER_MODEL`) over 1.6 s windows inside the speech, batched,
on a second thread while transcription runs; `count` — how many speakers, decided once, on the
speech alone (`count_speakers`); `assign` — word units clustered into that many speakers, a
Viterbi re-segmentation of the windows (`resegment`), each word given the speaker whose windows
cover it most (whisperX's assign_word_speakers), voted per unit (`speaker_units`). Method,
calibration and figures: docs/pipeline.md, "Diarization".
"""

from ml_server.pipeline.diarize.assign import (
    assign_speakers,
    assign_word_speakers,
    diarize,
    segment_starts,
)
from ml_server.pipeline.diarize.count import (
    choose_cut,
    cluster,
    count_bounds,
    count_speakers,
    fold_small,
    merge_to,
    silhouette,
)
from ml_server.pipeline.diarize.embed import (
    WINDOW_S,
    GE2EEncoder,
    OnnxSpeakerEncoder,
    SpeakerEmbeddings,
    SpeakerEncoder,
    SpeakerModelError,
    Window,
    embed_speech,
    embed_windows,
    speech_windows,
)
from ml_server.pipeline.diarize.settings import DiarizeSettings

__all__ = [
    "WINDOW_S",
    "DiarizeSettings",
    "GE2EEncoder",
    "OnnxSpeakerEncoder",
    "SpeakerEmbeddings",
    "SpeakerEncoder",
    "SpeakerModelError",
    "Window",
    "assign_speakers",
    "assign_word_speakers",
    "choose_cut",
    "cluster",
    "count_bounds",
    "count_speakers",
    "diarize",
    "embed_speech",
    "embed_windows",
    "fold_small",
    "merge_to",
    "segment_starts",
    "silhouette",
    "speech_windows",
]
