"""Reader for ``PID SYSCALL_NUMBER`` files, one call per line.

Many tracers and published datasets (eBPF and auditd exports, sysdig
conversions) reduce a capture to one line per call: the process id and the
syscall number, separated by white space. Numbers become names through a
user-supplied table (:func:`load_syscall_table`) or a kernel table for an
architecture (:func:`~sentinel_jax.data.syscalls.syscall_table`); numbers the
table lacks become ``UNKNOWN``. A name in place of the number is accepted as
it is. Such files carry no arguments, so their events have no tags.

Blank lines and ``#`` comments are ignored; other lines that do not read as
``PID CALL`` are skipped and counted, never raised on.
"""

from __future__ import annotations

import json
import logging
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

from sentinel_jax.data.strace import open_log
from sentinel_jax.data.syscalls import UNKNOWN, canonical_name, syscall_table
from sentinel_jax.data.traces import NORMAL, Trace

logger = logging.getLogger(__name__)


def load_syscall_table(path: str | Path) -> dict[int, str]:
    """A number -> name table from a file.

    Reads either a JSON object (``{"0": "read", ...}``) or lines of
    ``NUMBER NAME`` (white space or tab separated, ``#`` comments allowed).

    Raises:
        ValueError: naming the file and line that is not ``NUMBER NAME``.
        FileNotFoundError: if the file is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"syscall table not found: {path}")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
            return {int(number): str(name) for number, name in data.items()}
        except (ValueError, AttributeError) as error:
            raise ValueError(f"{path}: expected a JSON object of number -> name: "
                             f"{error}") from None
    table = {}
    for line_number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError(f"{path}:{line_number}: expected 'NUMBER NAME', "
                             f"got {line!r}")
        table[int(parts[0])] = parts[1]
    return table


#: The name ``experiments/generate_data.py`` uses for :func:`load_syscall_table`.
read_table = load_syscall_table


def parse_pidnum_lines(lines: Iterable[str], table: Mapping[int, str]
                       ) -> tuple[dict[int, list[str]], Counter]:
    """Per-pid canonical names from ``PID CALL`` lines.

    Returns:
        ``(names by pid in first-seen order, skipped line counts by reason)``.
    """
    numbers: dict[int, array] = {}
    named: dict[int, dict[int, str]] = {}  # position -> name given as text
    skipped: Counter = Counter()
    for line in lines:
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            skipped["malformed"] += 1
            continue
        pid = int(parts[0])
        calls = numbers.get(pid)
        if calls is None:
            calls = numbers[pid] = array("l")
        token = parts[1]
        if token.isdigit():
            calls.append(int(token))
        else:
            named.setdefault(pid, {})[len(calls)] = canonical_name(token)
            calls.append(-1)
    cache: dict[int, str] = {}

    def name_of(number: int) -> str:
        name = cache.get(number)
        if name is None:
            raw = table.get(number)
            name = cache[number] = canonical_name(raw) if raw else UNKNOWN
        return name

    result = {}
    for pid, calls in numbers.items():
        names = [name_of(number) for number in calls]
        for position, name in named.get(pid, {}).items():
            names[position] = name
        result[pid] = names
    return result, skipped


def read_pidnum_traces(path: str | Path, *, table: Mapping[int, str] | None = None,
                       arch: str = "x86_64", label: int = 0, family: str = NORMAL,
                       group: str | None = None, min_events: int = 1
                       ) -> list[Trace]:
    """One :class:`Trace` per pid of a ``PID SYSCALL_NUMBER`` file.

    Args:
        path: the file (``.gz`` is read too).
        table: number -> name; the kernel table of ``arch`` when ``None``.
        arch: ``x86_64`` or ``i386``, used when ``table`` is ``None``.
        label: 0 benign, 1 attack, for every trace of the file.
        family: attack family (or ``normal``).
        group: split group; the file's name when ``None``.
        min_events: pids with fewer calls are dropped.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: for an unknown ``arch``.
    """
    path = Path(path)
    lookup = table if table is not None else syscall_table(arch)
    with open_log(path) as lines:
        names_by_pid, skipped = parse_pidnum_lines(lines, lookup)
    if skipped:
        logger.warning("%s: skipped %d lines that are not 'PID NUMBER' (%s)", path,
                       sum(skipped.values()), dict(skipped))
    group = group if group is not None else path.name
    return [Trace.from_names(names, label=label, family=family,
                             trace_id=f"{path.name}:{pid}", group=group,
                             source="pidnum")
            for pid, names in names_by_pid.items() if len(names) >= min_events]
