"""The shared HMAC secret of the embedded default: generated once, kept in the data dir."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from pathlib import Path

SECRET_FILE = "webhook_secret"  # noqa: S105 - a file name, not a secret
CLIENT_SECRET_FILE = "client_webhook_secret"  # noqa: S105 - a file name, not a secret


def new_whsec() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes (what their SDKs take)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def default_data_dir() -> Path:
    """`ECG_DATA_DIR`, else `$XDG_DATA_HOME/ecg`, else `~/.local/share/ecg`."""
    env = os.environ.get("ECG_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "ecg"


def load_or_create_secret(
    data_dir: Path, name: str = SECRET_FILE, factory: Callable[[], str] | None = None
) -> str:
    """Read the secret `name` kept in `data_dir`, creating it (mode 0600) on first use."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / name
    try:
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    value = factory() if factory is not None else secrets.token_urlsafe(32)
    # Write a private temp file, then link it into place: link() fails if another process won
    # the race, and a reader never sees a half-written secret.
    tmp = data_dir / f".{name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value)
    try:
        os.link(tmp, path)
    except FileExistsError:
        value = path.read_text(encoding="utf-8").strip()
    finally:
        tmp.unlink(missing_ok=True)
    return value
