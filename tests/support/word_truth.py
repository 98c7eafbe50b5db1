"""Speech with known word times, for the alignment tests and benchmark.

Two kinds of truth, both from espeak-ng (the system's `libespeak-ng`, through ctypes):

- `gapped_clip(words)`: each word synthesised alone, its silence trimmed, joined with 60 ms
  gaps and a 350 ms pause every 8 words — every start and end is known to the sample.
- `running_speech(text, voice, rate)`: whole sentences as one utterance (words touch, no
  gaps); each word's start is the synthesiser's own word event (`espeakEVENT_WORD`, reported
  in the synthesis callback with its audio position), its end is the next word's start with
  any trailing silence trimmed (the silence before a pause is not part of the word).

Audio is returned at 16 kHz (resampled from espeak's 22 050 Hz), as the pipeline decodes it.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt
from scipy.signal import resample_poly

from ml_server.pipeline.data import SAMPLE_RATE

F32 = npt.NDArray[np.float32]

GAP_S = 0.06
PAUSE_S = 0.35
PAUSE_EVERY = 8
_SILENCE = 0.01  # |sample| below this is espeak's silence (its output is noise-free)

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_RATE, _PITCH = 1, 3


class _EventId(ctypes.Union):
    _fields_ = (("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8))


class _Event(ctypes.Structure):
    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    )


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True, slots=True)
class TrueWord:
    word: str
    start: float  # seconds
    end: float


@dataclass(frozen=True, slots=True)
class TruthClip:
    samples: F32  # 16 kHz mono float32
    words: tuple[TrueWord, ...]

    @property
    def text(self) -> str:
        return " ".join(w.word for w in self.words)


class _Espeak:
    """libespeak-ng in synchronous mode; one synthesis at a time (the library is global)."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libespeak-ng.so.1")
        self.rate = int(self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 500, None, 0))
        if self.rate <= 0:
            raise RuntimeError("espeak_Initialize failed")
        self.pcm: list[npt.NDArray[np.int16]] = []
        self.events: list[tuple[int, int, int]] = []  # (sample, text_position, length)
        self.callback = _Callback(self._on_synth)  # kept referenced: C holds the pointer
        self.lib.espeak_SetSynthCallback(self.callback)
        self.lock = threading.Lock()

    def _on_synth(
        self, wav: ctypes._Pointer[ctypes.c_short], n: int, events: ctypes._Pointer[_Event]
    ) -> int:
        if n > 0 and wav:
            self.pcm.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type == _EVENT_WORD:
                self.events.append((e.sample, e.text_position, e.length))
            i += 1
        return 0

    def synth(
        self, text: str, voice: str, rate: int, pitch: int
    ) -> tuple[F32, list[tuple[int, int, int]]]:
        """espeak's samples (native rate) and its word events (sample, char pos 1-based, len)."""
        with self.lock:
            self.pcm, self.events = [], []
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"unknown espeak voice {voice!r}")
            self.lib.espeak_SetParameter(_RATE, rate, 0)
            self.lib.espeak_SetParameter(_PITCH, pitch, 0)
            data = text.encode()
            rc = self.lib.espeak_Synth(
                data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            if rc != 0:
                raise RuntimeError(f"espeak_Synth failed ({rc})")
            self.lib.espeak_Synchronize()
            pcm = np.concatenate(self.pcm) if self.pcm else np.zeros(0, np.int16)
            return pcm.astype(np.float32) / 32768.0, list(self.events)


_engine: _Espeak | None = None
_engine_lock = threading.Lock()


def _espeak() -> _Espeak:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _Espeak()
        return _engine


def _to_16k(x: F32, rate: int) -> F32:
    ratio = Fraction(SAMPLE_RATE, rate)
    y = resample_poly(x, ratio.numerator, ratio.denominator)
    return y.astype(np.float32)


def _trim(x: F32) -> F32:
    loud = np.flatnonzero(np.abs(x) > _SILENCE)
    return x[loud[0] : loud[-1] + 1] if loud.size else x[:0]


def gapped_clip(
    words: list[str], *, voice: str = "en-us", rate: int = 175, pitch: int = 50
) -> TruthClip:
    """Words spoken one by one, trimmed, 60 ms apart with a 350 ms pause every 8 words."""
    eng = _espeak()
    pieces: list[F32] = [np.zeros(round(PAUSE_S * SAMPLE_RATE), np.float32)]
    truth: list[TrueWord] = []
    pos = pieces[0].size
    for i, word in enumerate(words):
        if i:
            gap = PAUSE_S if i % PAUSE_EVERY == 0 else GAP_S
            pieces.append(np.zeros(round(gap * SAMPLE_RATE), np.float32))
            pos += pieces[-1].size
        raw, _ = eng.synth(word, voice, rate, pitch)
        audio = _trim(_to_16k(_trim(raw), eng.rate))
        pieces.append(audio)
        truth.append(TrueWord(word, pos / SAMPLE_RATE, (pos + audio.size) / SAMPLE_RATE))
        pos += audio.size
    pieces.append(np.zeros(round(PAUSE_S * SAMPLE_RATE), np.float32))
    return TruthClip(np.concatenate(pieces), tuple(truth))


def running_speech(
    text: str, *, voice: str = "en-us", rate: int = 175, pitch: int = 50, lead_s: float = 0.3
) -> TruthClip:
    """`text` as one utterance; word starts from espeak's word events (see module doc)."""
    eng = _espeak()
    raw, events = eng.synth(text, voice, rate, pitch)
    audio = _to_16k(raw, eng.rate)
    scale = SAMPLE_RATE / eng.rate
    lead = round(lead_s * SAMPLE_RATE)
    starts = [round(s * scale) for s, _, _ in events]
    names = [text.encode()[p - 1 : p - 1 + n].decode(errors="replace") for _, p, n in events]
    truth: list[TrueWord] = []
    for i, (start, name) in enumerate(zip(starts, names, strict=True)):
        stop = starts[i + 1] if i + 1 < len(starts) else audio.size
        loud = np.flatnonzero(np.abs(audio[start:stop]) > _SILENCE)
        # A word starts at its first audible sample (a stop's silent closure is not heard,
        # and the gapped clip is trimmed the same way) and ends at its last one.
        first = start + (int(loud[0]) if loud.size else 0)
        end = start + (int(loud[-1]) + 1 if loud.size else 0)
        truth.append(TrueWord(name, (first + lead) / SAMPLE_RATE, (end + lead) / SAMPLE_RATE))
    pad = np.zeros(lead, np.float32)
    return TruthClip(np.concatenate([pad, audio, pad]), tuple(truth))
