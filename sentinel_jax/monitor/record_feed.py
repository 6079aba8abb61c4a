"""Windows from the native reader's records, a block at a time, with numpy.

:class:`RecordFeed` is the native reader's counterpart of
:meth:`LiveMonitor.feed_line <sentinel_jax.monitor.live.LiveMonitor.feed_line>`:
it cuts the same per-process windows (``0, stride, 2 * stride, ...``, a tail
window at the process's end, a padded one for short processes) and queues
them on the same monitor, in the same order, so batches, scores and alerts
are those of the Python path. The work per call is vectorised over a block
of records (tens of thousands): grouping by process, call counts, window
ends, and one gather of every window's ``[time]`` events. Python runs once
per window and per process event (start, ``execve``, clone, exit).

Processes are the reader's process objects (its ``serial``), so a reused
pid starts a new process as in the Python path. Each keeps its last ``time``
events between blocks, so memory is bounded by the live processes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from sentinel_jax.data.native.records import (
    CALL,
    EXEC,
    FINISHED,
    NAME,
    PROGRAM,
    SPAWN,
    STATS,
    record_texts,
)
from sentinel_jax.data.syscalls import OTHER_ID, PAD_ID, canonical_name
from sentinel_jax.monitor.live import LiveMonitor, MonitorSummary

logger = logging.getLogger(__name__)

# Order of events at one record: a process starts before its call's window.
_START, _WINDOW, _OTHER = 0, 1, 2
_EMPTY_INT = np.zeros(0, np.int32)
_EMPTY_TAGS = np.zeros(0, np.uint32)


@dataclass(frozen=True, slots=True)
class _Block:
    """What the calls of one block give: the windows ending at them
    (``[window, time]`` ids, tags and canonical names, and per window its
    serial, pid, calls and last call's time) and the processes the block's
    calls belong to (``states``, with their ``serials``)."""

    ids: np.ndarray
    tags: np.ndarray
    names: np.ndarray
    serials: list[int]
    pids: list[int]
    calls: list[int]
    times: list[float]
    states: list[_Process]
    state_serials: list[int]


@dataclass(eq=False, slots=True)
class _Process:
    """One process: its last ``time`` events (ids, tags, raw name indices)."""

    pid: int
    comm: str = "?"
    calls: int = 0
    windows: int = 0
    last_time: float | None = None
    ids: np.ndarray = field(default_factory=lambda: _EMPTY_INT)
    tags: np.ndarray = field(default_factory=lambda: _EMPTY_TAGS)
    names: np.ndarray = field(default_factory=lambda: _EMPTY_INT)


class RecordFeed:
    """Feeds native reader records (blocks of ``RECORD_DTYPE``) to a monitor.

    Args:
        monitor: the monitor whose windows, batches and summary these are.
    """

    def __init__(self, monitor: LiveMonitor) -> None:
        self.monitor = monitor
        self.time_steps = monitor.time_steps
        self.stride = monitor.stride
        self._index = monitor.engine.vocabulary.index
        # By raw name index: canonical names, name channels.
        self._names = np.zeros(0, object)
        self._channels = np.zeros(0, np.int32)
        self._text = {NAME: b"", PROGRAM: b""}
        self._program = "?"
        self._processes: dict[int, _Process] = {}
        self._by_pid: dict[int, int] = {}
        self._child_comm: dict[int, str] = {}
        # Calls read so far; lines read and skipped, as the reader counts.
        self.calls = 0
        self.lines = 0
        self.skipped_lines = 0

    @property
    def live_processes(self) -> int:
        """Processes being tracked now."""
        return len(self._processes)

    @property
    def buffered_events(self) -> int:
        """Events held for windows, over all live processes."""
        return sum(len(process.ids) for process in self._processes.values())

    # -- names ----------------------------------------------------------------

    def _read_names(self, records: np.ndarray, rows: np.ndarray) -> None:
        """Adds the raw names the ``NAME`` records at ``rows`` spell."""
        found = []
        for text, last in zip(record_texts(records, rows),
                              records["last"][rows], strict=True):
            self._text[NAME] += text
            if last:
                found.append(canonical_name(self._text[NAME].decode(
                    errors="replace")))
                self._text[NAME] = b""
        if found:
            names = np.empty(len(found), object)
            names[:] = found
            self._names = np.concatenate([self._names, names])
            channels = [self._index.get(name, OTHER_ID) for name in found]
            self._channels = np.concatenate(
                [self._channels, np.asarray(channels, np.int32)])

    # -- records --------------------------------------------------------------

    def feed(self, records: np.ndarray) -> None:
        """Windows one block of records, in order.

        Args:
            records: ``RECORD_DTYPE [records]``, as the native reader wrote
                them (:class:`~sentinel_jax.data.native.records.NativeReader`
                hands them out in blocks).
        """
        kinds = records["kind"]
        call_rows = np.flatnonzero(kinds == CALL)
        self.calls += len(call_rows)
        other_rows = np.flatnonzero(kinds != CALL)
        other_kinds = kinds[other_rows]
        name_rows = other_rows[other_kinds == NAME]
        if len(name_rows):
            self._read_names(records, name_rows)
        events: list[tuple[int, int, int]] = []
        block = self._cut(records, call_rows, events)
        for row, kind in zip(other_rows.tolist(), other_kinds.tolist(),
                             strict=True):
            if kind != NAME:
                events.append((row, _OTHER, kind))
        events.sort()
        self._run(records, events, block)
        monitor = self.monitor
        while len(self._processes) > monitor.max_processes:
            # The longest tracked goes first (dicts keep insertion order).
            monitor.summary.evicted_processes += 1
            self._end(next(iter(self._processes)))

    def _cut(self, records: np.ndarray, call_rows: np.ndarray,
             events: list[tuple[int, int, int]]) -> _Block | None:
        """Counts the block's calls per process and gathers every window
        that ends at one; records process starts and window ends in
        ``events`` as ``(row, order, index)``."""
        count = len(call_rows)
        if not count:
            return None
        time_steps, stride = self.time_steps, self.stride
        calls = records[call_rows]
        serials, first, group = np.unique(calls["serial"], return_index=True,
                                          return_inverse=True)
        groups = len(serials)
        sizes = np.bincount(group, minlength=groups)
        group_starts = np.cumsum(sizes) - sizes
        by_group = np.argsort(group, kind="stable")
        ordinal = np.empty(count, np.int64)
        ordinal[by_group] = np.arange(count) - np.repeat(group_starts, sizes)

        # Each group's history (its last events before the block), then its
        # calls of the block, laid end to end: [history + calls] per group.
        processes = self._processes
        new = []
        prior = np.zeros(groups, np.int64)
        history = np.zeros(groups, np.int64)
        states: list[_Process] = []
        pids = calls["pid"]
        for position, serial in enumerate(serials.tolist()):
            process = processes.get(serial)
            if process is None:
                process = _Process(int(pids[first[position]]))
                new.append(position)
            else:
                prior[position] = process.calls
                history[position] = len(process.ids)
            states.append(process)
        spans = history + sizes
        offsets = np.cumsum(spans) - spans
        total = int(spans.sum())
        flat_ids = np.empty(total, np.int32)
        flat_tags = np.empty(total, np.uint32)
        flat_names = np.empty(total, np.int32)
        held = np.flatnonzero(history)
        if len(held):
            lengths = history[held]
            at = (np.repeat(offsets[held] - (np.cumsum(lengths) - lengths), lengths)
                  + np.arange(int(lengths.sum())))
            flat_ids[at] = np.concatenate([states[i].ids for i in held])
            flat_tags[at] = np.concatenate([states[i].tags for i in held])
            flat_names[at] = np.concatenate([states[i].names for i in held])
        where = offsets[group] + history[group] + ordinal
        name_index = calls["name"].astype(np.intp)
        flat_ids[where] = self._channels[name_index]
        flat_tags[where] = calls["tags"]
        flat_names[where] = name_index

        # Windows end where a process's count reaches time, then every stride.
        counts = prior[group] + ordinal + 1
        ends = np.flatnonzero((counts >= time_steps)
                              & ((counts - time_steps) % stride == 0))
        steps = where[ends, None] - (time_steps - 1) + np.arange(time_steps)
        times = calls["time"]
        rows = call_rows[ends].tolist()
        events.extend((row, _WINDOW, index) for index, row in enumerate(rows))

        # Each process keeps its last `time` events; counts move on.
        last = group_starts + sizes - 1
        last_times = times[by_group[last]].tolist()
        last_pids = pids[by_group[last]].tolist()
        ends_at = (offsets + spans).tolist()
        for position, process in enumerate(states):
            stop = ends_at[position]
            start = max(stop - time_steps, int(offsets[position]))
            process.ids = flat_ids[start:stop].copy()
            process.tags = flat_tags[start:stop].copy()
            process.names = flat_names[start:stop].copy()
            process.calls = int(prior[position] + sizes[position])
            process.pid = last_pids[position]
            last_time = last_times[position]
            process.last_time = None if last_time != last_time else last_time
        first_rows = call_rows[first].tolist()
        for position in new:
            events.append((first_rows[position], _START, position))
        return _Block(
            ids=flat_ids[steps], tags=flat_tags[steps],
            names=self._names[flat_names[steps]],
            serials=serials[group[ends]].tolist(), pids=pids[ends].tolist(),
            calls=counts[ends].tolist(), times=times[ends].tolist(),
            states=states, state_serials=serials.tolist())

    def _run(self, records: np.ndarray, events: list[tuple[int, int, int]],
             block: _Block | None) -> None:
        """Process events and windows in record order."""
        monitor = self.monitor
        processes = self._processes
        for row, order, index in events:
            if order == _WINDOW:
                process = processes[block.serials[index]]
                call_time = block.times[index]
                # NaN (no timestamp printed) is None, as the Python reader has it.
                monitor.queue_window(
                    block.names[index], block.ids[index], block.tags[index],
                    block.pids[index], process.windows, block.calls[index],
                    process.comm, None if call_time != call_time else call_time)
                process.windows += 1
            elif order == _START:
                self._start(block.state_serials[index], block.states[index])
            else:
                self._event(records[row], index)

    def _start(self, serial: int, process: _Process) -> None:
        monitor = self.monitor
        pid = process.pid
        process.comm = (self._child_comm.pop(pid, None) or monitor.process_comm(pid)
                        or "?")
        self._processes[serial] = process
        self._by_pid[pid] = serial
        summary: MonitorSummary = monitor.summary
        summary.processes += 1
        summary.max_live_processes = max(summary.max_live_processes,
                                         len(self._processes))

    def _event(self, record: np.void, kind: int) -> None:
        """One record other than a call or a name."""
        if kind == PROGRAM:
            self._text[PROGRAM] += record.tobytes()[8:8 + int(record["length"])]
            if record["last"]:
                text = self._text[PROGRAM].decode(errors="replace")
                self._program = text[:64] or "?"
                self._text[PROGRAM] = b""
        elif kind == EXEC:
            process = self._processes.get(int(record["serial"]))
            if process is not None:
                process.comm = self._program
        elif kind == SPAWN:
            process = self._processes.get(int(record["serial"]))
            if process is None:
                return
            child_pid = int(record["value"])
            child_serial = self._by_pid.get(child_pid)
            child = (None if child_serial is None
                     else self._processes.get(child_serial))
            if child is not None and child.comm == "?":
                child.comm = process.comm
            elif child is None:
                if len(self._child_comm) > self.monitor.max_processes:
                    self._child_comm.clear()
                self._child_comm[child_pid] = process.comm
        elif kind == FINISHED:
            self._end(int(record["serial"]))
        elif kind == STATS:
            self.lines = int(record["value"])
            self.skipped_lines = int(record["serial"])

    def _end(self, serial: int) -> None:
        """Emits the tail window of a process (if any) and forgets it."""
        process = self._processes.pop(serial, None)
        if process is None:
            return
        if self._by_pid.get(process.pid) == serial:
            del self._by_pid[process.pid]
        monitor = self.monitor
        count, time_steps = process.calls, self.time_steps
        if count < time_steps or (count - time_steps) % self.stride:
            length = len(process.ids)
            ids = np.full(time_steps, PAD_ID, np.int32)
            tags = np.zeros(time_steps, np.uint32)
            ids[:length] = process.ids
            tags[:length] = process.tags
            monitor.queue_window(self._names[process.names], ids, tags,
                                 process.pid, process.windows, count,
                                 process.comm, process.last_time)
            process.windows += 1
        monitor.summary.calls += count
        if monitor.on_process_end is not None:
            monitor.on_process_end(process.pid, process.comm, count,
                                   process.windows)

    def finish(self, stopped_by: str | None = None) -> MonitorSummary:
        """Ends the stream: the tail windows of every process still alive,
        then the monitor's :meth:`~LiveMonitor.finish`."""
        for serial in list(self._processes):
            self._end(serial)
        return self.monitor.finish(stopped_by,
                                   lines=(self.lines, self.skipped_lines))
