"""`ecg up` starts calmly: the ready banner is the last thing on the console even while health
is polled, no library warning is printed, and routine lines (a health poll's access line, each
outgoing HTTP request) stay off the console while real requests are still logged."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.support.up import ecg_up


def test_ready_banner_is_last_and_the_console_is_quiet(tmp_path: Path) -> None:
    with ecg_up(tmp_path) as up:
        for _ in range(5):  # what `ecg up`, the page and probes do all day
            assert httpx.get(f"{up.ml_url}/health", timeout=10).status_code == 200
            health = httpx.get(f"{up.backend_url}/api/upload-video/ml-server/health", timeout=10)
            assert health.status_code == 200
        time.sleep(2.0)
        log = up.proc.log_text()
        banner = log[log.index("ecg up: ready") :]
        assert all(line.startswith("  ") for line in banner.splitlines()[1:]), banner
        assert "\n\necg up: ready\n" in log  # set apart by a blank line
        for noise in ("Warning", "pkg_resources", "GET /health", "HTTP Request:"):
            assert noise not in log, (noise, log)
        assert "ml-server/health" not in log.replace(f"{up.backend_url}/", "")
        # A real request is still logged.
        assert httpx.get(f"{up.backend_url}/api/jobs", timeout=10).status_code == 200
        time.sleep(0.5)
        assert '"GET /api/jobs HTTP/1.1" 200' in up.proc.log_text()
