"""Builds the configured Storage.

Apart from `storage.py` on purpose: the implementations import its shared types (ObjectInfo,
is_safe_key), so a factory there that imported them back made an import cycle.
"""

from __future__ import annotations

from app.core.config import Settings
from app.services.local_storage import LocalStorage
from app.services.storage import Storage


def build_storage(settings: Settings) -> Storage:
    """S3 when a bucket is configured, else the embedded local folder."""
    if settings.uses_s3:
        # Imported here, not at the top: boto3 costs ~0.4 s to import, and the embedded
        # (local-folder) backend never needs it.
        from app.services.s3_service import S3Service

        return S3Service.from_settings(settings)
    return LocalStorage.from_settings(settings)
