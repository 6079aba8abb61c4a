"""The C allocator's settings for XLA on a CPU host.

XLA:CPU takes every buffer of a jitted call from the C heap and frees it
when the call ends. glibc serves blocks above its mmap threshold (128 KiB,
raised as it sees large blocks freed) with fresh ``mmap`` pages and hands
them back to the kernel on ``free``, so each call pays page faults on every
large buffer again. An event-encoded train step at batch 256 allocates
dozens of megabyte-sized buffers (the scan's stacked residuals), and those
faults were a third of its time: 61-69 ms per step became 41-47 ms with the
settings below (the same process, only ``mallopt`` changed).

:func:`retain_freed_memory` keeps blocks up to 32 MiB on the heap and the
freed top of the heap in the process, so later calls reuse pages already
mapped. The cost is memory the process keeps after a peak (at most the trim
threshold). It changes nothing on allocators other than glibc's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's upper limit on 64-bit hosts
TRIM_THRESHOLD_BYTES = 1 << 30
TOP_PAD_BYTES = 64 << 20


@functools.cache
def retain_freed_memory() -> bool:
    """Keeps freed buffers mapped for reuse (glibc only; once per process).

    Returns:
        True when glibc accepted the settings, False on other C libraries.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        log.debug("no glibc mallopt; allocator left as it is")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    accepted = all(mallopt(parameter, value) == 1 for parameter, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
        (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
        (_M_TOP_PAD, TOP_PAD_BYTES)))
    log.debug("allocator keeps freed memory: %s", accepted)
    return accepted
