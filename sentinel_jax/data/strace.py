"""Streaming reader for strace text output, per process, with tags.

Reads what ``strace -f`` writes, to a terminal or with ``-o`` (pid column),
with or without ``-t``/``-tt``/``-ttt``/``-r``, ``-T``, ``-n``, ``-i``,
``-y``/``-yy``: ``[pid N]`` prefixes, ``<unfinished ...>``/``<... resumed>``
pairs, ``= ?`` results, ``ERESTART*`` errors, signal lines (``--- SIGCHLD
{...} ---``), exit lines (``+++ exited with 0 +++``), truncated lines, quoted
strings with escapes and nested arguments.

:class:`StraceParser` is fed one line at a time and returns the calls that
line completes, each with a tag mask from the rule table
(:mod:`sentinel_jax.data.tags`) and the process's descriptor table
(:mod:`sentinel_jax.data.fdtable`). It never raises on text: lines it cannot
read are skipped and counted in :class:`ParseStats`. Memory is bounded by the
live processes, so a log of any size streams through
:func:`iter_strace_calls` or, one :class:`Trace` per process as each exits,
:func:`iter_strace_traces`.
"""

from __future__ import annotations

import gzip
import logging
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

from sentinel_jax.data.fdtable import EFFECT_CALLS, ProcessState, apply_call
from sentinel_jax.data.straceargs import split_args
from sentinel_jax.data.straceline import (
    COMPLETE,
    LEAD,
    UNFINISHED_MARK,
    parse_timestamp,
    read_call,
    read_result,
    read_resumed,
)
from sentinel_jax.data.syscalls import canonical_name
from sentinel_jax.data.tagger import Tagger, default_tagger
from sentinel_jax.data.traces import NORMAL, Trace

logger = logging.getLogger(__name__)

# Prefix: "[pid N] " (terminal) or "N " (-o), a timestamp (-t/-tt/-ttt/-r),
# the syscall number (-n) and the instruction pointer (-i).
_HEAD = re.compile(
    r"\s*(?:\[pid\s+(\d+)\]\s*|(\d+)\s+)?"
    r"(?:(\d+(?::\d\d)*(?:\.\d+)?)\s+)?"
    r"(?:\[\s*(\d+)\]\s+)?"
    r"(?:\[[0-9a-fA-F?]+\]\s+)?")
# One core reads ~170k calls/s of synthetic and ~120k of real -ttt -yy logs
# (scripts/bench_strace_parse.py); the live monitor's --replay therefore reads
# with the native port of this parser (sentinel_jax.data.native), and this one
# is its reference and its fallback without cargo.
# TODO: live sources (-- CMD, --pid) still read with this parser: strace's
# FIFO is read line by line with timeouts in StraceSession, and moving that
# to the native reader needs it to take the FIFO and a flush per read.
# The general reading of a complete call in one match: prefix, name,
# arguments and result. The greedy argument group backtracks to the last
# ") = " the result fits. (Common lines are read faster by straceline.)
_FAST = re.compile(
    r"(?:\[pid\s+(\d+)\]\s*|(\d+)\s+)?"
    r"(?:(\d+(?::\d\d)*(?:\.\d+)?)\s+)?"
    r"(?:\[\s*(\d+)\]\s+)?"
    r"(?:\[[0-9a-fA-F?]+\]\s+)?"
    r"([A-Za-z_][A-Za-z0-9_]*)\((.*)\)\s*=\s"
    r"(-?\d+|0x[0-9a-fA-F]+|\?)(?:<(.*?)>)?(?:\s+(E[A-Z0-9_]+))?"
    r"(?:\s*\(.*\))?(?:\s+<(\d+(?:\.\d+)?)>)?\s*$", re.S)
