"""Make sure the services the tests talk to are running; start any that is not.

PostgreSQL and Redis are started before the session on this machine kind, but a restarted
machine may have lost one: `make test` runs this first so the tests never hit a dead port.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.support.net import port_open

# The machine's shared Redis, as every test that needs one reaches it (keys under a unique prefix).
REDIS_URL = "redis://127.0.0.1:6379/0"

SERVICES: dict[str, tuple[int, list[str]]] = {
    "postgresql": (
        5432,
        [
            "bash",
            "-c",
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
        ],
    ),
    "redis": (
        6379,
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/ci.log",
        ],
    ),
}


def ensure(name: str, port: int, cmd: list[str], deadline_s: float = 60.0) -> None:
    if port_open(port):
        print(f"{name}: up on :{port}")
        return
    if not shutil.which(cmd[0]) and not Path(cmd[0]).exists():
        sys.exit(f"{name} is not running on :{port} and {cmd[0]} is not installed")
    print(f"{name}: starting")
    subprocess.run(cmd, check=False)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if port_open(port):
            print(f"{name}: up on :{port}")
            return
        time.sleep(0.5)
    sys.exit(f"{name} did not come up on :{port}")


def main() -> None:
    for name, (port, cmd) in SERVICES.items():
        ensure(name, port, cmd)


if __name__ == "__main__":
    main()
