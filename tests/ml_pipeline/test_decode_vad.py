"""Decode and voice activity on real files: bad inputs get stable codes, silence no words."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ecg_protocol import ErrorCode, Stage
from ml_server.models import Models
from ml_server.pipeline.decode import decode
from ml_server.pipeline.errors import StageError
from ml_server.pipeline.run import PipelineOptions, run_pipeline
from ml_server.pipeline.vad import detect_speech
from tests.support.media import dialogue, no_audio_video, not_media, silence, write_wav


def test_decodes_video_to_16k_mono() -> None:
    media = dialogue("mp4")
    audio = decode(media.path, max_duration_s=3600)
    assert audio.sample_rate == 16_000
    assert audio.pcm.dtype == np.int16 and audio.pcm.ndim == 1  # 16-bit: half of float32
    assert abs(audio.duration - media.duration) < 0.1


def test_stereo_44k_is_downmixed(tmp_path: Path) -> None:
    t = np.arange(44_100) / 44_100
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    audio = decode(_write_stereo(tmp_path / "stereo.wav", left, left), max_duration_s=60)
    assert abs(audio.duration - 1.0) < 0.02
    assert abs(float(np.abs(audio.window()).max()) - 0.5) < 0.02  # averaged, not summed


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _write_stereo(path: Path, left: np.ndarray, right: np.ndarray, rate: int = 44_100) -> Path:
    return _write_channels(path, [left, right], "stereo", rate)


def _write_channels(path: Path, channels: list[np.ndarray], layout: str, rate: int) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout=layout)
        pcm = (np.stack(channels).T.reshape(1, -1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def test_channels_in_reverse_phase_do_not_cancel(tmp_path: Path) -> None:
    """One channel of a stereo pair wired in reverse phase: the plain downmix is silence."""
    t = np.arange(44_100) / 44_100
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    audio = decode(_write_stereo(tmp_path / "anti.wav", tone, -0.8 * tone), max_duration_s=60)
    assert abs(float(np.abs(audio.window()).max()) - 0.5) < 0.02  # the louder channel
    # Unrelated channels are mixed as always (averaged), not replaced by one of them.
    other = 0.5 * np.sin(2 * np.pi * 660 * t)
    mixed = decode(_write_stereo(tmp_path / "two.wav", tone, other), max_duration_s=60).window()
    expected = (tone + other)[::441][:100] / 2
    assert np.allclose(mixed[::160][:100][5:95], expected[5:95], atol=0.05)
    # Sixteen unrelated channels (separate microphones) keep little of their energy in the
    # mix too, but no less than unrelated channels do: mixed, not replaced by one of them.
    import av

    from ml_server.pipeline.decode import downmix_weights

    t16 = np.arange(16_000) / 16_000
    tones = [0.5 * np.sin(2 * np.pi * (200 + 37 * k) * t16) for k in range(16)]
    path = _write_channels(tmp_path / "sixteen.wav", tones, "hexadecagonal", 16_000)
    with av.open(str(path)) as container:  # a wav keeps the count, not the names
        names = [c.name for c in container.streams.audio[0].layout.channels]
    expected = downmix_weights(names) @ np.stack(tones)
    assert np.allclose(decode(path, max_duration_s=60).window(), expected, atol=0.01)
    # Silence in both channels stays silence.
    quiet = decode(_write_stereo(tmp_path / "quiet.wav", 0 * t, 0 * t), max_duration_s=60)
    assert float(np.abs(quiet.window()).max()) == 0.0


def test_reverse_phase_speech_is_transcribed(models: Models, tmp_path: Path) -> None:
    media = dialogue("wav")
    mono = decode(media.path, max_duration_s=600).window()
    path = _write_stereo(tmp_path / "anti.wav", mono, -mono, rate=16_000)
    result = run_pipeline(path, options=PipelineOptions(), models=models)
    words = [w for s in result.segments for w in s.words]
    assert len(words) >= 10, [s.text for s in result.segments]


def _write_float_stereo(path: Path, left: np.ndarray, right: np.ndarray, rate: int) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_f32le", rate=rate, layout="stereo")
        samples = np.stack([left, right]).T.reshape(1, -1).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="stereo")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_a_broken_float_channel_does_not_silence_the_others(models: Models, tmp_path: Path) -> None:
    """A float stream's channel of NaN (a dead input of a broken encoder, a crafted file) made
    every mixed sample NaN, i.e. silence: the job "succeeded" with no words at all."""
    mono = decode(dialogue("wav").path, max_duration_s=600).window()
    broken = np.full_like(mono, np.nan)
    broken[::3] = np.inf  # ±inf count as full scale, as in a mono stream; NaN as silence
    path = _write_float_stereo(tmp_path / "nan_right.wav", mono, broken, rate=16_000)
    decoded = decode(path, max_duration_s=600).window()
    # The good channel, at half weight (+inf adds half scale where it stands).
    expected = mono / 2 + np.where(np.arange(mono.size) % 3 == 0, 0.5, 0.0)
    assert np.allclose(decoded, expected, atol=2e-4)
    nan_right = _write_float_stereo(
        tmp_path / "nan_only.wav", mono, np.full_like(mono, np.nan), 16_000
    )
    result = run_pipeline(nan_right, options=PipelineOptions(), models=models)
    words = [w for s in result.segments for w in s.words]
    assert len(words) >= 10, [s.text for s in result.segments]


def test_audio_that_starts_after_the_picture_keeps_its_place(tmp_path: Path) -> None:
    """Times are the media's: in a video whose audio starts 2.5 s in, speech heard at 0.0 s
    would put every caption 2.5 s early."""
    media = dialogue("wav")
    late = tmp_path / "late.mp4"
    video = ["-f", "lavfi", "-i", f"color=c=navy:s=160x120:r=10:d={media.duration + 3:.2f}"]
    audio = ["-itsoffset", "2.5", "-i", str(media.path), "-map", "0:v", "-map", "1:a"]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest"]
    _ffmpeg(*video, *audio, *codecs, str(late))
    plain = decode(media.path, max_duration_s=600)
    shifted = decode(late, max_duration_s=600)

    def first_sound(pcm: np.ndarray) -> float:
        return float(np.flatnonzero(np.abs(pcm) > 300)[0]) / 16_000

    assert abs(first_sound(shifted.pcm) - first_sound(plain.pcm) - 2.5) < 0.06
    assert abs(shifted.duration - plain.duration - 2.5) < 0.1


def test_a_gap_in_the_audio_is_silence_in_its_place(tmp_path: Path) -> None:
    """A recorder that dropped a second of audio: what follows stays at its time."""
    import av

    path = tmp_path / "gap.mkv"
    t = np.arange(16_000) / 16_000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=16_000, layout="mono")
        for second in (0, 2):  # nothing for 1.0–2.0 s
            for k in range(0, 16_000, 1_600):
                frame = av.AudioFrame.from_ndarray(
                    tone[None, k : k + 1_600], format="s16", layout="mono"
                )
                frame.sample_rate = 16_000
                frame.pts = second * 16_000 + k
                frame.time_base = Fraction(1, 16_000)
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    audio = decode(path, max_duration_s=60)
    assert abs(audio.duration - 3.0) < 0.02
    rms = np.sqrt(np.square(audio.window()[:48_000].reshape(-1, 400)).mean(axis=1))  # 25 ms
    assert (rms[3:37] > 0.3).all() and (rms[83:117] > 0.3).all()  # the tone, at 0 s and 2 s
    assert (rms[43:77] < 0.01).all()  # the dropped second, silent


def test_a_silent_first_track_gives_way_to_one_with_sound(tmp_path: Path) -> None:
    """A camera's unconnected first input (or a recorder's empty first track), the microphone
    on the second: the first audio stream with sound is analysed."""
    media = dialogue("wav")
    tracks = tmp_path / "tracks.mp4"
    video = ["-f", "lavfi", "-i", f"color=c=navy:s=160x120:r=10:d={media.duration:.2f}"]
    silent = ["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo", "-i", str(media.path)]
    maps = ["-map", "0:v", "-map", "1:a", "-map", "2:a", "-t", f"{media.duration:.2f}"]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]
    _ffmpeg(*video, *silent, *maps, *codecs, str(tracks))
    audio = decode(tracks, max_duration_s=600)
    assert float(np.abs(audio.window()).max()) > 0.1
    assert abs(audio.duration - media.duration) < 0.1


def test_a_silent_track_with_an_offset_still_gives_way(tmp_path: Path) -> None:
    """The silent first track carries a constant offset (an unconnected input on a cheap
    card): taken out at decode, it is silence, and the second track is analysed."""
    media = dialogue("wav")
    tracks = tmp_path / "tracks.mkv"
    silent = ["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo", "-i", str(media.path)]
    offset = ["-filter_complex", "[0:a]dcshift=0.05[s]", "-map", "[s]", "-map", "1:a"]
    _ffmpeg(*silent, *offset, "-t", f"{media.duration:.2f}", "-c:a", "pcm_s16le", str(tracks))
    audio = decode(tracks, max_duration_s=600)
    assert float(np.abs(audio.window()).max()) > 0.1
    assert abs(audio.duration - media.duration) < 0.1


def test_not_media_is_unsupported() -> None:
    with pytest.raises(StageError) as info:
        decode(not_media(), max_duration_s=60)
    assert info.value.code == ErrorCode.UNSUPPORTED_MEDIA
    assert info.value.stage == Stage.DECODE
    assert info.value.__cause__ is not None


def test_video_without_audio_has_no_audio_track() -> None:
    with pytest.raises(StageError) as info:
        decode(no_audio_video(), max_duration_s=60)
    assert info.value.code == ErrorCode.NO_AUDIO_TRACK


def test_media_over_duration_limit() -> None:
    with pytest.raises(StageError) as info:
        decode(dialogue("wav").path, max_duration_s=5)
    assert info.value.code == ErrorCode.FILE_TOO_LARGE


def test_empty_file_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "empty.webm"
    path.write_bytes(b"")
    with pytest.raises(StageError) as info:
        decode(path, max_duration_s=60)
    assert info.value.code == ErrorCode.UNSUPPORTED_MEDIA


def test_vad_finds_turns_and_nothing_in_silence() -> None:
    media = dialogue("wav")
    regions = detect_speech(decode(media.path, max_duration_s=600))
    assert len(regions) >= len(media.turns) // 2
    for turn in media.turns:
        mid = (turn.start + turn.end) / 2
        assert any(r.start <= mid <= r.end for r in regions)
    assert detect_speech(decode(silence(3.0), max_duration_s=60)) == []


def test_silence_gives_no_words(models: Models) -> None:
    result = run_pipeline(silence(3.0, "mp4"), options=PipelineOptions(), models=models)
    assert result.segments == []
    assert result.metadata.total_segments == 0
    assert result.metadata.unique_speakers == 0
    assert abs((result.metadata.duration or 0) - 3.0) < 0.1


def test_noise_only_gives_no_crash(models: Models, wav_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_wav(wav_path, (0.05 * rng.standard_normal(16_000 * 3)).astype(np.float32))
    result = run_pipeline(wav_path, options=PipelineOptions(), models=models)
    for seg in result.segments:
        for w in seg.words:
            assert w.volume_db is not None


def test_pipeline_maps_bad_input_to_stage_error(models: Models) -> None:
    with pytest.raises(StageError) as info:
        run_pipeline(no_audio_video(), options=PipelineOptions(), models=models)
    assert info.value.code == ErrorCode.NO_AUDIO_TRACK
