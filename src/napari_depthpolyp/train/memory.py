"""Keep freed memory inside the process while a training runs (glibc only).

A training step allocates and frees the same large tensors on every step: the decoder's level-1
fusion alone holds [16, 256, 56, 56] fp32 tensors of 51 MB. glibc's malloc serves every block above
its mmap threshold (at most 32 MB) with a fresh ``mmap`` and gives it back with ``munmap`` when freed,
so each step faults in and zeroes hundreds of MB of new pages: on a 2-core AMD EPYC (AVX2) the fp32
step spent as much time in the kernel as in its own arithmetic and ran at 5-7 img/s. With mmap off
and the heap never trimmed, freed blocks are reused as they are and the same step ran at 13 img/s,
as fast as with tcmalloc preloaded (``benchmarks/bench_training.py --malloc``; docs/benchmarks.md).

``keep_freed_memory`` sets that for the length of a training (the CLI and the napari fine-tune
widget alike) and puts glibc's defaults back afterwards, returning the kept memory to the system
(``malloc_trim``). Elsewhere (macOS, Windows, musl) it does nothing. The arithmetic is unchanged:
only where the bytes live.
"""

from __future__ import annotations

import contextlib
import ctypes
import platform
import threading
from typing import Iterator

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# glibc's defaults, put back on exit (setting the trim threshold also ends glibc's dynamic
# adjustment of the mmap threshold for the process: harmless, and not undoable)
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
_DEFAULT_MMAP_MAX = 65536
_KEEP_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: 2 GiB free at the top before trimming

_lock = threading.Lock()
_depth = 0


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


@contextlib.contextmanager
def keep_freed_memory(enabled: bool = True) -> Iterator[bool]:
    """Within the block, glibc keeps freed memory for reuse instead of unmapping it; yields whether
    that applies here. Nested or concurrent blocks share one setting, undone when the last ends."""
    global _depth
    libc = _glibc() if enabled else None
    if libc is None:
        yield False
        return
    with _lock:
        if _depth == 0:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_TRIM_THRESHOLD)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)
