"""Benchmark speaker attribution on real meetings: the AMI dev clips in ../shared/data/ami-dev.

Run by hand:  .venv/bin/python -m bench.bench_diarization [--clips dev00,trn04] [--json out.json]
              .venv/bin/python -m bench.bench_diarization --calibrate

`--hour` times diarization alone on one hour of speech: the clips' audio, VAD regions and
words, repeated end to end until the regions hold ≥ 3600 s; embedding (which the pipeline runs
beside transcription) and clustering + re-segmentation + word assignment are timed apart.

`--calibrate` is how DiarizeSettings' tuned numbers were chosen: the stages before diarization
run once per clip, then a grid of settings is scored on the calibration clips (AMI's `trn*`)
only; the best one (count in range share + pooled word accuracy) is then reported on the
held-out clips (`dev*`, `tst*`), which never took part in the choice.

Runs the whole ML pipeline (`run_pipeline`, bundled ASR, CPU) on every clip and prints, per
clip and pooled:
- diarization error rate and its parts (missed speech, false alarm, speaker confusion) from
  `pyannote.metrics`, collar 0.25 s, overlap scored; the hypothesis is the result's segments
  (what a caption shows), the reference is `reference.rttm`;
- found vs reference speaker count: "in range" when every reference speaker with ≥ 2 s of speech
  could have been found (found ≥ that many) and no more were found than the clip has;
- word→speaker accuracy: a word is right when its label maps (best one-to-one mapping of labels
  to reference speakers, Hungarian, per clip) to the reference speaker who talks most during
  the word; a word outside every reference turn is scored against the nearest turn. Split
  into words in solo speech and in overlap (two or more reference speakers at the word's
  middle);
- each needed speaker's solo speech (seconds nobody else talks): one voice per embedding
  window is what the count can see.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ami-dev"
MIN_SPEAKER_S = 2.0  # a speaker with this much speech must be found


@dataclass(frozen=True, slots=True)
class RefTurn:
    start: float
    end: float
    speaker: str


@dataclass(frozen=True, slots=True)
class HypWord:
    start: float
    end: float
    speaker: str


def read_rttm(path: Path) -> dict[str, list[RefTurn]]:
    """Reference turns per clip."""
    out: dict[str, list[RefTurn]] = defaultdict(list)
    for line in path.read_text().splitlines():
        f = line.split()
        if len(f) >= 8 and f[0] == "SPEAKER":
            start, dur = float(f[3]), float(f[4])
            out[f[1]].append(RefTurn(start, start + dur, f[7]))
    return dict(out)


def speech_seconds(turns: list[RefTurn]) -> dict[str, float]:
    """Seconds of speech per reference speaker (a speaker's own overlaps counted once)."""
    by: dict[str, list[RefTurn]] = defaultdict(list)
    for t in turns:
        by[t.speaker].append(t)
    out = {}
    for spk, ts in by.items():
        total, end = 0.0, -1.0
        for t in sorted(ts, key=lambda u: u.start):
            total += max(0.0, t.end - max(t.start, end))
            end = max(end, t.end)
        out[spk] = total
    return out


def solo_seconds(turns: list[RefTurn]) -> dict[str, float]:
    """Seconds each reference speaker talks while no other does (10 ms grid). A speaker
    embedding of a window holds one voice only where the window does: a speaker with less
    solo speech than one window (1.6 s) is found by no clustering of window embeddings."""
    if not turns:
        return {}
    grid = np.arange(0.0, max(t.end for t in turns), 0.01)
    talking = {spk: np.zeros(len(grid), dtype=bool) for spk in sorted({t.speaker for t in turns})}
    for t in turns:
        talking[t.speaker] |= (grid >= t.start) & (grid < t.end)
    count = np.sum(list(talking.values()), axis=0)
    return {spk: round(float((m & (count == 1)).sum()) * 0.01, 2) for spk, m in talking.items()}


def overlapped(word: HypWord, turns: list[RefTurn]) -> bool:
    """Whether two or more reference speakers talk at the word's middle."""
    mid = (word.start + word.end) / 2
    return len({t.speaker for t in turns if t.start <= mid < t.end}) >= 2


def ref_speaker_of(word: HypWord, turns: list[RefTurn]) -> str | None:
    """The reference speaker who talks most during the word (the nearest turn's if none)."""
    end = max(word.end, word.start + 0.02)
    overlap: dict[str, float] = defaultdict(float)
    for t in turns:
        if t.start < end and t.end > word.start:
            overlap[t.speaker] += min(t.end, end) - max(t.start, word.start)
    if overlap:
        return max(overlap, key=lambda s: overlap[s])
    if not turns:
        return None
    mid = (word.start + end) / 2
    return min(turns, key=lambda t: max(t.start - mid, mid - t.end, 0.0)).speaker


def word_accuracy(words: list[HypWord], turns: list[RefTurn]) -> tuple[int, int, dict[str, str]]:
    """(right, scored, mapping): words whose mapped label speaks then, best one-to-one mapping."""
    refs = [ref_speaker_of(w, turns) for w in words]
    hyp_labels = sorted({w.speaker for w in words})
    ref_labels = sorted({t.speaker for t in turns})
    if not hyp_labels or not ref_labels:
        return 0, len(words), {}
    co = np.zeros((len(hyp_labels), len(ref_labels)))
    for w, r in zip(words, refs, strict=True):
        if r is not None:
            co[hyp_labels.index(w.speaker), ref_labels.index(r)] += 1
    rows, cols = linear_sum_assignment(-co)
    mapping = {hyp_labels[i]: ref_labels[j] for i, j in zip(rows, cols, strict=True)}
    right = sum(1 for w, r in zip(words, refs, strict=True) if mapping.get(w.speaker) == r)
    return right, len(words), mapping


def split_by_overlap(
    words: list[HypWord], turns: list[RefTurn], mapping: dict[str, str]
) -> dict[str, list[int]]:
    """[right, scored] for the words in solo speech and for those in overlapped speech (the
    clip's own label mapping; a word in overlap is right when mapped to the one who talks most)."""
    out = {"solo": [0, 0], "overlap": [0, 0]}
    for w in words:
        part = out["overlap" if overlapped(w, turns) else "solo"]
        part[0] += mapping.get(w.speaker) == ref_speaker_of(w, turns)
        part[1] += 1
    return out


GRID: dict[str, tuple[float, ...]] = {
    "min_silhouette": (0.1, 0.15, 0.2, 0.25, 0.3),
    "count_tolerance": (0.0, 0.03, 0.06),
    "min_speaker_words": (4.0, 6.0, 10.0),
    "reseg_penalty": (0.5, 1.0, 3.0),
    "reseg_scale": (10.0,),
    "max_unit_s": (4.0, 6.0),
}


def _is_calibration(clip: str) -> bool:
    return clip.startswith("trn")


def _transcribed(models: Any, clip: str) -> tuple[Any, Any, Any]:
    """(audio, speech regions, transcript) of one clip exactly as `run_pipeline` makes them
    (windowed VAD, grouped transcription with the models' decoding settings, language
    detected and English to the English model, word alignment), so that calibration scores
    the words and timings the product diarizes."""
    from ml_server.pipeline import align, bounded, decode, transcribe

    audio = decode.decode(DATA / f"{clip}.wav", max_duration_s=600)
    regions = bounded.detect_speech(audio)
    transcript = transcribe.transcribe_speech(
        audio,
        regions,
        transcribe.TranscribeSettings(
            beam_size=models.beam_size,
            batch_size=models.batch_size,
            temperatures=models.temperatures,
            detection_windows=models.language_windows,
        ),
        models.asr_models(),
    )
    return audio, regions, align.align_words(audio, transcript).transcript


def calibrate(models: Any, reference: dict[str, list[RefTurn]], clips: list[str]) -> None:
    """Grid-search DiarizeSettings on the trn clips; report the winner on the held-out rest."""
    import itertools

    from ml_server.pipeline import diarize

    staged = {}
    for clip in clips:
        audio, regions, transcript = _transcribed(models, clip)
        speech = diarize.embed_speech(
            audio, regions, diarize.DiarizeSettings(), models.speaker_encoder
        )
        if transcript.words:
            staged[clip] = (speech, transcript)

    def score(settings: Any, names: list[str]) -> tuple[int, int, float, list[str]]:
        right = scored = ok = 0
        parts = []
        for clip in names:
            speech, transcript = staged[clip]
            words = transcript.words
            d = diarize.assign_speakers(
                speech, words, settings, diarize.segment_starts(transcript.segments)
            )
            hyp = [
                HypWord(w.start, w.end, str(s)) for w, s in zip(words, d.word_speakers, strict=True)
            ]
            r, n, _ = word_accuracy(hyp, reference[clip])
            secs = speech_seconds(reference[clip])
            needed = sum(1 for v in secs.values() if v >= MIN_SPEAKER_S)
            found = len(set(d.word_speakers))
            good = needed <= found <= len(secs)
            right, scored, ok = right + r, scored + n, ok + good
            parts.append(f"{clip} {found}/{needed}-{len(secs)} {r}/{n}")
        return ok, len(names), right / max(scored, 1), parts

    calib = [c for c in staged if _is_calibration(c)]
    held = [c for c in staged if not _is_calibration(c)]
    results = []
    for values in itertools.product(*GRID.values()):
        params = dict(zip(GRID, values, strict=True))
        settings = diarize.DiarizeSettings(**params)  # type: ignore[arg-type]
        ok, n, acc, _ = score(settings, calib)
        results.append((ok / n + acc, ok, acc, params))
    results.sort(key=lambda r: -r[0])
    for objective, ok, acc, params in results[:8]:
        print(
            f"calibration {ok}/{len(calib)} in range, words {acc:.3f} ({objective:.3f}): {params}"
        )
    best = diarize.DiarizeSettings(**results[0][3])  # type: ignore[arg-type]
    for name, names in (("calibration", calib), ("held-out", held)):
        ok, n, acc, parts = score(best, names)
        print(f"{name}: count in range {ok}/{n}, words {acc:.3f}; " + "; ".join(parts))
    for name, names in (("calibration", calib), ("held-out", held)):
        ok, n, acc, _ = score(diarize.DiarizeSettings(), names)
        print(f"{name} with the shipped defaults: count in range {ok}/{n}, words {acc:.3f}")


def hour(models: Any, clips: list[str]) -> dict[str, float]:
    """Seconds to diarize one hour of speech built from the clips (see the module doc)."""
    from ml_server.pipeline import diarize
    from ml_server.pipeline.data import AsrSegment, AsrWord, Audio, SpeechRegion

    parts = []
    for clip in clips:
        audio, regions, transcript = _transcribed(models, clip)
        if transcript.words:
            parts.append((audio, regions, transcript.segments))
    samples, all_regions, segments = [], [], []
    offset = speech = 0.0
    while speech < 3600.0:
        for audio, regions, segs in parts:
            samples.append(audio.pcm)
            all_regions += [SpeechRegion(r.start + offset, r.end + offset) for r in regions]
            segments += [
                AsrSegment(
                    s.start + offset,
                    s.end + offset,
                    s.text,
                    tuple(
                        AsrWord(w.word, w.start + offset, w.end + offset, w.probability)
                        for w in s.words
                    ),
                )
                for s in segs
            ]
            speech += sum(r.end - r.start for r in regions)
            offset += audio.duration
    long_audio = Audio(np.concatenate(samples))
    words = [w for s in segments for w in s.words]
    opts = diarize.DiarizeSettings()
    t0 = time.perf_counter()
    speech_emb = diarize.embed_speech(long_audio, all_regions, opts, models.speaker_encoder)
    t1 = time.perf_counter()
    result = diarize.assign_speakers(speech_emb, words, opts, diarize.segment_starts(segments))
    t2 = time.perf_counter()
    report = {
        "audio_s": round(long_audio.duration, 1),
        "speech_s": round(speech, 1),
        "words": len(words),
        "windows": len(speech_emb.windows),
        "embed_s": round(t1 - t0, 2),
        "cluster_assign_s": round(t2 - t1, 2),
        "diarize_total_s": round(t2 - t0, 2),
        "speakers": result.num_speakers,
    }
    print(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", default="", help="comma-separated clip names (default: all)")
    parser.add_argument("--language", default="auto")
    parser.add_argument(
        "--english-model", default=None, help='English route model ("" = the main model for all)'
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--calibrate", action="store_true", help="grid-search on trn clips")
    parser.add_argument("--hour", action="store_true", help="time diarization of 1 h of speech")
    args = parser.parse_args(argv)
    if not (DATA / "reference.rttm").is_file():
        sys.exit(
            f"bench_diarization: no AMI dev data at {DATA} (it lives in ../shared/data/ami-dev "
            "beside the repo, not in a fresh clone); nothing to measure."
        )

    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    from ml_server.config import BUNDLED_ASR, MLSettings
    from ml_server.models import load_models
    from ml_server.pipeline.run import PipelineOptions, run_pipeline

    reference = read_rttm(DATA / "reference.rttm")
    clips = sorted(p.stem for p in DATA.glob("*.wav"))
    if args.clips:
        clips = [c for c in clips if c in args.clips.split(",")]
    english = {} if args.english_model is None else {"ml_asr_english_model": args.english_model}
    models = load_models(
        MLSettings(ml_asr_model=BUNDLED_ASR, ml_device="cpu", ml_emotion_model=None, **english)
    )
    if args.calibrate:
        calibrate(models, reference, clips)
        return {}
    if args.hour:
        return hour(models, clips)
    metric = DiarizationErrorRate(collar=0.25, skip_overlap=False)
    rows: list[dict[str, Any]] = []
    right_all = scored_all = in_range = countable = 0
    by_part = {"solo": [0, 0], "overlap": [0, 0]}
    for clip in clips:
        turns = reference.get(clip, [])
        t0 = time.perf_counter()
        result = run_pipeline(
            DATA / f"{clip}.wav", options=PipelineOptions(language=args.language), models=models
        )
        seconds = time.perf_counter() - t0
        duration = result.metadata.duration or 30.0
        ref = Annotation(uri=clip)
        for i, t in enumerate(turns):
            ref[Segment(t.start, t.end), f"r{i}"] = t.speaker
        hyp = Annotation(uri=clip)
        words: list[HypWord] = []
        for i, seg in enumerate(result.segments):
            hyp[Segment(seg.start, seg.end), f"h{i}"] = seg.speaker.speaker_id
            words += [HypWord(w.start, w.end, seg.speaker.speaker_id) for w in seg.words]
        parts = metric(ref, hyp, uem=Timeline([Segment(0.0, duration)]), detailed=True)
        right, scored, mapping = word_accuracy(words, turns)
        right_all += right
        scored_all += scored
        split = split_by_overlap(words, turns, mapping)
        for part, (r, n) in split.items():
            by_part[part][0] += r
            by_part[part][1] += n
        secs = speech_seconds(turns)
        solo = solo_seconds(turns)
        needed = sum(1 for s in secs.values() if s >= MIN_SPEAKER_S)
        found = len({w.speaker for w in words}) or result.metadata.unique_speakers
        ok = needed <= found <= len(secs)
        if needed:
            countable += 1
            in_range += ok
        total = parts["total"] or 1.0
        rows.append(
            {
                "clip": clip,
                "der": round(parts["diarization error rate"], 4),
                "missed": round(parts["missed detection"] / total, 4),
                "false_alarm": round(parts["false alarm"] / total, 4),
                "confusion": round(parts["confusion"] / total, 4),
                "found": found,
                "needed": needed,
                "present": len(secs),
                "count_in_range": ok if needed else None,
                "words": scored,
                "word_accuracy": round(right / scored, 4) if scored else None,
                "words_solo": split["solo"],
                "words_overlap": split["overlap"],
                # solo speech of each speaker the count must find (≥ MIN_SPEAKER_S in all)
                "needed_solo_s": {k: solo[k] for k, v in secs.items() if v >= MIN_SPEAKER_S},
                "seconds": round(seconds, 2),
            }
        )
        print(
            f"{clip}: DER {rows[-1]['der']:.3f} (miss {rows[-1]['missed']:.3f}, "
            f"fa {rows[-1]['false_alarm']:.3f}, conf {rows[-1]['confusion']:.3f}) "
            f"speakers {found} (need {needed}–{len(secs)}{', ok' if ok and needed else ''}) "
            f"words {right}/{scored} (solo {split['solo'][0]}/{split['solo'][1]}, overlap "
            f"{split['overlap'][0]}/{split['overlap'][1]}) needed speakers' solo speech "
            f"{sorted(rows[-1]['needed_solo_s'].values())} s; {seconds:.1f} s",
            flush=True,
        )
    acc = metric.accumulated_
    total = acc["total"] or 1.0
    pooled = {
        "der": round(abs(metric), 4),
        "missed": round(acc["missed detection"] / total, 4),
        "false_alarm": round(acc["false alarm"] / total, 4),
        "confusion": round(acc["confusion"] / total, 4),
        "count_in_range": f"{in_range}/{countable}",
        "word_accuracy": round(right_all / scored_all, 4) if scored_all else None,
        "words": scored_all,
        "words_solo": by_part["solo"],
        "words_overlap": by_part["overlap"],
    }
    print(
        f"pooled: DER {pooled['der']:.3f} (miss {pooled['missed']:.3f}, "
        f"fa {pooled['false_alarm']:.3f}, conf {pooled['confusion']:.3f}); count in range "
        f"{in_range}/{countable}; words right {right_all}/{scored_all} = "
        f"{pooled['word_accuracy']} (in solo speech {by_part['solo'][0]}/{by_part['solo'][1]}, "
        f"in overlap {by_part['overlap'][0]}/{by_part['overlap'][1]})"
    )
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "model": models.names,
        "clips": rows,
        "pooled": pooled,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
