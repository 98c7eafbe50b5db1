"""A stored video's duration, read with ffprobe from its download URL (best effort).

The reconciler uses it to scale how long it waits for an unreachable ML server with the length
of the media; without ffprobe, or when it cannot read the file, the answer is None and the
fixed deadline applies.
"""

from __future__ import annotations

import asyncio
import logging
import math
import shutil

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 30.0
# Our own storage URLs are HTTP(S); nothing else may be opened on the probe's behalf.
_PROTOCOLS = "http,https,tcp,tls,crypto"


async def media_duration_s(url: str, *, timeout_s: float = PROBE_TIMEOUT_S) -> float | None:
    """Seconds of media at `url`, None when ffprobe is missing, fails or takes over `timeout_s`."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return None
    proc = await asyncio.create_subprocess_exec(
        ffprobe,
        "-v",
        "error",
        "-protocol_whitelist",
        _PROTOCOLS,
        "-show_entries",
        "format=duration",
        "-of",
        "default=noprint_wrappers=1:nokey=1",
        url,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        logger.warning("ffprobe took over %.0fs; media duration unknown", timeout_s)
        return None
    try:
        value = float(out.decode("utf-8", "replace").strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None
