"""Freed memory handed back to the system between stages (glibc's `malloc_trim`).

glibc serves an allocation above its mmap threshold (128 KiB at first) with its own mapping,
returned when freed; but after the first such free it raises the threshold to that size (up to
32 MiB), so later arrays of a few megabytes come from a heap, one per thread, and stay there
once freed. The analysis makes many of them (a VAD window's Silero batch, Whisper's features,
a block of pitch frames, each on its own thread), so a worker held ~100 MB more after VAD than
before it, and more after each job. `give_back` returns the free pages of every heap to the
system; the pipeline calls it where a stage's working memory has just been freed (after VAD,
after each transcription group, after transcription, after the job). Measured in-process on
13 min of ami-dev, three jobs in a row (docs/benchmarks.md, "Memory against media duration"):
transcription peaks 1293 / 1361 / 1510 MB and 999 / 1118 / 1245 MB held after each job without
it, 1175 / 1186 / 1202 and 734 / 773 / 773 MB with it, at the same speed; 3 h of speech
(bench_memory) peaks at 1,457 MB with it, 1,578 MB without. Fixing the threshold instead
(`MALLOC_MMAP_THRESHOLD_`) held still less, but made transcription ~30 % slower: CTranslate2
then maps and faults in every buffer it allocates.

Other C libraries (musl) have no `malloc_trim`: there it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Callable


@functools.cache
def _trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def give_back() -> bool:
    """Return the free memory of every heap to the system; False where it cannot."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)  # 1 if memory was released, 0 if there was none to release: both are done
    return True
