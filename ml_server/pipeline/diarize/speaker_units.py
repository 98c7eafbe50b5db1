"""Speaker-homogeneous units: stretches of words cut at pauses, ASR segment and VAD region
boundaries, each embedded as the mean of the speaker-embedding windows inside it.

A sliding 1.6 s window straddles turn changes; a unit that ends where the talker stops (a pause,
the end of an ASR sentence) mostly holds one voice, and averaging every window inside it gives a
steadier embedding than any one window (resemblyzer's own `embed_utterance` averages partials
the same way). The windows are the ones already embedded during transcription, so units cost
no extra encoder time.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from ml_server.pipeline.data import AsrWord, SpeechRegion

# A unit with no words (no transcript) weighs as many "words" as a talker says in this long;
# ~2.5 words/s is conversational English.
SECONDS_PER_WORD = 0.4
# A window counts as inside a unit when it overhangs it by at most this much (VAD pads
# speech by 0.2 s, so the unit's edge words sit that far inside their region).
_INSIDE_TOLERANCE_S = 0.2


@dataclass(frozen=True, slots=True)
class Unit:
    """A stretch of one talker's speech: its span and the indices of its words."""

    start: float
    end: float
    words: tuple[int, ...] = ()

    @property
    def weight(self) -> float:
        """How much this unit counts when sizing a speaker: its words (or their estimate)."""
        return float(len(self.words)) if self.words else (self.end - self.start) / SECONDS_PER_WORD


def _region_of(t: float, starts: npt.NDArray[np.float64], regions: list[SpeechRegion]) -> int:
    """Index of the (time-ordered) region holding time `t`, -1 if none (50 ms slack)."""
    i = int(np.searchsorted(starts, t + 0.05, side="right")) - 1
    return i if i >= 0 and t <= regions[i].end + 0.05 else -1


def word_units(
    words: list[AsrWord],
    segment_starts: set[int],
    regions: list[SpeechRegion],
    pause_s: float,
    max_unit_s: float,
) -> list[Unit]:
    """Group consecutive words into units; a new unit starts at an ASR segment start (index in
    `segment_starts`), a VAD region change, a pause longer than `pause_s`, or when the unit
    would grow past `max_unit_s` (a long stretch may still hide a turn change)."""
    units: list[Unit] = []
    cur: list[int] = []
    cur_region = -2
    regions = sorted(regions, key=lambda r: r.start)
    starts = np.array([r.start for r in regions])
    for i, w in enumerate(words):
        region = _region_of((w.start + w.end) / 2, starts, regions)
        if cur and (
            i in segment_starts
            or region != cur_region
            or w.start - words[cur[-1]].end > pause_s
            or w.end - words[cur[0]].start > max_unit_s
        ):
            units.append(Unit(words[cur[0]].start, words[cur[-1]].end, tuple(cur)))
            cur = []
        cur.append(i)
        cur_region = region
    if cur:
        units.append(Unit(words[cur[0]].start, words[cur[-1]].end, tuple(cur)))
    return units


def region_units(regions: list[SpeechRegion], max_unit_s: float) -> list[Unit]:
    """Units when there is no transcript: VAD regions cut into pieces of at most `max_unit_s`."""
    out: list[Unit] = []
    for r in regions:
        pieces = max(1, int(np.ceil((r.end - r.start) / max_unit_s)))
        edges = np.linspace(r.start, r.end, pieces + 1)
        out.extend(Unit(float(a), float(b)) for a, b in pairwise(edges))
    return out


def unit_embeddings(
    units: list[Unit],
    starts: npt.NDArray[np.float64],
    ends: npt.NDArray[np.float64],
    embeddings: npt.NDArray[np.float32],
) -> npt.NDArray[np.float32]:
    """L2-normalised mean of the windows inside each unit; for a unit shorter than a window,
    the windows centred in it, else the one nearest its middle. Shape (len(units), dim)."""
    centres = (starts + ends) / 2
    out = np.zeros((len(units), embeddings.shape[1]), dtype=np.float32)
    if embeddings.shape[0] == 0:
        return out
    for i, u in enumerate(units):
        pick = (starts >= u.start - _INSIDE_TOLERANCE_S) & (ends <= u.end + _INSIDE_TOLERANCE_S)
        if not pick.any():
            pick = (centres >= u.start) & (centres <= u.end)
        if not pick.any():
            pick = np.zeros(len(centres), dtype=bool)
            pick[int(np.argmin(np.abs(centres - (u.start + u.end) / 2)))] = True
        v = embeddings[pick].mean(axis=0)
        out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out