_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\(")
_RESUMED = re.compile(r"<\.\.\. ([A-Za-z_][A-Za-z0-9_]*) resumed>\s?")
_RESULT = re.compile(
    r"(-?\d+|0x[0-9a-fA-F]+|\?)(?:<(.*?)>)?(?:\s+(E[A-Z0-9_]+))?"
    r"(?:\s*\((.*)\))?(?:\s+<(\d+(?:\.\d+)?)>)?\s*$")
_EXIT = re.compile(r"\+\+\+ (?:exited with -?\d+|killed by \w+|superseded by)")
_UNFINISHED = UNFINISHED_MARK
_LEAD_MATCH = LEAD.match
_CLONES = frozenset({"clone", "clone3", "fork", "vfork"})
_ANON_PID = 0
# What _complete does besides recording a call, by raw name.
_NO_EFFECT, _APPLY, _SPAWN = 0, 1, 2


class StraceCall(NamedTuple):
    """One completed system call (immutable; a named tuple for speed: the live
    monitor makes hundreds of thousands a second).

    Attributes:
        pid: the calling process (0 for lines without a pid before strace
            showed which process they belong to).
        name: canonical name (:func:`~sentinel_jax.data.syscalls.canonical_name`).
        raw_name: the name as strace printed it.
        args: raw argument text (both halves of an unfinished/resumed pair).
        result: return value; ``None`` for ``= ?`` or a call never resumed.
        errno: error name such as ``ENOENT`` when the call failed.
        timestamp: seconds (since midnight for ``-t``/``-tt``, the epoch for
            ``-ttt``, the previous line for ``-r``), when printed.
        duration: seconds spent in the call (``-T``), when printed.
        tags: ``uint32`` tag mask.
        number: syscall number, when printed (``-n``).
    """

    pid: int
    name: str
    raw_name: str
    args: str
    result: int | None
    errno: str | None
    timestamp: float | None
    duration: float | None
    tags: int
    number: int | None = None


@dataclass
class ParseStats:
    """What a parser read and what it skipped, and why."""

    lines: int = 0
    calls: int = 0
    signals: int = 0
    exits: int = 0
    never_resumed: int = 0
    orphan_resumed: int = 0
    skipped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        skipped = ", ".join(f"{reason} {count}"
                            for reason, count in self.skipped.most_common())
        return (f"{self.lines} lines, {self.calls} calls, {self.signals} signals, "
                f"{self.exits} exits, {self.never_resumed} never resumed, "
                f"skipped {sum(self.skipped.values())}"
                + (f" ({skipped})" if skipped else ""))


class StraceParser:
    """Streaming, stateful strace text parser.

    Two routes give the same calls and tags. The fast route (the default)
    reads common line shapes with string searches
    (:mod:`sentinel_jax.data.straceline`), splits arguments only for calls a
    tag rule or the descriptor table reads, and takes the tagger's shortcuts.
    The reference route (``shortcuts=False``) reads every line with the
    general regexes, splits every call's arguments and evaluates every rule
    that names the call: slower, and there to check the fast route against.

    Args:
        tagger: the compiled rule table; the default is built once.
        keep_events: keep each process's names and tags and hand them out as it
            exits (:meth:`pop_finished`); off for pure call streaming.
        shortcuts: take the fast route; ``False`` for the reference route.
    """

    def __init__(self, tagger: Tagger | None = None, keep_events: bool = False,
                 *, shortcuts: bool = True) -> None:
        self.tagger = tagger if tagger is not None else default_tagger()
        self.keep_events = keep_events
        self.shortcuts = shortcuts
        self.stats = ParseStats()
        self.processes: dict[int, ProcessState] = {}
        # Pid that lines without a pid turned out to belong to.
        self.anon_pid: int | None = None
        self._cloning: dict[int, ProcessState] = {}
        self._finished: list[ProcessState] = []
        self._carry = ""
        # Raw name -> (canonical name, split arguments?, tag arguments?,
        # effect), filled as names are met.
        self._plans: dict[str, tuple[str, bool, bool, int]] = {}
        if not shortcuts:
            self.feed = self._feed_general
            self._complete = self._complete_reference

    # -- processes ----------------------------------------------------------

    def _new_state(self, pid: int) -> ProcessState:
        state = ProcessState(pid)
        if self.keep_events:
            state.names, state.tags = [], array("I")
        self.processes[pid] = state
        return state

    def _state(self, pid: int, rest: str) -> ProcessState:
        """The state of ``pid``, placing a pid seen for the first time."""
        state = self.processes.get(pid)
        if state is not None:
            return state
        anon = self.processes.get(_ANON_PID) if self.anon_pid is None else None
        resumes_anon = (anon is not None and anon.pending is not None
                        and rest.startswith(f"<... {anon.pending[0]} resumed>"))
        if anon is not None and pid != _ANON_PID and (
                resumes_anon or not self._cloning):
            # Lines without a pid belonged to this process all along.
            del self.processes[_ANON_PID]
            self._cloning.pop(_ANON_PID, None)
            anon.pid = anon.tgid = pid
            self.anon_pid = pid
            self.processes[pid] = anon
            if anon.pending is not None and anon.pending[0] in _CLONES:
                self._cloning[pid] = anon
            return anon
        if self._cloning:
            # Most likely the child of the latest clone still in progress.
            parent_pid, parent = self._cloning.popitem()
            state = parent.child(pid, parent.pending[1] if parent.pending else "")
            state.adopted = True
            if self.keep_events:
                state.names, state.tags = [], array("I")
            self.processes[pid] = state
            return state
        return self._new_state(pid)

    def _spawned(self, parent: ProcessState, child_pid: int, flags: str) -> None:
        child = self.processes.get(child_pid)
        if child is None:
            child = parent.child(child_pid, flags)
            if self.keep_events:
                child.names, child.tags = [], array("I")
            self.processes[child_pid] = child
        elif not child.adopted:
            # The child spoke before its parent's clone returned.
            inherited = parent.child(child_pid, flags)
            inherited.fds.update(child.fds)
            child.fds, child.tgid = inherited.fds, inherited.tgid
            child.cwd = child.cwd or inherited.cwd
        child.adopted = True

    def _exit(self, pid: int) -> list[StraceCall]:
        self.stats.exits += 1
        state = self.processes.pop(pid, None)
        if state is None:
            return []
        self._cloning.pop(pid, None)
        calls = self._flush(state)
        if self.keep_events:
            self._finished.append(state)
        return calls

    def _flush(self, state: ProcessState) -> list[StraceCall]:
        if state.pending is None:
            return []
        name, args, timestamp, number = state.pending
        state.pending = None
        self.stats.never_resumed += 1
        return [self._complete(state, name, args, None, None, timestamp, None,
                               number, None)]

    def pop_finished(self) -> list[ProcessState]:
        """Processes that exited since the last call (with ``keep_events``)."""
        finished, self._finished = self._finished, []
        return finished

    # -- lines ----------------------------------------------------------------

    def feed(self, line: str) -> list[StraceCall]:
        """Reads one line; returns the calls it completes (often one, or none)."""
        lead = None if self._carry else _LEAD_MATCH(line)
        if lead is None:
            return self._feed_general(line)
        pid_text, clock, raw_name, resumed_name = lead.groups()
        start = lead.end()
        if raw_name is None:
            return self._feed_resumed(line, start, pid_text, clock, resumed_name)

        # The commonest line of all, "pid name(args) = number", inline.
        head, equals, tail = line.rpartition(" = ")
        value = tail.rstrip()
        if equals and value.isdecimal() and head[-1] == ")" and len(head) > start:
            args = head[start:-1]
            result, errno, duration, annotation = int(value), None, None, None
        else:
            parts = read_call(line, start)
            if parts is None:
                return self._feed_general(line)
            if parts[0] != COMPLETE:
                return self._feed_unfinished(line, pid_text, clock, raw_name,
                                             parts[1])
            _, args, result, errno, duration, annotation = parts
        self.stats.lines += 1
        pid = int(pid_text) if pid_text is not None else (
            self.anon_pid if self.anon_pid is not None else _ANON_PID)
        state = self.processes.get(pid)
        if state is None:
            state = self._state(pid, raw_name)
        if state.pending is not None or _UNFINISHED in args:
            return self._slow(line)
        return [self._complete(state, raw_name, args, result, errno,
                               parse_timestamp(clock) if clock else None,
                               duration, None, annotation)]

    def _pid(self, pid_text: str | None) -> int:
        if pid_text is not None:
            return int(pid_text)
        return self.anon_pid if self.anon_pid is not None else _ANON_PID

    def _feed_unfinished(self, line: str, pid_text: str | None,
                         clock: str | None, raw_name: str, prefix: str
                         ) -> list[StraceCall]:
        """The first half of an interrupted call: kept until it resumes."""
        self.stats.lines += 1
        pid = self._pid(pid_text)
        state = self.processes.get(pid)
        if state is None:
            state = self._state(pid, raw_name)
        calls = self._flush(state)
        state.pending = (raw_name, prefix, parse_timestamp(clock), None)
        if raw_name in _CLONES:
            self._cloning[state.pid] = state
        return calls

    def _feed_resumed(self, line: str, start: int, pid_text: str | None,
                      clock: str | None, raw_name: str) -> list[StraceCall]:
        """The second half of an interrupted call, joined to its first."""
        parts = read_resumed(line, start)
        if parts is None:
            return self._feed_general(line)
        args, result, errno, duration, annotation = parts
        self.stats.lines += 1
        pid = self._pid(pid_text)
        state = self.processes.get(pid)
        if state is None:
            state = self._state(pid, f"<... {raw_name} resumed>")
        self._cloning.pop(state.pid, None)
        pending = state.pending
        if pending is not None and pending[0] == raw_name:
            state.pending = None
            _, prefix, timestamp, number = pending
            if prefix:
                args = f"{prefix} {args.lstrip()}" if args.strip() else prefix
            calls = []
        else:
            calls = self._flush(state)
            self.stats.orphan_resumed += 1
            timestamp, number = parse_timestamp(clock), None
        calls.append(self._complete(state, raw_name, args, result, errno,
                                    timestamp, duration, number, annotation))
        return calls

    def _feed_general(self, line: str) -> list[StraceCall]:
        """Reads one line with the general regexes (the reference route)."""
        stats = self.stats
        stats.lines += 1
        if self._carry:
            line, self._carry = self._carry + line, ""
        fast = _FAST.match(line)
        if fast is not None:
            (pid_text, pid_column, timestamp, number, raw_name, args, value,
             annotation, errno, duration) = fast.groups()
            pid_text = pid_text or pid_column
            if pid_text is not None:
                pid = int(pid_text)
            else:
                pid = self.anon_pid if self.anon_pid is not None else _ANON_PID
            state = self.processes.get(pid)
            if state is None:
                state = self._state(pid, raw_name)
            if state.pending is not None or "<unfinished ...>" in args:
                return self._slow(line)
            result, errno = read_result(value, errno)
            return [self._complete(
                state, raw_name, args, result, errno,
                parse_timestamp(timestamp) if timestamp else None,
                float(duration) if duration else None,
                int(number) if number else None, annotation)]
        return self._slow(line)

    def _slow(self, line: str) -> list[StraceCall]:
        """Every line the one-match fast path does not cover."""
        stats = self.stats
        message = line.find("strace: Process ")
        if message > 0:
            # strace wrote "Process N attached" into the middle of a call line
            # (terminal output); the call goes on in the next line.
            self._carry = line[:message]
            stats.skipped["strace_message"] += 1
            return []
        head = _HEAD.match(line)
        rest = line[head.end():]
        pid_text = head.group(1) or head.group(2)
        if pid_text is not None:
            pid = int(pid_text)
        else:
            pid = self.anon_pid if self.anon_pid is not None else _ANON_PID
        first = rest[:1]
        if first == "<":
            return self._resumed(pid, rest, head)
        if first == "-":
            if rest.startswith("--- "):
                stats.signals += 1
                return []
        elif first == "+" and _EXIT.match(rest):
            return self._exit(pid)
        call = _CALL.match(rest)
        if call is None:
            reason = ("strace_message" if rest.startswith("strace:")
                      else "empty" if not rest.strip() else "unrecognised")
            stats.skipped[reason] += 1
            return []
        raw_name = call.group(1)
        state = self._state(pid, rest)
        body = rest[call.end():]
        if body.rstrip().endswith(_UNFINISHED):
            return self._unfinished(state, raw_name, body, head)
        return self._finish_line(state, raw_name, "", body, head,
                                 parse_timestamp(head.group(3)))

    def _unfinished(self, state: ProcessState, raw_name: str, body: str,
                    head: re.Match) -> list[StraceCall]:
        calls = self._flush(state)
        prefix = body.rstrip()[: -len(_UNFINISHED)].rstrip()
        number = head.group(4)
        state.pending = (raw_name, prefix, parse_timestamp(head.group(3)),
                         int(number) if number else None)
        if raw_name in _CLONES:
            self._cloning[state.pid] = state
        return calls

    def _resumed(self, pid: int, rest: str, head: re.Match) -> list[StraceCall]:
        match = _RESUMED.match(rest)
        if match is None:
            self.stats.skipped["unrecognised"] += 1
            return []
        raw_name = match.group(1)
        state = self._state(pid, rest)
        self._cloning.pop(state.pid, None)
        body = rest[match.end():]
        pending = state.pending
        calls: list[StraceCall] = []
        if pending is not None and pending[0] == raw_name:
            state.pending = None
            _, prefix, timestamp, number = pending
        else:
            calls = self._flush(state)
            self.stats.orphan_resumed += 1
            prefix, timestamp, number = "", parse_timestamp(head.group(3)), None
        stripped = body.lstrip()
        if stripped.startswith(_UNFINISHED):
            # Interrupted again, usually because the process is dying.
            body = stripped[len(_UNFINISHED):]
            if not body.strip():
                state.pending = (raw_name, prefix, timestamp, number)
                return calls
        return calls + self._finish_line(state, raw_name, prefix, body, head,
                                         timestamp, number)

    def _finish_line(self, state: ProcessState, raw_name: str, prefix: str,
                     body: str, head: re.Match, timestamp: float | None,
                     number: int | None = None) -> list[StraceCall]:
        """Completes a call from the text after ``name(`` (or ``resumed>``)."""
        end = len(body)
        for _ in range(8):
            equals = body.rfind(" = ", 0, end)
            if equals < 0:
                break
            close = equals
            while close > 0 and body[close - 1] == " ":
                close -= 1
            result = _RESULT.match(body, equals + 3)
            if result is not None and body[close - 1:close] == ")":
                args = body[:close - 1]
                if prefix:
                    args = f"{prefix} {args.lstrip()}" if args.strip() else prefix
                value_text, annotation, errno, _, duration = result.groups()
                if value_text == "?":
                    value = None
                elif value_text[:2] == "0x":
                    value = int(value_text, 16)
                else:
                    value = int(value_text)
                if number is None and head.group(4):
                    number = int(head.group(4))
                if errno is not None and value is not None and value >= 0:
                    errno = None
                return [self._complete(
                    state, raw_name, args, value, errno, timestamp,
                    float(duration) if duration else None, number, annotation)]
            end = equals
        self.stats.skipped["no_result"] += 1
        return []

    def _plan(self, raw_name: str) -> tuple[str, bool, bool, int]:
        """What completing a call named ``raw_name`` involves."""
        tagger = self.tagger
        if raw_name in EFFECT_CALLS:
            effect = _APPLY
        elif raw_name in _CLONES:
            effect = _SPAWN
        else:
            effect = _NO_EFFECT
        split = raw_name in tagger.split_calls or (
            effect == _APPLY and raw_name != "close")
        plan = (canonical_name(raw_name), split, raw_name in tagger.arg_calls,
                effect)
        self._plans[raw_name] = plan
        return plan

    def _complete(self, state: ProcessState, raw_name: str, args_text: str,
                  result: int | None, errno: str | None,
                  timestamp: float | None, duration: float | None,
                  number: int | None, annotation: str | None) -> StraceCall:
        plan = self._plans.get(raw_name)
        if plan is None:
            plan = self._plan(raw_name)
        name, split, tag_args, effect = plan
        args = split_args(args_text) if split else None
        if tag_args:
            tags = self.tagger.tag(raw_name, args_text, result, errno, state, args)
        elif errno is not None:
            tags = self.tagger.errno_mask(errno)
        else:
            tags = 0
        if effect == _APPLY:
            apply_call(state, raw_name, args, args_text, result, annotation)
        elif effect == _SPAWN and result is not None and result > 0:
            self._spawned(state, result, args_text)
        if annotation is not None and result is not None and result >= 0:
            state.learn(result, annotation)
        if state.names is not None:
            state.names.append(name)
            state.tags.append(tags)
        self.stats.calls += 1
        return StraceCall(state.pid, name, raw_name, args_text, result, errno,
                          timestamp, duration, tags, number)

    def _complete_reference(self, state: ProcessState, raw_name: str,
                            args_text: str, result: int | None,
                            errno: str | None, timestamp: float | None,
                            duration: float | None, number: int | None,
                            annotation: str | None) -> StraceCall:
        """:meth:`_complete` without shortcuts: every call's arguments split,
        every rule naming the call evaluated."""
        args = split_args(args_text)
        tags = self.tagger.tag_exhaustive(raw_name, args, result, errno, state)
        if raw_name in EFFECT_CALLS:
            apply_call(state, raw_name, args, args_text, result, annotation)
        elif raw_name in _CLONES and result is not None and result > 0:
            self._spawned(state, result, args_text)
        if annotation is not None and result is not None and result >= 0:
            state.learn(result, annotation)
        name = canonical_name(raw_name)
        if state.names is not None:
            state.names.append(name)
            state.tags.append(tags)
        self.stats.calls += 1
        return StraceCall(state.pid, name, raw_name, args_text, result, errno,
                          timestamp, duration, tags, number)

    def finish(self) -> list[StraceCall]:
        """Completes the calls still unfinished at the end of the text.

        With ``keep_events``, every process still alive is then finished too.
        """
        calls = []
        for state in list(self.processes.values()):
            calls.extend(self._flush(state))
        if self.keep_events:
            self._finished.extend(self.processes.values())
            self.processes.clear()
        self._cloning.clear()
        return calls


def iter_strace_calls(lines: Iterable[str], parser: StraceParser | None = None
                      ) -> Iterator[StraceCall]:
    """The calls in strace text, in the order they complete.

    Args:
        lines: strace output lines (a file object streams).
        parser: a parser to use (to read its stats afterwards); a new one if
            ``None``.
    """
    parser = parser if parser is not None else StraceParser()
    feed = parser.feed
    for line in lines:
        calls = feed(line)
        if calls:
            yield from calls
    yield from parser.finish()


def open_log(path: str | Path) -> IO[str]:
    """Opens a text log (``.gz`` too), undecodable bytes replaced.

    Raises:
        FileNotFoundError: naming the missing file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"log file not found: {path}")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open("r", encoding="utf-8", errors="replace")


def iter_strace_traces(path: str | Path, *, label: int = 0, family: str = NORMAL,
                       group: str | None = None, min_events: int = 1,
                       parser: StraceParser | None = None) -> Iterator[Trace]:
    """One :class:`Trace` per process of a strace log, yielded as it exits.

    Memory holds only the processes alive at a time. A pid reused by a later
    process starts a new trace (``log:pid``, then ``log:pid#2``...).

    Args:
        path: the log (``strace -f -o``; ``.gz`` is read too).
        label: 0 benign, 1 attack, for every trace of the log.
        family: attack family (or ``normal``).
        group: split group; the log file's name when ``None``.
        min_events: processes with fewer calls are dropped.
        parser: a parser with ``keep_events=True`` to use; a new one if ``None``.
    """
    parser = parser if parser is not None else StraceParser(keep_events=True)
    if not parser.keep_events:
        raise ValueError("iter_strace_traces needs a parser with keep_events=True")
    path = Path(path)
    group = group if group is not None else path.name
    seen: Counter[int] = Counter()

    def traces(states: list[ProcessState]) -> Iterator[Trace]:
        for state in states:
            seen[state.pid] += 1
            if state.names is None or len(state.names) < min_events:
                continue
            suffix = f"#{seen[state.pid]}" if seen[state.pid] > 1 else ""
            yield Trace(names=tuple(state.names), tags=state.tags, label=label,
                        family=family, trace_id=f"{path.name}:{state.pid}{suffix}",
                        group=group, source="strace")

    with open_log(path) as lines:
        feed = parser.feed
        for line in lines:
            feed(line)
            if parser._finished:
                yield from traces(parser.pop_finished())
    parser.finish()
    yield from traces(parser.pop_finished())
    stats = parser.stats
    logger.info("%s: %s", path, stats.summary())
    if stats.skipped:
        logger.warning("%s: skipped %d unreadable lines (%s)", path,
                       sum(stats.skipped.values()), dict(stats.skipped))


def read_strace_traces(path: str | Path, *, label: int = 0, family: str = NORMAL,
                       group: str | None = None, min_events: int = 1
                       ) -> list[Trace]:
    """All traces of a strace log, one per process (see
    :func:`iter_strace_traces`)."""
    return list(iter_strace_traces(path, label=label, family=family, group=group,
                                   min_events=min_events))
