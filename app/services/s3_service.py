"""S3Service: the guide's methods (docs/guide.md) on boto3, for AWS or any S3-compatible server."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.core.config import Settings
from app.services.errors import StorageUnavailable
from app.services.storage import ObjectInfo

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


class S3Service:
    """Presigned upload/download URLs and HEAD checks against one bucket."""

    kind = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        region: str,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        endpoint_url: str | None = None,
        expires_in: int = 3600,
    ) -> None:
        self.bucket = bucket
        self.expires_in = expires_in
        # Path-style addressing: S3-compatible servers (SeaweedFS, MinIO) rarely do vhost DNS.
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            retries={"max_attempts": 3, "mode": "standard"},
        )
        self.client: S3Client = boto3.client(
            "s3",
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            endpoint_url=endpoint_url,
            config=config,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Service:
        assert settings.s3_bucket_name
        return cls(
            bucket=settings.s3_bucket_name,
            region=settings.aws_region,
            access_key_id=settings.aws_access_key_id,
            secret_access_key=settings.aws_secret_access_key,
            endpoint_url=settings.s3_endpoint_url,
            expires_in=settings.s3_presigned_url_expire,
        )

    def generate_presigned_url(
        self, file_key: str, content_type: str, expires_in: int | None = None
    ) -> str:
        """Presigned PUT; the signature covers Content-Type, so the upload must send the same."""
        return self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": file_key, "ContentType": content_type},
            ExpiresIn=expires_in or self.expires_in,
            HttpMethod="PUT",
        )

    def generate_download_url(self, file_key: str, expires_in: int | None = None) -> str:
        """Presigned GET (read-only) for the ML server."""
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": file_key},
            ExpiresIn=expires_in or self.expires_in,
            HttpMethod="GET",
        )

    def _head(self, file_key: str) -> ObjectInfo | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=file_key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                return None
            logger.warning("S3 HEAD %s failed: %s", file_key, code or exc)
            raise StorageUnavailable(f"object storage refused the check ({code})") from exc
        except BotoCoreError as exc:
            # Endpoint down, DNS, timeouts: an outage, not the client's fault.
            logger.warning("S3 unreachable on HEAD %s: %s", file_key, exc)
            raise StorageUnavailable("object storage is unreachable; retry shortly") from exc
        return ObjectInfo(size=int(head["ContentLength"]), content_type=head.get("ContentType"))

    async def head_object(self, file_key: str) -> ObjectInfo | None:
        # boto3 blocks; a thread keeps the event loop free.
        return await asyncio.to_thread(self._head, file_key)

    async def check_file_exists(self, file_key: str) -> bool:
        return await self.head_object(file_key) is not None

    async def delete_object(self, file_key: str) -> None:
        try:
            await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=file_key)
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable("object storage did not delete the object") from exc

    async def put_file(self, file_key: str, content_type: str, fileobj: BinaryIO) -> None:
        """Upload a file the backend received (multipart, in managed parts for large ones)."""
        try:
            await asyncio.to_thread(
                self.client.upload_fileobj,
                fileobj,
                self.bucket,
                file_key,
                ExtraArgs={"ContentType": content_type},
            )
        except (BotoCoreError, ClientError) as exc:
            logger.warning("S3 upload of %s failed: %s", file_key, exc)
            raise StorageUnavailable("object storage did not store the upload") from exc

    async def close(self) -> None:
        self.client.close()
