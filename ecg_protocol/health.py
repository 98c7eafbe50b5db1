"""What the ML server says about itself: `GET /health` and `GET /languages`.

The backend's health route, `ecg up` and the web page's language choice read these answers.
"""

from __future__ import annotations

from pydantic import BaseModel


class MLServerHealth(BaseModel):
    """`GET /health` on the ML server: liveness, and what its workers are doing."""

    status: str = "ok"
    message: str = "ML Server is running"
    models_loaded: bool
    queue_depth: int
    running: int
    workers: int
    version: str
    # Codes a request's `language` may name (one, or a comma-separated list), besides `auto`.
    languages: list[str]


class PlainHealth(BaseModel):
    """A guide-era ML server's (docs/guide.md) `/health` 200 when it is a JSON object: only
    its words are read; any 200 is healthy whatever it holds."""

    message: str | None = None
    status: str | None = None


class LanguageName(BaseModel):
    code: str
    name: str


class MLServerLanguages(BaseModel):
    """`GET /languages`: what `language` may be on this server: `auto`, one code, or a
    comma-separated list."""

    asr_model: str
    english_model: str | None
    languages: list[LanguageName]
    # The ASR models a request's `options.model` may name, the configured one first (ext; an
    # older server does not say, and holds only `asr_model`).
    models: list[str] = []
