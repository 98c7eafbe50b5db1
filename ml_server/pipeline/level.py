"""Media recorded far too quietly is raised for the models that listen to it.

Whisper and Silero were trained on speech at ordinary levels, and neither normalises its input:
below a peak of about -50 dBFS words are lost or invented in another language, and around
-60 dBFS the VAD hears nothing, while every real recording measured peaks far above that
(docs/pipeline.md, "Quiet media"). So media whose peak is under QUIET_PEAK_DBFS — below every
real clip, above where reading degrades — is raised towards TARGET_PEAK_DBFS for the stages
that listen (VAD, transcription, alignment, speaker embeddings), by at most MAX_GAIN_DB, so
that near-silence (dither, room tone) stays quiet. Prosody and emotion measure the media as
it is: `volume_db` is the recording's own loudness.

The target was chosen among -6, -20 and -30 dBFS on six espeak-ng sentences (five languages)
set to peaks of -50, -55 and -60 dBFS, and reported on the 27 audioeval recordings at the
same peaks (docs/pipeline.md, "Quiet media").
"""

from __future__ import annotations

import math

import numpy as np

from ml_server.pipeline.data import BLOCK, PCM_SCALE, Audio, to_pcm

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
