"""Measures strace parse throughput (lines and calls per second).

Builds a synthetic ``strace -f -o`` log from a mix of real line shapes (file
reads through descriptors, opens, mmaps, failed lookups, unfinished/resumed
pairs, socket calls, signals, exits, forks) and times
:class:`~sentinel_jax.data.strace.StraceParser` over it, tags included. The
live monitor needs at least 200,000 calls per second including parsing.

A saved log (``--log``, e.g. ``strace -f -ttt -yy -o LOG``, the live
monitor's flags) can be timed instead; ``--reference`` times the reference
route (``StraceParser(shortcuts=False)``) for comparison.

Usage:
  python scripts/bench_strace_parse.py [--lines 300000] [--repeats 3]
      [--log LOG] [--reference]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time

from sentinel_jax.data.strace import StraceParser, iter_strace_calls, open_log

_TEMPLATES = (
    '{pid}  read(3, "\\177ELF\\2\\1\\1\\0\\0\\0\\0\\0\\0\\0\\0\\0\\3\\0>\\0\\1"'
    '..., 832) = 832',
    '{pid}  write(1, "hello world\\n", 12)      = 12',
    "{pid}  fstat(3, {{st_mode=S_IFREG|0644, st_size=27002, ...}}) = 0",
    "{pid}  mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)"
    " = 0x7f57c966b000",
    '{pid}  openat(AT_FDCWD, "/usr/lib/x86_64-linux-gnu/libc.so.6", '
    "O_RDONLY|O_CLOEXEC) = 3",
    "{pid}  close(3)                          = 0",
    '{pid}  access("/etc/ld.so.preload", R_OK) = -1 ENOENT (No such file or directory)',
    "{pid}  rt_sigaction(SIGINT, {{sa_handler=SIG_DFL, sa_mask=[], "
    "sa_flags=SA_RESTORER, sa_restorer=0x7f57c94b4050}}, NULL, 8) = 0",
    "{pid}  brk(NULL)                         = 0x55d732919000",
    "{pid}  futex(0x7f57c966a990, FUTEX_WAKE_PRIVATE, 2147483647) = 0",
    "{pid}  wait4(-1,  <unfinished ...>",
    "{pid}  <... wait4 resumed>[{{WIFEXITED(s) && WEXITSTATUS(s) == 0}}], 0, NULL)"
    " = 4242",
    "{pid}  --- SIGCHLD {{si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=4242, si_uid=0,"
    " si_status=0, si_utime=0, si_stime=0}} ---",
    '{pid}  newfstatat(AT_FDCWD, "/usr/local/bin/ls", 0x7ffd93aab4b0, 0) = -1 ENOENT'
    " (No such file or directory)",
    "{pid}  socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP) = 5",
    "{pid}  connect(5, {{sa_family=AF_INET, sin_port=htons(443),"
    ' sin_addr=inet_addr("93.184.216.34")}}, 16) = 0',
)
# Relative frequencies, roughly those of real captures (reads/writes lead).
_WEIGHTS = (20, 14, 10, 10, 6, 8, 5, 4, 3, 6, 1, 1, 1, 4, 1, 1)


def synthetic_log(lines: int, seed: int = 0) -> list[str]:
    """A strace log of about ``lines`` lines from a few live processes."""
    rng = random.Random(seed)
    pids = list(range(4000, 4008))
    out = []
    while len(out) < lines:
        pid = rng.choice(pids)
        index = rng.choices(range(len(_TEMPLATES)), _WEIGHTS)[0]
        if index == 10:  # unfinished: resume it right away, as strace would
            out.append(_TEMPLATES[10].format(pid=pid))
            out.append(_TEMPLATES[11].format(pid=pid))
        elif index != 11:
            out.append(_TEMPLATES[index].format(pid=pid))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--log", help="time this strace log (its first --lines "
                                      "lines) instead of the synthetic one")
    parser.add_argument("--reference", action="store_true",
                        help="time the reference route (no shortcuts)")
    args = parser.parse_args(argv)
    if args.log:
        with open_log(args.log) as handle:
            log = list(itertools.islice(handle, args.lines))
    else:
        log = synthetic_log(args.lines)
    best_wall = best_cpu = float("inf")
    calls = 0
    for _ in range(args.repeats):
        strace = StraceParser(shortcuts=not args.reference)
        wall, cpu = time.perf_counter(), time.process_time()
        calls = sum(1 for _ in iter_strace_calls(log, strace))
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    # CPU time is what one core would take unshared; wall time includes any
    # contention from other work on the machine.
    result = {"route": "reference" if args.reference else "fast",
              "lines": len(log), "calls": calls,
              "wall_s": round(best_wall, 4), "cpu_s": round(best_cpu, 4),
              "lines_per_cpu_s": round(len(log) / best_cpu),
              "calls_per_cpu_s": round(calls / best_cpu),
              "calls_per_wall_s": round(calls / best_wall)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
