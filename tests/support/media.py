"""Synthetic test media with a known transcript and known speaker turns.

Two clearly different espeak-ng voices read known sentences, one turn each, with
silence between turns; ffmpeg muxes the result into mp4 (H.264 colour video + AAC), webm
(VP8 + Opus) or wav. Files are generated once per test session into a temp dir and reused.

    from tests.support.media import dialogue, not_media, no_audio_video, silence

    media = dialogue("mp4")          # SpeechMedia(path, text, turns, duration, speakers)
    media.turns[0].speaker           # "A"; .start/.end in seconds; .text
    dialogue("wav", long=True)       # ≥ 60 s, same two voices (benchmarks)

All functions return paths inside the session dir; never modify the files.
"""

from __future__ import annotations

import atexit
import io
import shutil
import subprocess
import tempfile
import threading
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Format = Literal["mp4", "webm", "wav"]

RATE = 22_050  # espeak-ng's native output rate
GAP_S = 1.0  # silence between turns
LEAD_S = 0.5  # silence before the first and after the last turn

# speaker → (espeak voice, pitch 0..99, words per minute)
VOICES: dict[str, tuple[str, int, int]] = {
    "A": ("en-us", 25, 150),  # low male
    "B": ("en+f3", 80, 165),  # high female
}

DIALOGUE: tuple[tuple[str, str], ...] = (
    ("A", "Good morning everyone, thank you for coming to the meeting today."),
    ("B", "Thanks for having me. I have some good news about the project."),
    ("A", "That is great to hear. Please tell us what happened last week."),
    ("B", "We finished the first version and the customers really like it."),
    ("A", "Wonderful. What should we work on next month?"),
    ("B", "I think we should improve the search page and fix the slow reports."),
)

LONG_EXTRA: tuple[tuple[str, str], ...] = (
    ("B", "Before we move on, I would like to talk about the budget for next year."),
    ("A", "Of course. How much money do we have left for the new servers?"),
    ("B", "We have about half of the money left, which should be enough for now."),
    ("A", "Good. Then we can also hire two more people for the support team."),
    ("B", "I agree. Let us write down a plan and share it with everyone on Friday."),
    ("A", "Thank you all. I will send the notes from this meeting after lunch."),
    ("B", "Please also add the dates for the next release to the notes."),
    ("A", "I will check the calendar and send you the dates this afternoon."),
    ("B", "Perfect. That is everything for today, see you all next week."),
)


@dataclass(frozen=True, slots=True)
class Turn:
    speaker: str  # "A" or "B"
    start: float  # seconds
    end: float
    text: str


@dataclass(frozen=True, slots=True)
class SpeechMedia:
    path: Path
    text: str  # every turn's text, joined by spaces
    turns: tuple[Turn, ...]
    duration: float

    @property
    def speakers(self) -> set[str]:
        return {t.speaker for t in self.turns}

    def speaker_at(self, t: float) -> str | None:
        """The speaker whose turn contains time `t` (None in a gap)."""
        for turn in self.turns:
            if turn.start <= t <= turn.end:
                return turn.speaker
        return None

    def nearest_speaker(self, t: float) -> str:
        """The speaker whose turn is closest to time `t`."""
        return min(self.turns, key=lambda u: max(u.start - t, t - u.end, 0.0)).speaker


_lock = threading.Lock()
_dir: Path | None = None
_cache: dict[tuple[str, ...], object] = {}


def session_dir() -> Path:
    """The temp dir this process's media lives in (removed at exit)."""
    global _dir
    with _lock:
        if _dir is None:
            _dir = Path(tempfile.mkdtemp(prefix="ecg-media-"))
            atexit.register(shutil.rmtree, _dir, True)
        return _dir


def _speak(speaker: str, text: str) -> np.ndarray:
    voice, pitch, speed = VOICES[speaker]
    out = subprocess.run(
        ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(_fixed_header(out))) as w:
        assert w.getframerate() == RATE and w.getsampwidth() == 2
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    audio = pcm.astype(np.float32) / 32768.0
    # Trim espeak's own leading/trailing silence so turn times are exact.
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[loud[0] : loud[-1] + 1] if loud.size else audio


