"""The memory-bounded drivers find the same speech and words as one pass over the whole file."""

from __future__ import annotations

import itertools
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter

from ml_server.models import get_models
from ml_server.pipeline import align, bounded, prosody, transcribe, vad
from ml_server.pipeline.data import PCM_SCALE, AsrWord, Audio, SpeechRegion, mean_square
from ml_server.pipeline.decode import decode
from ml_server.pipeline.transcribe import groups as asr_groups
from tests.support import media
from tests.support.media import write_wav


def _speech_s(regions: list[SpeechRegion]) -> float:
    return sum(r.end - r.start for r in regions)


def test_windowed_vad_finds_the_same_speech() -> None:
    audio = decode(media.dialogue("wav", long=True).path, max_duration_s=600)
    whole = vad.detect_speech(audio)
    # 7 s windows cut through the middle of many turns: the edges must be joined again.
    windowed = bounded.detect_speech(audio, window_s=7.0)
    assert _speech_s(windowed) == pytest.approx(_speech_s(whole), rel=0.05)
    assert abs(len(windowed) - len(whole)) <= len(whole) // 5 + 1
    assert all(a.end <= b.start for a, b in itertools.pairwise(windowed))


def test_windows_on_several_threads_give_the_regions_of_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    audio = decode(media.dialogue("wav", long=True).path, max_duration_s=600)
    monkeypatch.setattr(bounded, "VAD_THREADS", 1)
    one = bounded.detect_speech(audio, window_s=7.0)
    monkeypatch.setattr(bounded, "VAD_THREADS", 3)
    assert bounded.detect_speech(audio, window_s=7.0) == one


def test_regions_are_grouped_in_order_without_passing_the_bound() -> None:
    regions = [SpeechRegion(i * 10.0, i * 10.0 + 8.0) for i in range(20)]
    groups = asr_groups.group_regions(regions, max_s=30.0)
    assert [r for g in groups for r in g] == regions
    assert all(_speech_s(g) <= 30.0 for g in groups)
    assert asr_groups.group_regions([SpeechRegion(0, 100)], max_s=30.0) == [[SpeechRegion(0, 100)]]
    # A short tail joins the last group instead of costing a decode of its own.
    tail = [SpeechRegion(0, 28), SpeechRegion(30, 58), SpeechRegion(60, 65)]
    assert asr_groups.group_regions(tail, max_s=30.0) == [tail[:1], tail[1:]]


def test_grouped_transcription_keeps_the_words_in_media_time() -> None:
    clip = media.dialogue("wav", long=True)
    audio = decode(clip.path, max_duration_s=600)
    regions = vad.detect_speech(audio)
    models = get_models()
    opts = transcribe.TranscribeSettings()  # detect: the language is chosen once for all groups
    whole = transcribe.transcribe_speech(audio, regions, opts, models.asr_models())
    assert len(asr_groups.group_regions(regions)) == 1  # one pass over the whole clip
    original = asr_groups.ASR_GROUP_S
    try:
        asr_groups.ASR_GROUP_S = 10.0  # many groups on a one-minute clip
        assert len(asr_groups.group_regions(regions)) > 3
        grouped = transcribe.transcribe_speech(audio, regions, opts, models.asr_models())
    finally:
        asr_groups.ASR_GROUP_S = original
    words = [w.word.strip().lower() for w in grouped.words]
    starts = [w.start for w in grouped.words]
    assert starts == sorted(starts) and starts[-1] <= audio.duration
    assert grouped.language == "en"
    expected = {w.word.strip().lower() for w in whole.words}
    assert len(set(words) & expected) >= 0.9 * len(expected)


def _decoded_float(path: Path) -> np.ndarray:
    """What `decode` mixes before quantising: the same mixer's float32 output, end to end."""
    import av

    from ml_server.pipeline.decode import _Mixer

    mixer = _Mixer()
    with av.open(str(path)) as container:
        pieces = [c for f in container.decode(audio=0) for c in mixer.mix(f)]
    return np.concatenate([*pieces, *mixer.flush()])


