"""Multilingual test speech: the pytest-audioeval clips (tests/data/audioeval) and espeak-ng
Korean, plus the error measures the language tests and bench/bench_languages.py share.

    for clip in audioeval_clips(): clip.lang, clip.path, clip.text, clip.counting
    error_rate("Hola mundo.", "hola mundo", "es")    # WER; CER for ja/zh
    korean_speech()                                  # (wav path, its Korean text)
"""

from __future__ import annotations

import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from tests.support.media import session_dir
from tests.support.transcripts import edit_distance

AUDIOEVAL_DIR = Path(__file__).resolve().parent.parent / "data" / "audioeval"
CHARACTER_LANGUAGES = frozenset({"ja", "zh"})  # no spaces between words: CER, not WER
# The clip of each language that counts one to ten: Whisper writes digits ("1, 2, 3"), which
# word error cannot score fairly, so they count for language only (as in issue 8).
COUNTING = frozenset(
    {
        "counting",
        "conteo",
        "comptage",
        "ginti",
        "conteggio",
        "kazoeru",
        "liczenie",
        "contagem",
        "jishu",
    }
)

KOREAN_TEXT = "안녕하세요. 오늘은 날씨가 정말 좋습니다. 우리는 공원에서 산책을 했습니다."


@dataclass(frozen=True, slots=True)
class Clip:
    lang: str
    name: str
    path: Path
    text: str

    @property
    def counting(self) -> bool:
        return self.name in COUNTING


def audioeval_clips() -> list[Clip]:
    """All 27 clips (9 languages × 3), sorted by language then name."""
    clips = []
    for path in sorted(AUDIOEVAL_DIR.glob("*/*.flac")):
        text = path.with_suffix(".txt").read_text(encoding="utf-8").strip()
        clips.append(Clip(lang=path.parent.name, name=path.stem, path=path, text=text))
    return clips


def _normalise(text: str) -> str:
    kept = (c for c in unicodedata.normalize("NFC", text.lower()) if not _is_punct(c))
    return " ".join("".join(kept).split())


def _is_punct(c: str) -> bool:
    return unicodedata.category(c)[0] in "PS"


def error_rate(reference: str, hypothesis: str, lang: str) -> float:
    """WER (CER for ja/zh) after lower-casing and dropping punctuation."""
    ref, hyp = _normalise(reference), _normalise(hypothesis)
    if lang in CHARACTER_LANGUAGES:
        r, h = list(ref.replace(" ", "")), list(hyp.replace(" ", ""))
    else:
        r, h = ref.split(), hyp.split()
    return edit_distance(r, h) / max(1, len(r))


def hangul_share(text: str) -> float:
    """Fraction of letters that are Hangul syllables or jamo."""
    letters = [c for c in text if c.isalpha()]
    hangul = [c for c in letters if "\uac00" <= c <= "\ud7a3" or "\u1100" <= c <= "\u11ff"]
    return len(hangul) / len(letters) if letters else 0.0


def korean_speech() -> tuple[Path, str]:
    """espeak-ng's Korean voice reading KOREAN_TEXT, 16 kHz wav, generated once per session."""
    path = session_dir() / "korean.wav"
    if not path.exists():
        raw = path.with_suffix(".raw.wav")
        subprocess.run(
            ["espeak-ng", "-v", "ko", "-s", "140", "-w", str(raw), KOREAN_TEXT],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-i",
                str(raw),
                "-af",
                "apad=pad_dur=0.5",
                "-ar",
                "16000",
                "-ac",
                "1",
                str(path),
            ],
            check=True,
            capture_output=True,
        )
    return path, KOREAN_TEXT


FRENCH_TEXT = (
    "Bonjour à tous. Aujourd'hui nous parlons du projet et des prochaines étapes. "
    "L'équipe a terminé la première version la semaine dernière et les clients sont contents. "
    "Le mois prochain, nous allons améliorer la recherche et corriger les rapports trop lents. "
)


def french_speech(repeat: int = 5) -> Path:
    """espeak-ng French reading FRENCH_TEXT `repeat` times (about a minute at 5), generated once."""
    path = session_dir() / f"french-{repeat}.wav"
    if not path.exists():
        raw = path.with_suffix(".raw.wav")
        subprocess.run(
            ["espeak-ng", "-v", "fr", "-s", "150", "-w", str(raw), FRENCH_TEXT * repeat],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(raw), "-ar", "16000", "-ac", "1", str(path)],
            check=True,
            capture_output=True,
        )
    return path
