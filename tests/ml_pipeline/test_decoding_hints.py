"""A request's decoding hints reach faster-whisper (the shipped models, an audioeval clip): a
prompt with the right spelling fixes a name the plain decode gets wrong, and `translate` gives
English text of French speech while reporting the spoken language."""

from __future__ import annotations

from ml_server.models import Models
from ml_server.pipeline.data import DecodingHints
from ml_server.pipeline.run import PipelineOptions, run_pipeline
from tests.support.languages import AUDIOEVAL_DIR

# "Portez ce vieux whisky au juge blond qui fume." — base hears "… au juge Blanqui Fume."
PANGRAM = AUDIOEVAL_DIR / "fr" / "pangrama.flac"


def _decode(models: Models, hints: DecodingHints) -> tuple[str, str | None]:
    result = run_pipeline(PANGRAM, options=PipelineOptions(decoding=hints), models=models)
    return " ".join(s.text for s in result.segments).lower(), result.metadata.language


def test_prompt_steers_the_spelling(models: Models) -> None:
    plain, lang = _decode(models, DecodingHints())
    assert lang == "fr" and "blond qui fume" not in plain, plain
    prompt = "Portez ce vieux whisky au juge blond qui fume, dit-il."
    steered, _ = _decode(models, DecodingHints(prompt=prompt))
    assert "blond qui fume" in steered, steered


def test_translate_gives_english_text(models: Models) -> None:
    english, lang = _decode(models, DecodingHints(task="translate"))
    assert lang == "fr"  # the language spoken, as OpenAI's verbose_json reports it
    assert "judge" in english and "juge" not in english and "whisk" in english, english
