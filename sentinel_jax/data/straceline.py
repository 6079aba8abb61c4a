"""The common shapes of an strace line, read with few operations.

Nearly every line of a long ``strace -f -o`` log is one of: a complete call,
the first half of an interrupted call (``read(3,  <unfinished ...>``) or its
second half (``<... read resumed>"abc", 4096) = 3``), after a pid column and
an optional timestamp. :data:`LEAD` reads the prefix and the call name in one
short anchored match; :func:`read_call` and :func:`read_resumed` read the
rest with ``str`` methods (the last " = " by ``rpartition``) instead of a
regex that walks the whole line. All are pure functions of the text.

They return ``None`` for anything else (signal and exit lines, ``[pid N]``
and ``-n``/``-i`` prefixes, unusual spacing, a result that holds "=", a line
with strace's own message in it), which the general parser in
:mod:`sentinel_jax.data.strace` then reads. On every line they accept they
agree exactly with that parser; ``tests/test_strace.py`` checks so on real
captures, generated lines and hand-picked awkward ones.
"""

from __future__ import annotations

import re

#: Kinds of call line :func:`read_call` tells apart.
COMPLETE, UNFINISHED = 0, 1

UNFINISHED_MARK = "<unfinished ...>"

#: The start of a common line: the pid column strace -f -o writes, a
#: -t/-tt/-ttt/-r timestamp, then "name(" or "<... name resumed>". ASCII and
#: single spaces where strace writes them: stricter than the general parser,
#: never looser. Groups: pid, timestamp, call name, resumed call name.
LEAD = re.compile(
    r"(?:(\d+) +)?(?:(\d+(?::\d\d)*(?:\.\d+)?) )?"
    r"(?:([A-Za-z_]\w*)\(|<\.\.\. ([A-Za-z_]\w*) resumed>)", re.A)
# What follows " = ": value, -y annotation, error name, message, -T duration.
# The same grammar as the general parser's, with and without re.S, as the
# general parser uses it for complete and for resumed lines.
_TAIL_PATTERN = (r"(-?\d+|0x[0-9a-fA-F]+|\?)(?:<(.*?)>)?(?:\s+(E[A-Z0-9_]+))?"
                 r"(?:\s*\(.*\))?(?:\s+<(\d+(?:\.\d+)?)>)?\s*$")
_TAIL_ANY = re.compile(_TAIL_PATTERN, re.S)
_TAIL_LINE = re.compile(_TAIL_PATTERN)
# A result with an annotation right after the value: the one way a line that
# ends in "<unfinished ...>" can still read as a complete call.
_ANNOTATED_RESULT = re.compile(r"\)\s*=\s(?:-?\d+|0x[0-9a-fA-F]+|\?)<")
_STRACE_MESSAGE = "strace: Process "

# (result, errno, duration, annotation)
Outcome = tuple[int | None, str | None, float | None, str | None]


def parse_timestamp(text: str | None) -> float | None:
    """Seconds from a ``-t``/``-tt`` (``17:31:03.5``) or ``-ttt``/``-r``
    (``1796319135.18``) timestamp; ``None`` for ``None``."""
    if text is None:
        return None
    if ":" not in text:
        return float(text)
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def read_outcome(tail: str, whole_line: bool = True) -> Outcome | None:
    """The result, error, duration and annotation in the text after " = ".

    Args:
        tail: the text after the last " = ", to the end of the line.
        whole_line: read a message as the general parser does for a complete
            call (``.`` matches any character) rather than for a resumed one.
    """
    value = tail.rstrip()
    if value.isdecimal():
        return int(value), None, None, None
    match = (_TAIL_ANY if whole_line else _TAIL_LINE).match(tail)
    if match is None:
        return None
    value, annotation, errno, duration = match.groups()
    result, errno = read_result(value, errno)
    return result, errno, float(duration) if duration else None, annotation


def read_result(value: str, errno: str | None) -> tuple[int | None, str | None]:
    """A return value as strace prints it (``-1``, ``0x7f..``, ``?``) and its
    error name, which only a negative result keeps."""
    if value == "?":
        result = None
    elif value[:2] == "0x":
        result = int(value, 16)
    else:
        result = int(value)
    if errno is not None and result is not None and result >= 0:
        errno = None
    return result, errno


def _closing_paren(head: str, start: int) -> int:
    """Index of the ")" that ends ``head`` but for blanks, or -1 when there is
    none at or after ``start``."""
    close = len(head.rstrip(" ")) - 1
    return close if close >= start and head[close] == ")" else -1


def read_call(line: str, start: int) -> tuple | None:
    """A call line from the text after ``name(`` (which ends at ``start``).

    The arguments run to the last ") = " whose tail reads as a result, as in
    the general parser's one-regex reading; when a "=" follows that one, or
    anything else is unusual, the general parser decides instead.

    Returns:
        ``(COMPLETE, args, result, errno, duration, annotation)``,
        ``(UNFINISHED, args before the mark)``, or ``None``.
    """
    head, equals, tail = line.rpartition(" = ")
    if equals and len(head) >= start and "=" not in tail:
        close = _closing_paren(head, start)
        if close >= 0:
            outcome = read_outcome(tail)
            if outcome is not None:
                return (COMPLETE, head[start:close], *outcome)
    stripped = line.rstrip()
    if (not stripped.endswith(UNFINISHED_MARK) or _STRACE_MESSAGE in line
            or ("=" in line and _ANNOTATED_RESULT.search(line))):
        return None
    return UNFINISHED, stripped[start:-len(UNFINISHED_MARK)].rstrip()


def read_resumed(line: str, start: int) -> tuple | None:
    """The second half of a call, from the text after ``resumed>`` (which ends
    at ``start``): ``(args, result, errno, duration, annotation)`` or ``None``.
    """
    if _STRACE_MESSAGE in line:
        return None
    # One optional blank after "resumed>", then the rest of the arguments.
    if start < len(line) and line[start].isspace():
        start += 1
    if line.startswith(UNFINISHED_MARK, start) or (
            line[start:start + 1].isspace()
            and line[start:].lstrip().startswith(UNFINISHED_MARK)):
        return None
    head, equals, tail = line.rpartition(" = ")
    if not equals or len(head) < start:
        return None
    close = _closing_paren(head, start)
    if close < 0:
        return None
    outcome = read_outcome(tail, whole_line=False)
    if outcome is None:
        return None
    return (head[start:close], *outcome)
