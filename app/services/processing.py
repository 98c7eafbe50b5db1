"""Starting a job: the one path from a stored upload to a `pending` row the dispatcher sends.

request-process and the one-call OpenAI-compatible endpoint both start jobs here.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError

from app.services.errors import Conflict, UnsupportedLanguage
from app.services.job_service import JobService
from ecg_protocol.languages import LanguageError, canonical

logger = logging.getLogger(__name__)


def job_language(raw: str | None) -> str:
    """The request's language in one spelling (`auto`, `ko`, `ko,en`); a code Whisper does not
    know is refused here (400 UNSUPPORTED_LANGUAGE). Whether the ML server's model transcribes
    it is the ML server's answer: its 400 at dispatch fails the job with the same code."""
    try:
        return canonical(raw)
    except LanguageError as exc:
        raise UnsupportedLanguage(str(exc)) from exc


class Waker(Protocol):
    def wake(self) -> None: ...


async def replayed_job(
    *, jobs: JobService, owner: str, idempotency_key: str, file_key: str
) -> uuid.UUID | None:
    """The job this caller's `Idempotency-Key` already started (None: none yet); 409 when that
    job was for another fileKey."""
    existing = await jobs.get_by_idempotency_key(owner=owner, key=idempotency_key)
    if existing is None:
        return None
    if existing.file_key != file_key:
        raise Conflict("Idempotency-Key was already used for a different fileKey")
    return existing.job_id


async def start_processing(
    *,
    jobs: JobService,
    dispatcher: Waker,
    owner: str,
    file_key: str,
    language: str,
    options: dict[str, Any] | None,
    idempotency_key: str | None = None,
    webhook_url: str | None = None,
) -> uuid.UUID:
    """Write the `pending` job row for an upload already checked (and a `job_language`), then
    wake the dispatcher. The ML server's download URL is minted by the dispatcher at each send
    (a retry may come after an earlier URL expired), not here.

    With an `Idempotency-Key` a concurrent twin may win the insert: its job id is returned.
    """
    job_id = uuid.uuid4()
    try:
        await jobs.create_job(
            job_id=job_id,
            file_key=file_key,
            video_url=None,
            owner=owner,
            language=language,
            options=options or None,
            idempotency_key=idempotency_key,
            webhook_url=webhook_url,
        )
    except IntegrityError as exc:
        existing = None
        if idempotency_key:
            existing = await replayed_job(
                jobs=jobs, owner=owner, idempotency_key=idempotency_key, file_key=file_key
            )
        if existing is None:
            raise Conflict("could not create the job; retry") from exc
        return existing
    logger.info("new processing request: job_id=%s key=%s owner=%s", job_id, file_key, owner)
    dispatcher.wake()
    return job_id
