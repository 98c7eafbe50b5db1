"""Every channel layout and sample rate decodes to 16 kHz mono with the documented downmix.

Each file is made by the real ffmpeg. The 7.1 AAC video is the one that used to segfault the ML
server inside PyAV (issue 9); 16 and 24 channels go beyond anything FFmpeg names.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from ml_server.pipeline.decode import decode, downmix_weights

AMPLITUDE = 0.125  # ffmpeg's sine source: 1/8 full scale
SECONDS = 2.0


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


CHANNELS = {
    "mono": 1, "stereo": 2, "2.1": 3, "4.0": 4, "5.0": 5, "5.1": 6, "6.1": 7, "7.1": 8,
    "hexadecagonal": 16, "22.2": 24,
}  # fmt: skip


def _sine_in_every_channel(out: Path, layout: str, rate: int, codec: list[str]) -> Path:
    # `pan` copies the sine into each channel unchanged (FFmpeg's own upmix lowers the level).
    copies = "|".join(f"c{i}=c0" for i in range(CHANNELS[layout]))
    _ffmpeg(
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}:duration={SECONDS}",
        "-af", f"pan={layout}|{copies}", *codec, str(out),
    )  # fmt: skip
    return out


def _peak(samples: np.ndarray) -> float:
    # Skip the edges: resampler and codec warm-up.
    return float(np.abs(samples[4000:-4000]).max())


@pytest.mark.parametrize(
    ("layout", "rate", "suffix", "codec"),
    [
        ("mono", 8_000, "wav", ["-c:a", "pcm_s16le"]),
        ("stereo", 44_100, "mp3", ["-c:a", "libmp3lame", "-b:a", "128k"]),
        ("2.1", 22_050, "wav", ["-c:a", "pcm_s16le"]),
        ("4.0", 32_000, "wav", ["-c:a", "pcm_s16le"]),
        ("stereo", 22_050, "flac", ["-c:a", "flac"]),
        ("5.0", 48_000, "wav", ["-c:a", "pcm_f32le"]),
        ("5.1", 48_000, "m4a", ["-c:a", "aac"]),
        ("6.1", 96_000, "wav", ["-c:a", "pcm_s24le"]),
        ("7.1", 48_000, "wav", ["-c:a", "pcm_f32le"]),
        ("7.1", 44_100, "mka", ["-c:a", "aac"]),
        ("hexadecagonal", 48_000, "wav", ["-c:a", "pcm_s16le"]),
        ("22.2", 48_000, "wav", ["-c:a", "pcm_f32le"]),
    ],
)
def test_every_layout_keeps_duration_and_level(
    tmp_path: Path, layout: str, rate: int, suffix: str, codec: list[str]
) -> None:
    path = _sine_in_every_channel(tmp_path / f"sine.{suffix}", layout, rate, codec)
    audio = decode(path, max_duration_s=60)
    assert audio.sample_rate == 16_000 and audio.pcm.ndim == 1
    assert audio.pcm.dtype == np.int16
    assert abs(audio.duration - SECONDS) < 0.1
    # The same sound in every channel keeps its level (LFE aside: AAC low-passes it).
    assert _peak(audio.window()) == pytest.approx(AMPLITUDE, rel=0.12)


def test_the_71_video_that_crashed_the_server(tmp_path: Path) -> None:
    path = tmp_path / "movie71.mp4"
    _ffmpeg(
        "-f", "lavfi", "-i", "color=s=64x64:d=3", "-f", "lavfi", "-i", "sine=r=48000",
        "-filter_complex", "[1:a]aformat=channel_layouts=7.1[a]", "-map", "0:v", "-map", "[a]",
        "-t", "3", "-c:v", "libx264", "-c:a", "aac", str(path),
    )  # fmt: skip
    audio = decode(path, max_duration_s=60)
    assert abs(audio.duration - 3.0) < 0.1
    # FFmpeg's mono → 7.1 upmix puts the sine in FC alone: FC's share of the 7.1 weights.
    expected = AMPLITUDE * 0.7071 / (0.5 + 0.5 + 0.7071 + 4 * 0.3536)
    assert _peak(audio.window()) == pytest.approx(expected, rel=0.05)


def test_centre_dialogue_weighs_as_itu_fold_down(tmp_path: Path) -> None:
    path = tmp_path / "centre.wav"
    _ffmpeg(
        "-f", "lavfi", "-i", f"sine=frequency=300:sample_rate=48000:duration={SECONDS}",
        "-af", "pan=5.1|FC=c0", "-c:a", "pcm_f32le", str(path),
    )  # fmt: skip
    audio = decode(path, max_duration_s=60)
    # FC at -3 dB into each side of the stereo fold-down, over the sum of all weights.
    expected = AMPLITUDE * 0.7071 / (0.5 + 0.5 + 0.7071 + 2 * 0.3536)
    assert _peak(audio.window()) == pytest.approx(expected, rel=0.05)


def test_lfe_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "lfe.wav"
    _ffmpeg(
        "-f", "lavfi", "-i", f"sine=frequency=60:sample_rate=48000:duration={SECONDS}",
        "-af", "pan=5.1|LFE=c0", "-c:a", "pcm_f32le", str(path),
    )  # fmt: skip
    audio = decode(path, max_duration_s=60)
    assert float(np.abs(audio.window()).max()) < 1e-6


def test_weights_sum_to_one_and_unnamed_channels_weigh_the_same() -> None:
    assert downmix_weights(["FL", "FR"]).tolist() == [0.5, 0.5]
    assert downmix_weights(["FC"]).tolist() == [1.0]
    assert downmix_weights(["NONE"] * 16).tolist() == pytest.approx([1 / 16] * 16)
    assert downmix_weights(["LFE"]).tolist() == [1.0]
    seven_one = downmix_weights(["FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR"])
    assert float(seven_one.sum()) == pytest.approx(1.0)
    assert seven_one[3] == 0.0


def test_streaming_past_the_limit_is_file_too_large(tmp_path: Path) -> None:
    from ecg_protocol import ErrorCode
    from ml_server.pipeline.errors import StageError

    # Raw ADTS AAC declares no duration: the limit is found while decoding.
    path = tmp_path / "long.aac"
    _ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "5", "-c:a", "aac", str(path))
    with pytest.raises(StageError) as info:
        decode(path, max_duration_s=2)
    assert info.value.code == ErrorCode.FILE_TOO_LARGE
