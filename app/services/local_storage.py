"""Embedded storage: a folder in the data dir, with URLs signed and served by the backend.

Clients use the same flow as with S3: `PUT` the file to the upload URL with the Content-Type it
was issued for; the ML server `GET`s the download URL. A URL carries `expires` and `sig`, an
HMAC over method, key, expiry and content type, so it cannot be altered, reused for another key
or used after it expires. Keys are checked against a strict charset and resolved under the root,
so no key can reach outside it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

import anyio

from app.core.config import Settings
from app.services.errors import FileTooLarge, Forbidden, InvalidInput
from app.services.storage import ObjectInfo, is_safe_key

ROUTE_PREFIX = "/storage"


class LocalStorage:
    """Objects under `{root}/objects`, their content types under `{root}/meta`."""

    kind = "local"

    def __init__(
        self,
        *,
        root: Path,
        base_url: str,
        secret: str,
        max_bytes: int,
        expires_in: int = 3600,
    ) -> None:
        self.root = root.resolve()
        self.objects = self.root / "objects"
        self.meta = self.root / "meta"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.meta.mkdir(parents=True, exist_ok=True)
        self.base_url = base_url.rstrip("/")
        # A key derived for this purpose only: a storage URL can never pass as a webhook.
        self._key = hmac.new(secret.encode(), b"ecg-local-storage-v1", hashlib.sha256).digest()
        self.max_bytes = max_bytes
        self.expires_in = expires_in

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalStorage:
        return cls(
            root=settings.ecg_data_dir / "storage",
            base_url=settings.fastapi_base_url,
            secret=settings.signing_secret(),
            max_bytes=settings.max_upload_bytes,
            expires_in=settings.s3_presigned_url_expire,
        )

    # ------------------------------------------------------------------ signing

    def _sign(self, method: str, file_key: str, expires: int, content_type: str) -> str:
        msg = f"{method.upper()}\n{file_key}\n{expires}\n{content_type.lower()}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def _url(self, method: str, file_key: str, content_type: str, expires_in: int | None) -> str:
        if not is_safe_key(file_key):
            raise InvalidInput("invalid file key")
        expires = int(time.time()) + (expires_in or self.expires_in)
        query = urlencode(
            {"expires": expires, "sig": self._sign(method, file_key, expires, content_type)}
        )
        return f"{self.base_url}{ROUTE_PREFIX}/{quote(file_key, safe='/')}?{query}"

    def verify(
        self, *, method: str, file_key: str, expires: str | None, sig: str | None, content_type: str
    ) -> None:
        """Raise `Forbidden` unless the URL was issued by us for exactly this request."""
        if not expires or not sig:
            raise Forbidden("missing expires or sig: use the URL issued by the backend")
        try:
            exp = int(expires)
        except ValueError as exc:
            raise Forbidden("malformed expires") from exc
        expected = self._sign(method, file_key, exp, content_type)
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            raise Forbidden("signature does not match this request (key, method or Content-Type)")
        if exp < time.time():
            raise Forbidden("the URL has expired; request a new one")

    def generate_presigned_url(
        self, file_key: str, content_type: str, expires_in: int | None = None
    ) -> str:
        return self._url("PUT", file_key, content_type, expires_in)

    def generate_download_url(self, file_key: str, expires_in: int | None = None) -> str:
        return self._url("GET", file_key, "", expires_in)

    # ------------------------------------------------------------------ files

    def path_for(self, file_key: str) -> Path:
        """The file for `file_key`, guaranteed inside the root."""
        if not is_safe_key(file_key):
            raise InvalidInput("invalid file key")
        path = (self.objects / file_key).resolve()
        if not path.is_relative_to(self.objects):
            raise InvalidInput("invalid file key")
        return path

    def _meta_path(self, file_key: str) -> Path:
        path = (self.meta / f"{file_key}.json").resolve()
        if not path.is_relative_to(self.meta):
            raise InvalidInput("invalid file key")
        return path

    async def write_stream(
        self, file_key: str, content_type: str, chunks: AsyncIterator[bytes]
    ) -> int:
        """Store the body, refusing it (413) the moment it passes the size limit."""
        path = self.path_for(file_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        size = 0
        try:
            async with await anyio.open_file(tmp, "wb") as fh:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise FileTooLarge(
                            f"upload exceeds the limit of {self.max_bytes} bytes",
                            max_bytes=self.max_bytes,
                        )
                    await fh.write(chunk)
            meta = self._meta_path(file_key)
            meta.parent.mkdir(parents=True, exist_ok=True)
            meta.write_text(json.dumps({"content_type": content_type, "size": size}))
            # Atomic: a reader never sees a half-written object.
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return size

    async def put_file(self, file_key: str, content_type: str, fileobj: BinaryIO) -> None:
        """Store a file the backend received, through the same size check as an upload."""

        async def chunks() -> AsyncIterator[bytes]:
            while chunk := await anyio.to_thread.run_sync(fileobj.read, 1024 * 1024):
                yield chunk

        await self.write_stream(file_key, content_type, chunks())

    async def head_object(self, file_key: str) -> ObjectInfo | None:
        try:
            path = self.path_for(file_key)
        except InvalidInput:
            return None
        try:
            size = path.stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            return None
        content_type: str | None = None
        try:
            content_type = json.loads(self._meta_path(file_key).read_text()).get("content_type")
        except (OSError, ValueError):
            content_type = None
        return ObjectInfo(size=size, content_type=content_type)

    async def check_file_exists(self, file_key: str) -> bool:
        return await self.head_object(file_key) is not None

    async def delete_object(self, file_key: str) -> None:
        for path in (self.path_for(file_key), self._meta_path(file_key)):
            path.unlink(missing_ok=True)

    async def close(self) -> None:
        return None
