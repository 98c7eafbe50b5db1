"""End to end through real processes: `ecg up` starts both services, `ecg analyze` runs the
guide's client flow, and what lands on disk is checked against the synthesized dialogue.

Once on the embedded defaults (SQLite, local storage, bundled model) and once on PostgreSQL and
SeaweedFS S3. Nothing is faked: the speech is espeak-ng, the model is the real tiny.en.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.caption_parsers import parse_srt, parse_vtt, strip_tags, vtt_voice
from tests.support.media import SpeechMedia, dialogue, not_media
from tests.support.net import free_port
from tests.support.pg import temporary_database
from tests.support.procs import REPO_ROOT
from tests.support.seaweed import SeaweedS3
from tests.support.transcripts import word_error_rate
from tests.support.up import CliRun, UpStack, ecg_up, run_analyze

MAX_WER = 0.15


def check_run(run: CliRun, media: SpeechMedia) -> None:
    """Exit 0, a completed result with two speakers, WER ≤ 15 %, SRT and VTT that parse."""
    assert run.returncode == 0, f"ecg analyze failed:\n{run.stderr[-3000:]}"
    assert run.stdout.count("\n") == 1 and "completed" in run.stdout, run.stdout
    result = run.result()
    segments = result["segments"]
    assert segments, result
    assert all("start" in s and "end" in s and "start_time" not in s for s in segments)

    speakers = {s["speaker"]["speaker_id"] for s in segments}
    assert len(speakers) == 2, speakers
    assert result["metadata"]["unique_speakers"] == 2

    hypothesis = " ".join(s["text"] for s in segments)
    wer = word_error_rate(media.text, hypothesis)
    assert wer <= MAX_WER, f"WER {wer:.1%} > {MAX_WER:.0%}: {hypothesis!r}"

    # The diarization agrees with who really spoke: one label per synthetic voice, for most words.
    pairs = Counter(
        (media.nearest_speaker((w["start"] + w["end"]) / 2), w["speaker_id"])
        for s in segments
        for w in s["words"]
    )
    agree = sum(max(n for (truth, _), n in pairs.items() if truth == t) for t in media.speakers)
    assert agree / sum(pairs.values()) >= 0.8, pairs

    for w in (w for s in segments for w in s["words"]):
        assert set(w) >= {"word", "start", "end", "speaker_id", "volume_db", "pitch_hz"}

    srt_cues = parse_srt(run.outputs["srt"].read_text(encoding="utf-8"))
    assert {c.lines[0].split("]")[0] + "]" for c in srt_cues} == {f"[{s}]" for s in speakers}
    vtt_cues = parse_vtt(run.outputs["vtt"].read_text(encoding="utf-8"))
    assert {vtt_voice(c.lines[0]) for c in vtt_cues} == speakers
    for cue in srt_cues:
        assert all(len(line) <= 42 for line in cue.lines) and len(cue.lines) <= 2
    # The captions carry the transcript itself.
    caption_text = " ".join(strip_tags(line) for c in vtt_cues for line in c.lines)
    assert word_error_rate(hypothesis, caption_text) == 0.0


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    with ecg_up(tmp_path_factory.mktemp("e2e-embedded")) as stack:
        yield stack


def test_mp4_through_cli_on_embedded_defaults(embedded: UpStack, tmp_path: Path) -> None:
    media = dialogue("mp4")
    run = run_analyze(embedded.backend_url, media.path, tmp_path, "--language", "en")
    check_run(run, media)
    # Embedded defaults really were used: the SQLite file and the uploaded file in the data dir.
    assert (embedded.data_dir / "ecg.db").is_file()
    assert any(p.name.endswith("_dialogue.mp4") for p in embedded.data_dir.rglob("*.mp4"))


def test_cli_failures_are_one_clear_line(embedded: UpStack, tmp_path: Path) -> None:
    # A file that is not video or audio (text/plain) → refused before any upload, exit 1.
    bad = tmp_path / "notes.txt"
    bad.write_text("not a video", encoding="utf-8")
    run = run_analyze(embedded.backend_url, bad, tmp_path / "a", formats=())
    assert run.returncode == 1
    line = run.stderr.strip()
    assert "\n" not in line and line.startswith("ecg analyze: error: notes.txt is not a video")

    # The backend is not there.
    run = run_analyze(f"http://127.0.0.1:{free_port()}", dialogue("wav").path, tmp_path / "b")
    assert run.returncode == 1
    assert run.stderr.strip().startswith("ecg analyze: error: cannot reach the backend")
    assert "\n" not in run.stderr.strip()

    # Accepted upload, but not media: the job fails and the CLI names the code.
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(not_media().read_bytes())
    run = run_analyze(embedded.backend_url, fake, tmp_path / "c", formats=("srt",))
    assert run.returncode == 1
    line = run.stderr.strip()
    assert "\n" not in line and "analysis failed: UNSUPPORTED_MEDIA" in line, line
    assert not (tmp_path / "c" / "fake.srt").exists()

    # A wait that runs out: the job id and where it stood, on one line.
    run = run_analyze(
        embedded.backend_url, dialogue("wav", long=True).path, tmp_path / "t", "--timeout", "1"
    )
    assert run.returncode == 1
    line = run.stderr.strip()
    assert "\n" not in line and line.startswith("ecg analyze: error: timed out waiting for job")

    # A missing file never reaches the network.
    run = run_analyze(embedded.backend_url, tmp_path / "nope.mp4", tmp_path / "d")
    assert run.returncode == 1 and "no such file" in run.stderr


def test_mp4_through_cli_on_postgres_and_seaweedfs_s3(seaweed: SeaweedS3, tmp_path: Path) -> None:
    bucket = seaweed.create_bucket(f"ecg-e2e-{uuid.uuid4().hex[:8]}")
    media = dialogue("mp4")
    with temporary_database("ecg_e2e") as db_url:
        env = {"DATABASE_URL": db_url, **seaweed.settings_env(bucket)}
        with ecg_up(tmp_path / "stack", env) as stack:
            assert "storage:   S3 bucket" in stack.proc.log_text()
            run = run_analyze(stack.backend_url, media.path, tmp_path / "out")
            check_run(run, media)
            keys = [o["Key"] for o in seaweed.client().list_objects_v2(Bucket=bucket)["Contents"]]
            assert any(k.endswith("_dialogue.mp4") for k in keys), keys
            # Nothing went to the embedded stores.
            assert not (stack.data_dir / "ecg.db").exists()


def test_readme_curl_block_runs_as_written(embedded: UpStack, tmp_path: Path) -> None:
    if not (shutil.which("curl") and shutil.which("jq")):
        pytest.skip("curl and jq are needed")
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("### curl: the guide's flow by hand", 1)[1]
    script = block.split("```bash\n", 1)[1].split("```", 1)[0]
    assert script.startswith("B=http://127.0.0.1:8000\n")
    script = script.replace("B=http://127.0.0.1:8000", f"B={embedded.backend_url}", 1)
    media = dialogue("mp4")
    shutil.copyfile(media.path, tmp_path / "talk.mp4")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert '"status":"healthy"' in done.stdout.replace(" ", "")
    cues = parse_srt((tmp_path / "talk.srt").read_text(encoding="utf-8"))
    assert len({c.lines[0].split("]")[0] for c in cues}) == 2
    one_call = json.loads((tmp_path / "talk.verbose.json").read_text(encoding="utf-8"))
    assert one_call["language"] == "english" and one_call["duration"] > 0
    assert len({w["speaker"] for w in one_call["words"]}) == 2
    assert all(w["end"] >= w["start"] and "volume_db" in w for w in one_call["words"])