def _fixed_header(data: bytes) -> bytes:
    """espeak-ng streams wav with 0xFFFFFFFF sizes; patch them so `wave` reads every frame."""
    buf = bytearray(data)
    buf[4:8] = (len(buf) - 8).to_bytes(4, "little")
    buf[40:44] = (len(buf) - 44).to_bytes(4, "little")
    return bytes(buf)


def _write_wav(path: Path, audio: np.ndarray, rate: int = RATE) -> None:
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _mux(wav: Path, fmt: Format, out: Path, duration: float) -> None:
    video = ["-f", "lavfi", "-i", f"color=c=navy:s=160x120:r=10:d={duration:.3f}"]
    if fmt == "mp4":
        _ffmpeg(
            *video,
            "-i",
            str(wav),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            "-shortest",
            str(out),
        )
    elif fmt == "webm":
        _ffmpeg(
            *video,
            "-i",
            str(wav),
            "-c:v",
            "libvpx",
            "-b:v",
            "100k",
            "-c:a",
            "libopus",
            "-b:a",
            "64k",
            "-shortest",
            str(out),
        )
    else:
        shutil.copyfile(wav, out)


def dialogue(fmt: Format = "mp4", *, long: bool = False) -> SpeechMedia:
    """The two-voice dialogue (≈ 28 s, or ≥ 60 s with `long`) in `fmt`, generated once.

    espeak-ng's voices share one synthesiser, so most variants sound alike to a speaker
    encoder; these two (low male, high female) differ clearly, as two real people would.
    """
    key = ("dialogue", fmt, str(long))
    with _lock:
        cached = _cache.get(key)
    if isinstance(cached, SpeechMedia):
        return cached
    script = DIALOGUE + LONG_EXTRA if long else DIALOGUE
    name = "long" if long else "dialogue"
    parts: list[np.ndarray] = [np.zeros(int(LEAD_S * RATE), dtype=np.float32)]
    turns: list[Turn] = []
    t = LEAD_S
    for i, (speaker, text) in enumerate(script):
        if i:
            parts.append(np.zeros(int(GAP_S * RATE), dtype=np.float32))
            t += int(GAP_S * RATE) / RATE
        speech = _speak(speaker, text)
        parts.append(speech * np.float32(0.5 / max(1e-6, float(np.abs(speech).max()))))
        turns.append(Turn(speaker, round(t, 3), round(t + len(speech) / RATE, 3), text))
        t += len(speech) / RATE
    parts.append(np.zeros(int(LEAD_S * RATE), dtype=np.float32))
    audio = np.concatenate(parts)
    d = session_dir()
    wav = d / f"{name}.src.wav"
    if not wav.exists():
        _write_wav(wav, audio)
    out = d / f"{name}.{fmt}"
    duration = len(audio) / RATE
    _mux(wav, fmt, out, duration)
    media = SpeechMedia(out, " ".join(tx for _, tx in script), tuple(turns), duration)
    with _lock:
        _cache[key] = media
    return media


def silence(seconds: float = 3.0, fmt: Format = "wav") -> Path:
    """Digital silence (with a video track unless wav)."""
    d = session_dir()
    wav = d / f"silence-{seconds:g}.src.wav"
    out = d / f"silence-{seconds:g}.{fmt}"
    if not out.exists():
        _write_wav(wav, np.zeros(int(seconds * RATE), dtype=np.float32))
        _mux(wav, fmt, out, seconds)
    return out


def no_audio_video(seconds: float = 2.0) -> Path:
    """An mp4 with a video track and no audio track."""
    out = session_dir() / "no-audio.mp4"
    if not out.exists():
        _ffmpeg(
            "-f",
            "lavfi",
            "-i",
            f"color=c=red:s=160x120:r=10:d={seconds}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            str(out),
        )
    return out


def not_media() -> Path:
    """A file named .mp4 that holds text, not media."""
    out = session_dir() / "not-media.mp4"
    if not out.exists():
        out.write_text("this is not a video, just some text pretending to be one\n" * 50)
    return out


def write_wav(path: Path, samples: np.ndarray, rate: int = 16_000) -> Path:
    """Write float samples in [-1, 1] as 16-bit mono wav (for synthetic-signal tests)."""
    _write_wav(path, samples.astype(np.float32), rate)
    return path
