"""A private PostgreSQL server for the restart test (never the machine's shared :5432 one).

initdb into a temp dir, start on a free port with pg_ctl, restart it on demand. PostgreSQL
refuses to run as root, so as root the server runs as the `postgres` system user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.support.net import free_port
from tests.support.procs import wait_for


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return path


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@dataclass
class PgInstance:
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of database `ecg` on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/ecg"

    @classmethod
    def create(cls, root: Path) -> PgInstance:
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        inst = cls(root=root, port=free_port())
        subprocess.run(
            _as_server_user(
                [
                    pg_bin("initdb"),
                    "-D",
                    str(inst.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        inst.start()
        with psycopg.connect(inst.admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE ecg")
        return inst

    def _ctl(self, *args: str) -> None:
        opts = f"-p {self.port} -k {self.root} -h 127.0.0.1 -c fsync=off"
        subprocess.run(
            _as_server_user(
                [
                    pg_bin("pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "server.log"),
                    "-o",
                    opts,
                    "-w",
                    "-t",
                    "60",
                    *args,
                ]
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self._ctl("start")
        wait_for(self.accepting, timeout_s=30, what="PostgreSQL to accept connections")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("stop", "-m", mode)

    def restart(self) -> None:
        """Stop (fast: every connection is cut) and start again on the same port and data."""
        self._ctl("restart", "-m", "fast")
        wait_for(self.accepting, timeout_s=30, what="PostgreSQL to come back")

    def accepting(self) -> bool:
        try:
            with psycopg.connect(self.admin_url, connect_timeout=2):
                return True
        except psycopg.Error:
            return False
