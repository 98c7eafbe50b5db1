"""The result schema: both timestamp shapes in, every word key out."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ecg_protocol import AnalysisResult, CallbackPayload, ProcessOptions, normalize_timestamp_fields
from tests.support.results import RESULT_WIRE

WORD_KEYS = {"word", "start", "end", "speaker_id", "volume_db", "pitch_hz", "probability"}


def test_guide_result_normalizes_to_start_end_with_every_word_key() -> None:
    stored = normalize_timestamp_fields(RESULT_WIRE)
    seg = stored["segments"][0]
    assert (seg["start"], seg["end"]) == (4.908, 8.754)
    assert "start_time" not in seg
    assert set(seg["words"][0]) == WORD_KEYS
    assert seg["words"][0]["probability"] is None
    assert stored["schema_version"] == "1"


def test_wire_form_uses_guide_names_and_round_trips() -> None:
    result = AnalysisResult.model_validate(RESULT_WIRE)
    wire = result.to_wire()
    assert wire["segments"][0]["start_time"] == 4.908
    assert AnalysisResult.model_validate(wire) == result


def test_segment_language_is_carried_and_absent_in_older_results() -> None:
    older = AnalysisResult.model_validate(RESULT_WIRE)
    assert all(seg.language is None for seg in older.segments)
    wire = older.to_wire()
    wire["segments"][0]["language"] = "fr"
    tagged = AnalysisResult.model_validate(wire)
    assert tagged.segments[0].language == "fr"
    assert tagged.to_wire()["segments"][0]["language"] == "fr"
    assert normalize_timestamp_fields(wire)["segments"][0]["language"] == "fr"


def test_completed_callback_needs_result_and_failed_needs_code() -> None:
    with pytest.raises(ValidationError):
        CallbackPayload.model_validate({"job_id": "j", "status": "completed", "progress": 100})
    with pytest.raises(ValidationError):
        CallbackPayload.model_validate({"job_id": "j", "status": "failed"})
    with pytest.raises(ValidationError):
        CallbackPayload.model_validate({"job_id": "j", "status": "processing", "progress": 101})
    ok = CallbackPayload.model_validate(
        {"job_id": "j", "status": "failed", "error_code": "NO_AUDIO_TRACK"}
    )
    assert ok.error_code == "NO_AUDIO_TRACK"


def test_speaker_hints_must_be_ordered() -> None:
    with pytest.raises(ValidationError):
        ProcessOptions(min_speakers=3, max_speakers=2)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize(
    "where",
    [
        '{{"segments": [{{"start": {n}, "end": 1, "speaker": {{"speaker_id": "S"}}}}]}}',
        '{{"segments": [{{"start": 0, "end": 1, "speaker": {{"speaker_id": "S"}}, '
        '"words": [{{"word": "a", "start": 0, "end": 1, "pitch_hz": {n}}}]}}]}}',
        '{{"segments": [{{"start": 0, "end": 1, "speaker": {{"speaker_id": "S"}}, '
        '"emotion": {{"label": "x", "score": 0.5, "scores": {{"x": {n}}}}}}}]}}',
        '{{"metadata": {{"duration": {n}}}}}',
        '{{"metadata": {{"processing_time": {{"asr": {n}}}}}}}',
    ],
)
def test_non_finite_numbers_are_refused(where: str, number: str) -> None:
    """JSON has no NaN/Infinity: a result carrying one is invalid, never stored or served."""
    with pytest.raises(ValidationError, match="finite"):
        AnalysisResult.model_validate_json(where.format(n=number))


def test_non_finite_numbers_are_refused_from_python_too() -> None:
    # The ML server builds results from floats (numpy): a NaN there fails before it is sent.
    with pytest.raises(ValidationError, match="finite"):
        AnalysisResult.model_validate({"metadata": {"duration": float("nan")}})
    with pytest.raises(ValidationError, match="finite"):
        CallbackPayload.model_validate(
            {
                "job_id": "j",
                "status": "completed",
                "result": {
                    "segments": [{"start": float("inf"), "end": 1, "speaker": {"speaker_id": "S"}}]
                },
            }
        )