def test_decoded_audio_is_16_bit_and_float_views_are_within_quantisation(tmp_path: Path) -> None:
    t = np.arange(5 * 16_000) / 16_000
    tone = 0.6 * np.sin(2 * np.pi * 217.0 * t) * np.linspace(0.01, 1.0, t.size)
    path = write_wav(tmp_path / "tone.wav", tone)
    audio = decode(path, max_duration_s=60)
    reference = _decoded_float(path)
    # Held as 16-bit PCM: half the bytes of float32 for every second of media.
    assert audio.pcm.dtype == np.int16 and audio.pcm.nbytes == 2 * audio.size
    assert audio.size == reference.size
    step = 0.5 / PCM_SCALE + 1e-7  # rounding to the nearest of 65,536 levels
    # What the stages read: a window (VAD, alignment, loudness, emotion), the whole as a view.
    for a, b in [(0, 1_000), (12_345, 40_000), (70_000, 90_000)]:
        view = audio.window(a, b)
        assert view.dtype == np.float32
        assert view.size == min(b, audio.size) - a
        assert np.max(np.abs(view - reference[a:b])) <= step
    # Transcription's gathered speech: the regions end to end, as collect_chunks makes them.
    chunks = [{"start": 1_000, "end": 9_000}, {"start": 20_000, "end": 20_500}]
    gathered = audio.gather(chunks)
    expected = np.concatenate([reference[c["start"] : c["end"]] for c in chunks])
    assert gathered.shape == expected.shape
    assert np.max(np.abs(gathered - expected)) <= step
    assert mean_square(audio) == pytest.approx(
        float(np.mean(reference.astype(np.float64) ** 2)), rel=1e-3
    )
    # Float input (synthetic test signals) is quantised the same way on construction.
    assert np.array_equal(Audio(reference).pcm, audio.pcm)


# NaN cast to int16 is undefined (0 on x86 by luck, with numpy's "invalid value" warning).
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_a_float_stream_with_nan_or_inf_decodes_to_silence_and_full_scale(tmp_path: Path) -> None:
    """A 32-bit float WAV may carry NaN/±inf (a broken encoder, a crafted file): they must not
    become arbitrary int16 values (full-scale clicks under the words)."""
    path = tmp_path / "nan.wav"
    expr = "if(lt(t,0.5),0/0,if(lt(t,1),1/0,if(lt(t,1.5),-1/0,0.25)))"
    source = f"aevalsrc='{expr}':s=16000:d=2"
    ffmpeg = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
    subprocess.run(
        [*ffmpeg, "-f", "lavfi", "-i", source, "-c:a", "pcm_f32le", str(path)], check=True
    )
    audio = decode(path, max_duration_s=60)
    second = 16_000
    assert audio.size == 2 * second
    assert not audio.pcm[: second // 2 - 800].any()  # NaN: silence
    assert (audio.pcm[second // 2 + 800 : second - 800] == PCM_SCALE - 1).all()  # +inf: full scale
    assert (audio.pcm[second + 800 : 3 * second // 2 - 800] == -PCM_SCALE).all()  # -inf
    assert np.allclose(audio.window(3 * second // 2 + 800, 2 * second), 0.25, atol=1e-3)


def _traced_peak(seconds: int, words: list[AsrWord]) -> int:
    """tracemalloc's peak (numpy's buffers included) over the whole-signal reads of the stages
    that are not model-driven: loudness, the alignment threshold, pitch and volume of words."""
    audio = Audio(np.random.default_rng(3).integers(-3000, 3000, seconds * 16_000, np.int16))
    tracemalloc.start()
    try:
        mean_square(audio)
        opts = align.AlignSettings()
        align._speech_threshold(audio, opts, align._hum_filter(audio, opts))
        # ... and with a hum filtered out, block by block too.
        hum = butter(4, 275.0, btype="highpass", fs=16_000, output="sos")
        align._speech_threshold(audio, opts, hum)
        prosody.measure_words(audio, words)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_stages_read_long_audio_without_a_whole_float_copy() -> None:
    """Three times the media costs these stages almost nothing more: what they hold depends on
    the block, not on the duration (a float32 copy of the difference would be 77 MB)."""
    words = [AsrWord(" w", s, s + 0.4, 1.0) for s in np.arange(1.0, 500.0, 0.5)]
    short, long = _traced_peak(600, words), _traced_peak(1800, words)
    float_copy_growth = (1800 - 600) * 16_000 * 4
    assert long - short < float_copy_growth / 5, f"{short / 1e6:.0f} MB -> {long / 1e6:.0f} MB"
