"""The status hot path: one lean query and a cache of serialized answers.

`GET /status/{id}` is polled by every client every few seconds, so it avoids the ORM: one Core
query for the small columns, the result fetched as JSON text (no parse, no re-serialize) and
spliced into the answer. Answers for final jobs never change, so they are kept (bounded by
bytes, LRU) until the job is deleted; answers for open jobs are kept `ttl_s` at most and dropped
as soon as a callback on this replica changes the job. Another replica's writes show up within
`ttl_s` (and a delete on another replica within `final_ttl_s`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Text, cast, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.models.job import Job
from app.services.job_service import FINAL, as_utc


@dataclass(slots=True)
class _Entry:
    owner: str
    body: bytes
    expires_at: float


class StatusCache:
    """job id → serialized status answer, bounded by total bytes."""

    def __init__(self, *, ttl_s: float, final_ttl_s: float, max_bytes: int) -> None:
        self.ttl_s = ttl_s
        self.final_ttl_s = final_ttl_s
        self.max_bytes = max_bytes
        self._entries: OrderedDict[uuid.UUID, _Entry] = OrderedDict()
        self._bytes = 0

    def get(self, job_id: uuid.UUID, owner: str) -> bytes | bool | None:
        """The cached answer; False when cached for another owner (answer 404); None on miss."""
        entry = self._entries.get(job_id)
        if entry is None:
            return None
        if entry.expires_at < time.monotonic():
            self.invalidate(job_id)
            return None
        self._entries.move_to_end(job_id)
        if entry.owner != owner:
            return False
        return entry.body

    def put(self, job_id: uuid.UUID, owner: str, body: bytes, *, final: bool) -> None:
        ttl = self.final_ttl_s if final else self.ttl_s
        if ttl <= 0 or len(body) > self.max_bytes // 4:
            return
        self.invalidate(job_id)
        self._entries[job_id] = _Entry(owner, body, time.monotonic() + ttl)
        self._bytes += len(body)
        while self._bytes > self.max_bytes and self._entries:
            _, old = self._entries.popitem(last=False)
            self._bytes -= len(old.body)

    def invalidate(self, job_id: uuid.UUID) -> None:
        entry = self._entries.pop(job_id, None)
        if entry is not None:
            self._bytes -= len(entry.body)

    def __len__(self) -> int:
        return len(self._entries)


def _iso(value: datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value is not None else None


class StatusReader:
    """Serialized status answers straight from the engine (no session, no ORM objects)."""

    def __init__(self, engine: AsyncEngine, cache: StatusCache) -> None:
        self.engine = engine
        self.cache = cache
        self._small = select(
            Job.owner,
            Job.status,
            Job.progress,
            Job.stage,
            Job.error_code,
            Job.error_message,
            Job.created_at,
            Job.updated_at,
        )
        self._result = select(cast(Job.result, Text))

    async def read(self, job_id: uuid.UUID, owner: str) -> bytes | None:
        """The guide's status JSON (docs/guide.md) as bytes; None: missing or not the caller's."""
        cached = self.cache.get(job_id, owner)
        if cached is False:
            return None
        if isinstance(cached, bytes):
            return cached
        async with self.engine.connect() as conn:
            row = (await conn.execute(self._small.where(Job.job_id == job_id))).first()
            if row is None:
                return None
            result_text: str | None = None
            if row.status == "completed":
                result_text = (
                    await conn.execute(self._result.where(Job.job_id == job_id))
                ).scalar_one_or_none()
        head = {
            "job_id": str(job_id),
            "status": row.status,
            "progress": row.progress,
            "stage": row.stage,
            "error_code": row.error_code,
            "error_message": row.error_message,
            "created_at": _iso(row.created_at),
            "updated_at": _iso(row.updated_at),
        }
        # Splice the stored JSON text in as-is: a 3 MB result is never parsed here.
        body = json.dumps(head, separators=(",", ":"))[:-1].encode()
        body += b',"result":' + (result_text.encode() if result_text else b"null") + b"}"
        self.cache.put(job_id, row.owner, body, final=row.status in FINAL)
        return body if row.owner == owner else None
