"""Word-time accuracy: Whisper's own times ("before") vs the alignment stage ("after").

Run by hand:  .venv/bin/python -m bench.bench_alignment [--split tune|report|all] [--json out.json]

Truth comes from espeak-ng (tests/support/word_truth.py): the gapped clip (49 words spoken one
by one, trimmed, 60 ms gaps, 350 ms pause every 8 words) and running sentences whose word
starts are the synthesiser's own word events, in several voices and rates. Each clip goes
through the pipeline's own decode-free path: VAD → transcription (bundled tiny.en) →
alignment. Recognised words are matched to the true words in order (difflib on normalised
text); unmatched words are not scored (their count is shown). Per condition: start and end
error median, p90 and share within 100 ms, before and after.

The "tune" split chose the constants of `AlignSettings`; the "report" split (other sentences,
other voices and rates) and the gapped clip were not looked at while choosing them. Every
running clip is also measured with mains hum (50 Hz in tune, 60 Hz in report) and with
broadband noise (white in tune, pink in report) added under its level: how the stage holds
up in a room that is not a studio.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ml_server.config import BUNDLED_ENGLISH_ASR
from ml_server.models import resolve_asr_model
from ml_server.pipeline import align, transcribe, vad
from ml_server.pipeline.data import SAMPLE_RATE, AsrWord, Audio, Transcript
from tests.support.word_truth import TruthClip, gapped_clip, running_speech

GAPPED_WORDS = tuple(
    [
        "river",
        "window",
        "garden",
        "yellow",
        "morning",
        "table",
        "seven",
        "number",
        "pocket",
        "silver",
        "market",
        "doctor",
        "winter",
        "basket",
        "finger",
        "orange",
        "candle",
        "paper",
        "village",
        "summer",
        "button",
        "mountain",
        "lemon",
        "rabbit",
        "camera",
        "hammer",
        "ocean",
        "pencil",
        "bottle",
        "monkey",
        "guitar",
        "dinner",
        "kitten",
        "forest",
        "jacket",
        "ladder",
        "planet",
        "rocket",
        "tiger",
        "wagon",
        "butter",
        "island",
        "marble",
        "pepper",
        "spider",
        "tunnel",
        "violin",
        "wallet",
        "zebra",
    ]
)

TUNE_TEXT = (
    "The weather was cold this morning, so we stayed inside and read the papers. "
    "After lunch my brother fixed the kitchen door and painted the old fence. "
    "Nobody expected the train to arrive so early, but it came at seven sharp. "
    "She opened the window and listened to the birds singing in the garden."
)
REPORT_TEXT = (
    "Our team will present the results of the survey at the meeting next Tuesday. "
    "Please remember to bring your laptop, a charger, and the printed schedule. "
    "The children played football in the park until the sun went down behind the hills. "
    "When the music stopped, everyone turned around and looked at the stage."
)

# (voice, words per minute, pitch); voices and rates differ between the splits.
TUNE_VOICES = (("en-us", 175, 50), ("en-gb-scotland+f2", 150, 60), ("en-us+m3", 200, 40))
REPORT_VOICES = (
    ("en-us", 140, 45),
    ("en-gb-x-rp", 175, 50),
    ("en-us+f3", 220, 70),
    ("en-029+m2", 190, 35),
)


# Mains hum (a ground loop): the fundamental and its 2nd and 3rd harmonics (amplitudes 1, 0.6,
# 0.4), HUM_BELOW_DB under the clip's RMS. 50 Hz in the tune split, 60 Hz in the report split,
# so that the frequency a setting was chosen on is not the one it is reported on.
HUM_BELOW_DB = 15.0
HUM_HZ = {"tune": 50.0, "report": 60.0}


def with_hum(clip: TruthClip, hz: float) -> TruthClip:
    """`clip` with mains hum at `hz` added, HUM_BELOW_DB under its RMS."""
    t = np.arange(clip.samples.size) / SAMPLE_RATE
    hum = sum(a * np.sin(2 * np.pi * k * hz * t) for k, a in ((1, 1.0), (2, 0.6), (3, 0.4)))
    rms = float(np.sqrt(np.mean(np.square(clip.samples, dtype=np.float64))))
    gain = rms * 10 ** (-HUM_BELOW_DB / 20) / float(np.sqrt(np.mean(np.square(hum))))
    return replace(clip, samples=(clip.samples + gain * hum).astype(np.float32))


# Broadband noise (a fan, tape hiss), HISS_BELOW_DB under the clip's RMS: white in the tune
# split, pink (more of it low down, like most rooms) in the report split.
HISS_BELOW_DB = 20.0
HISS = {"tune": "white", "report": "pink"}


def with_hiss(clip: TruthClip, colour: str) -> TruthClip:
    """`clip` with white or pink noise added, HISS_BELOW_DB under its RMS (fixed seed)."""
    noise = np.random.default_rng(7).standard_normal(clip.samples.size)
    if colour == "pink":  # 1/f power: white noise shaped by 1/sqrt(f) in the spectrum
        spec = np.fft.rfft(noise)
        spec[1:] /= np.sqrt(np.arange(1, spec.size))
        noise = np.fft.irfft(spec, noise.size)
    rms = float(np.sqrt(np.mean(np.square(clip.samples, dtype=np.float64))))
    gain = rms * 10 ** (-HISS_BELOW_DB / 20) / float(np.sqrt(np.mean(np.square(noise))))
    return replace(clip, samples=(clip.samples + gain * noise).astype(np.float32))


@dataclass(frozen=True, slots=True)
class Condition:
    name: str
    split: str
    clip: TruthClip


def conditions(split: str) -> list[Condition]:
    """The clips of `split` ("tune", "report" or "all")."""
    out: list[Condition] = []
    if split in ("tune", "all"):
        for voice, rate, pitch in TUNE_VOICES:
            clip = running_speech(TUNE_TEXT, voice=voice, rate=rate, pitch=pitch)
            out.append(Condition(f"running {voice} {rate} wpm", "tune", clip))
    if split in ("report", "all"):
        out.append(
            Condition("gapped en-us 175 wpm (issue 13)", "report", gapped_clip(list(GAPPED_WORDS)))
        )
        for voice, rate, pitch in REPORT_VOICES:
            clip = running_speech(REPORT_TEXT, voice=voice, rate=rate, pitch=pitch)
            out.append(Condition(f"running {voice} {rate} wpm", "report", clip))
    hummed = [
        Condition(
            f"hum {HUM_HZ[c.split]:.0f} Hz: {c.name}", c.split, with_hum(c.clip, HUM_HZ[c.split])
        )
        for c in out
        if c.name.startswith("running")
    ]
    hissed = [
        Condition(f"hiss {HISS[c.split]}: {c.name}", c.split, with_hiss(c.clip, HISS[c.split]))
        for c in out
        if c.name.startswith("running")
    ]
    return out + hummed + hissed


def _norm(word: str) -> str:
    return re.sub(r"[^a-z0-9']", "", word.lower())


def matched_errors(clip: TruthClip, words: list[AsrWord]) -> tuple[list[float], list[float]]:
    """Signed start and end errors (s) of the recognised words that match a true word."""
    truth = [_norm(w.word) for w in clip.words]
    heard = [_norm(w.word) for w in words]
    sm = difflib.SequenceMatcher(a=truth, b=heard, autojunk=False)
    starts, ends = [], []
    for block in sm.get_matching_blocks():
        for k in range(block.size):
            i, j = block.a + k, block.b + k
            starts.append(words[j].start - clip.words[i].start)
            ends.append(words[j].end - clip.words[i].end)
    return starts, ends


def summary(errors: list[float]) -> dict[str, float]:
    e = np.abs(np.asarray(errors)) * 1000
    if e.size == 0:
        return {"median_ms": float("nan"), "p90_ms": float("nan"), "within_100ms": float("nan")}
    return {
        "median_ms": round(float(np.median(e)), 1),
        "p90_ms": round(float(np.percentile(e, 90)), 1),
        "within_100ms": round(float(np.mean(e <= 100)), 3),
        "bias_ms": round(float(np.median(errors)) * 1000, 1),
    }


def transcribe_clip(clip: TruthClip, model: Any) -> tuple[Audio, Transcript]:
    audio = Audio(clip.samples)
    regions = vad.detect_speech(audio)
    settings = transcribe.TranscribeSettings(languages=("en",))
    return audio, transcribe.read(audio, regions, settings, model)


def evaluate(
    cases: list[tuple[Condition, Audio, Transcript]], opts: align.AlignSettings | None = None
) -> list[dict[str, Any]]:
    """Before/after figures per condition, plus the pooled ones per split."""
    rows: list[dict[str, Any]] = []
    pooled: dict[str, dict[str, list[float]]] = {}
    for cond, audio, transcript in cases:
        t0 = time.perf_counter()
        aligned = align.align_words(audio, transcript, opts)
        took = time.perf_counter() - t0
        b_start, b_end = matched_errors(cond.clip, transcript.words)
        a_start, a_end = matched_errors(cond.clip, aligned.transcript.words)
        rows.append(
            _row(cond.name, cond.split, len(cond.clip.words), b_start, b_end, a_start, a_end)
        )
        rows[-1]["align_s"] = round(took, 4)
        rows[-1]["audio_s"] = round(audio.duration, 2)
        kind = next(k for k in ("gapped", "hum", "hiss", "running") if k in cond.name)
        p = pooled.setdefault(f"{cond.split} {kind}", {})
        for key, vals in (("bs", b_start), ("be", b_end), ("as", a_start), ("ae", a_end)):
            p.setdefault(key, []).extend(vals)
    for name, p in pooled.items():
        rows.append(_row(f"ALL {name}", name.split()[0], 0, p["bs"], p["be"], p["as"], p["ae"]))
    return rows


def _row(
    name: str,
    split: str,
    n_true: int,
    bs: list[float],
    be: list[float],
    as_: list[float],
    ae: list[float],
) -> dict[str, Any]:
    return {
        "condition": name,
        "split": split,
        "words_true": n_true,
        "words_scored": len(bs),
        "before": {"start": summary(bs), "end": summary(be)},
        "after": {"start": summary(as_), "end": summary(ae)},
    }


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| condition | words | start before (med / p90 / ≤100 ms) | start after | "
        "end before | end after |\n|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        cells = [
            f"{s['median_ms']:.0f} / {s['p90_ms']:.0f} / {s['within_100ms'] * 100:.0f} %"
            for s in (
                r["before"]["start"],
                r["after"]["start"],
                r["before"]["end"],
                r["after"]["end"],
            )
        ]
        words = (
            f"{r['words_scored']}/{r['words_true']}" if r["words_true"] else str(r["words_scored"])
        )
        lines.append(f"| {r['condition']} | {words} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", default="all", choices=["tune", "report", "all"])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--pickle", type=Path, help="save the transcribed cases here")
    args = parser.parse_args(argv)
    from faster_whisper import WhisperModel

    # English is what the stage refines, and the pipeline sends English to this model.
    path, _ = resolve_asr_model(BUNDLED_ENGLISH_ASR)
    model = WhisperModel(path, device="cpu", compute_type="int8", local_files_only=True)
    cases = [(c, *transcribe_clip(c.clip, model)) for c in conditions(args.split)]
    rows = evaluate(cases)
    if args.pickle:  # the transcripts, for trying AlignSettings without transcribing again
        import pickle

        args.pickle.write_bytes(pickle.dumps(cases))
    print(_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
