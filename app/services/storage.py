"""Object storage behind one small Protocol, so routes never care whether it is S3 or local.

Keys follow the guide (docs/guide.md):
`videos/{user_id|anonymous}/{YYYYmmdd_HHMMSS}_{8 hex}_{filename}`.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import BinaryIO, Protocol, runtime_checkable

KEY_PREFIX = "videos"
MAX_FILENAME_CHARS = 120
MAX_KEY_PART_CHARS = 255
# What a stored key may contain: the sanitizer's charset plus the separators it adds.
_KEY_RE = re.compile(r"^[A-Za-z0-9._@-]+(/[A-Za-z0-9._@-]+)*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_EXT = re.compile(r"^[A-Za-z0-9]{1,10}$")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a HEAD of a stored object tells."""

    size: int
    content_type: str | None


@runtime_checkable
class Storage(Protocol):
    """Upload/download URLs and existence checks; implemented by S3Service and LocalStorage."""

    kind: str

    def generate_presigned_url(
        self, file_key: str, content_type: str, expires_in: int | None = None
    ) -> str:
        """URL the client PUTs the file to, with exactly this Content-Type."""
        ...

    def generate_download_url(self, file_key: str, expires_in: int | None = None) -> str:
        """Time-limited GET URL (the ML server downloads the video with it)."""
        ...

    async def head_object(self, file_key: str) -> ObjectInfo | None:
        """Size and content type of a stored object, None when it does not exist."""
        ...

    async def check_file_exists(self, file_key: str) -> bool:
        """Whether the object exists (guide name)."""
        ...

    async def delete_object(self, file_key: str) -> None:
        """Remove the object; a missing one is not an error."""
        ...

    async def put_file(self, file_key: str, content_type: str, fileobj: BinaryIO) -> None:
        """Store a file the backend itself received (the one-call API), from its start."""
        ...

    async def close(self) -> None:
        """Release clients and pools."""
        ...


def sanitize_filename(filename: str) -> str:
    """A safe last path part: no directories, no control characters, a small charset, capped."""
    name = unicodedata.normalize("NFKC", filename)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    stem, dot, ext = name.rpartition(".")
    if not dot or not _EXT.match(ext):
        stem, ext = name, ""
    # Leading dots would make hidden files; a name of only unsafe characters becomes "video".
    stem = _UNSAFE.sub("_", stem).strip("._-") or "video"
    stem = stem[: MAX_FILENAME_CHARS - len(ext) - 1]
    return f"{stem}.{ext}" if ext else stem


def user_prefix(owner: str) -> str:
    """The key prefix every object of `owner` lives under."""
    return f"{KEY_PREFIX}/{owner}/"


def make_file_key(owner: str, filename: str, now: datetime | None = None) -> str:
    """A fresh key in the guide's format."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d_%H%M%S")
    return f"{user_prefix(owner)}{stamp}_{secrets.token_hex(4)}_{sanitize_filename(filename)}"


# make_file_key's `{YYYYmmdd_HHMMSS}_{8 hex}_` before the user's file name.
_KEY_STAMP = re.compile(r"^\d{8}_\d{6}_[0-9a-f]{8}_")


def display_filename(file_key: str) -> str:
    """The user's file name (as sanitized at upload) that `file_key` was made from."""
    name = PurePosixPath(file_key).name
    return _KEY_STAMP.sub("", name) or name


def is_safe_key(file_key: str) -> bool:
    """A key the sanitizer could have produced: no traversal, no odd characters."""
    if len(file_key) > 1024 or not _KEY_RE.match(file_key):
        return False
    # A part longer than a file name may be (255) is no key of ours, and on local storage it
    # would be an OSError (ENAMETOOLONG) rather than a clear 400.
    return all(
        part not in (".", "..") and len(part) <= MAX_KEY_PART_CHARS for part in file_key.split("/")
    )
