"""The allocator setting keeps freed buffers mapped: no page faults on reuse."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from sentinel_jax.allocator import retain_freed_memory

# Six 3 MiB buffers live at once, then all freed, ten times over: the pattern
# of a jitted step's temporaries. glibc's defaults hand the freed top of the
# heap back to the kernel, so every round faults its pages in again.
SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    if sys.argv[1] == "retain":
        from sentinel_jax.allocator import retain_freed_memory
        assert retain_freed_memory()

    def one_round():
        buffers = [np.empty(3 << 20, np.uint8) for _ in range(6)]
        for buffer in buffers:
            buffer.fill(1)

    one_round()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        one_round()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def page_faults(mode: str) -> int:
    completed = subprocess.run([sys.executable, "-c", SCRIPT, mode],
                               capture_output=True, text=True, timeout=120,
                               check=True)
    return int(completed.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_retained_memory_is_reused_without_page_faults():
    default, retained = page_faults("default"), page_faults("retain")
    # 10 rounds x 18 MiB / 4 KiB pages = 46,080 faults if nothing is kept.
    assert default > 10_000
    assert retained < default / 20


def test_retain_freed_memory_is_idempotent():
    first = retain_freed_memory()
    assert retain_freed_memory() is first
    assert first == sys.platform.startswith("linux")
