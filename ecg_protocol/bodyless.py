"""What a body-less signed request (`GET`/`DELETE /jobs/{id}` on the ML server) signs.

Signing the empty body alone would let a captured request for one job be replayed against
another within the replay window; signing the method and path binds it to its job.
"""

from __future__ import annotations


def bodyless_signed_content(method: str, path: str) -> bytes:
    """The bytes signed in place of a body: `b"GET /jobs/<id>"` (path without query)."""
    return f"{method.upper()} {path}".encode()
