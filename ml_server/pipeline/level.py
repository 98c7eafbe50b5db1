"""Media recorded far too quietly is raised for the models that listen to it.

Whisper and Silero were trained on speech at ordinary levels, and neither normalises its input:
below a peak of about -50 dBFS words are lost or invented in another language, and around
-60 dBFS the VAD hears nothing, while every real recording measured peaks far above that
(docs/pipeline.md, "Quiet media"). So media whose peak is under QUIET_PEAK_DBFS — below every
real clip, above where reading degrades — is raised towards TARGET_PEAK_DBFS for the stages
that listen (VAD, transcription, alignment, speaker embeddings), by at most MAX_GAIN_DB, so
that near-silence (dither, room tone) stays quiet. Prosody and emotion measure the media as
it is: `volume_db` is the recording's own loudness (only the pitch tracker's level gate allows
for the raise, so that words read in raised media keep their pitch).

The target was chosen among -6, -20 and -30 dBFS on six espeak-ng sentences (five languages)
set to peaks of -50, -55 and -60 dBFS, and reported on the 27 audioeval recordings at the
same peaks (docs/pipeline.md, "Quiet media").

A constant (DC) offset loud enough to matter is taken out at decode (`remove_offset`), before
any level is read.
"""

from __future__ import annotations

import math

import numpy as np

from ml_server.pipeline.data import BLOCK, PCM_SCALE, Audio, PcmArray, to_pcm

# A constant offset at least this loud (33 LSB) is taken out at decode: inaudible, it would
# read as every word's loudness, make a silent track look live (decode.SILENT_PEAK_DBFS, the
# same level) and hide far too quiet media from `for_listening`. Offsets under it (real
# recordings measured: 0–6 LSB) move nothing and are left, so their samples stay as decoded.
OFFSET_DBFS = -60.0
QUIET_PEAK_DBFS = -30.0
TARGET_PEAK_DBFS = -20.0
MAX_GAIN_DB = 30.0


def peak_dbfs(audio: Audio) -> float:
    """The highest sample's level, dBFS (-inf for digital silence)."""
    if audio.size == 0:
        return -math.inf
    peak = max(int(audio.pcm.max()), -int(audio.pcm.min()))
    return 20 * math.log10(peak / PCM_SCALE) if peak else -math.inf


def listening_gain_db(audio: Audio) -> float:
    """The gain (dB) the listening stages hear `audio` with: 0 unless it is far too quiet."""
    peak = peak_dbfs(audio)
    if peak >= QUIET_PEAK_DBFS or math.isinf(peak):
        return 0.0
    return min(MAX_GAIN_DB, TARGET_PEAK_DBFS - peak)


def for_listening(audio: Audio) -> Audio:
    """`audio` itself, or a raised copy of it when it is far too quiet (a block at a time, so
    no float copy of the whole media is made)."""
    gain_db = listening_gain_db(audio)
    if gain_db == 0.0:
        return audio
    gain = np.float32(10 ** (gain_db / 20))
    out = np.empty_like(audio.pcm)
    for a in range(0, audio.size, BLOCK):
        out[a : a + BLOCK] = to_pcm(audio.window(a, a + BLOCK) * gain)
    return Audio(out, audio.sample_rate)


def dc_offset(pcm: PcmArray) -> int:
    """The signal's constant offset in LSB: the median sample (speech and music swing about
    it; a burst of clipping, which moves the mean, does not move it). Counted a block at a
    time, so no copy of the media is made."""
    if pcm.size == 0:
        return 0
    counts = np.zeros(1 << 16, dtype=np.int64)
    for a in range(0, pcm.size, BLOCK):
        counts += np.bincount(pcm[a : a + BLOCK].astype(np.int32) + (1 << 15), minlength=1 << 16)
    return int(np.searchsorted(np.cumsum(counts), (pcm.size + 1) // 2)) - (1 << 15)


def remove_offset(pcm: PcmArray) -> int:
    """Take a constant offset of at least OFFSET_DBFS out of `pcm`, in place; the offset
    removed (0 when there was none that large).

    Only an offset the median and the mean agree on (within OFFSET_DBFS) is one: a signal
    offset as a whole moves both alike, while what moves one alone is something else (a third
    of the samples stuck at full scale move the mean; a crafted stream whose every third
    sample is +inf moves the median by a quantile of its speech) and is left as it is.
    """
    offset = dc_offset(pcm)
    least = PCM_SCALE * 10 ** (OFFSET_DBFS / 20)
    if abs(offset) < least:  # an empty signal has none
        return 0
    total = sum(int(pcm[a : a + BLOCK].sum(dtype=np.int64)) for a in range(0, pcm.size, BLOCK))
    if abs(total / pcm.size - offset) >= least:
        return 0
    for a in range(0, pcm.size, BLOCK):
        block = pcm[a : a + BLOCK].astype(np.int32) - offset
        pcm[a : a + BLOCK] = np.clip(block, -(1 << 15), (1 << 15) - 1)
    return offset
