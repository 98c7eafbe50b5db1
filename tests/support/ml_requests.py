"""Signed `GET`/`DELETE /jobs/{id}` on the ML server, as the backend sends them."""

from __future__ import annotations

import httpx

from ecg_protocol import sign_headers
from ecg_protocol.bodyless import bodyless_signed_content


def job_headers(method: str, job_id: str, secret: str) -> dict[str, str]:
    """Signature headers for `method /jobs/{job_id}`."""
    return sign_headers(bodyless_signed_content(method, f"/jobs/{job_id}"), secret)


def get_job(base_url: str, job_id: str, secret: str, *, timeout: float = 10) -> httpx.Response:
    headers = job_headers("GET", job_id, secret)
    return httpx.get(f"{base_url}/jobs/{job_id}", headers=headers, timeout=timeout)


def cancel_job(base_url: str, job_id: str, secret: str, *, timeout: float = 10) -> httpx.Response:
    headers = job_headers("DELETE", job_id, secret)
    return httpx.delete(f"{base_url}/jobs/{job_id}", headers=headers, timeout=timeout)
