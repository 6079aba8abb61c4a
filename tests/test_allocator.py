"""The allocator setting keeps freed buffers mapped: no page faults on reuse."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from sentinel_jax.allocator import retain_freed_memory

# A jitted step's pattern of temporaries, ten times over: six 3 MiB buffers
# live at once, then all freed (glibc's defaults hand the freed top of the
# heap back to the kernel), or one 48 MiB block (past glibc's largest mmap
# threshold, so it gets pages of its own, unmapped on free). Prints the page
# faults of rounds 2-11 and the resident memory (MiB) the process kept after
# freeing.
SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    if sys.argv[1] == "retain":
        from sentinel_jax.allocator import retain_freed_memory
        assert retain_freed_memory()

    def resident_mib():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() / 2**20

    def small_buffers():
        buffers = [np.empty(3 << 20, np.uint8) for _ in range(6)]
        for buffer in buffers:
            buffer.fill(1)

    def large_block():
        np.empty(48 << 20, np.uint8).fill(1)

    one_round = {"small": small_buffers, "large": large_block}[sys.argv[2]]
    resident = resident_mib()
    one_round()
    kept = resident_mib() - resident
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        one_round()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, kept)
""")


def run_pattern(mode: str, pattern: str) -> tuple[int, float]:
    completed = subprocess.run([sys.executable, "-c", SCRIPT, mode, pattern],
                               capture_output=True, text=True, timeout=120,
                               check=True)
    faults, kept = completed.stdout.split()[-2:]
    return int(faults), float(kept)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
@pytest.mark.parametrize(("pattern", "megabytes"), [("small", 18), ("large", 48)])
def test_freed_memory_stays_mapped_for_the_next_call(pattern, megabytes):
    default_faults, default_kept = run_pattern("default", pattern)
    faults, kept = run_pattern("retain", pattern)
    assert default_kept < megabytes / 4 < megabytes * 0.9 < kept
    assert faults < 1000  # nothing faulted in again
    if pattern == "small":  # 10 rounds x 18 MiB / 4 KiB pages: 46,080
        assert default_faults > 40_000


def test_retain_freed_memory_is_idempotent():
    first = retain_freed_memory()
    assert retain_freed_memory() is first
    assert first == sys.platform.startswith("linux")
