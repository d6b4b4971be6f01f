"""Keep the memory that encoding frees in the process's heap (glibc ``mallopt``), instead of giving it back to
the kernel after every batch.

By default glibc serves each allocation above its ``mmap`` threshold (128 KiB, raised as large blocks are
freed) with a fresh ``mmap`` and trims the top of the heap as soon as 128 KiB lie free there. An encoding
batch allocates and frees activations of megabytes per layer, so the kernel would map, zero-fill and unmap
them again on every batch. Raising both thresholds to :data:`HEAP_THRESHOLD` keeps that memory in the heap
(PyTorch's CPU tuning guides reach the same end by preloading jemalloc or tcmalloc). Numbers do not change,
only where memory comes from; training leaves glibc's defaults (measurements: docs/performance.md).

Nothing is changed where the user set glibc's own variables (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``), preloads another allocator, or the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from functools import lru_cache

#: glibc's ``mallopt`` parameters (``malloc.h``)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: above every activation of an encoding batch (me5-small's largest, the attention scores of four 512-token
#: passages in float32, are 50 MB)
HEAP_THRESHOLD = 1 << 30
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD")


@lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Raise glibc's ``mmap`` and trim thresholds to :data:`HEAP_THRESHOLD`, once per process; ``True`` if
    glibc took both, ``False`` where nothing was changed (see the module's docstring)."""
    if not sys.platform.startswith("linux") or any(os.environ.get(name) for name in USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if not hasattr(libc, "gnu_get_libc_version"):
            return False
        return bool(libc.mallopt(M_MMAP_THRESHOLD, HEAP_THRESHOLD)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, HEAP_THRESHOLD))
    except OSError:
        return False
