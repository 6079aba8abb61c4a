"""Live detection on strace output: per-process windows, batched scoring, alerts.

A :class:`LiveMonitor` reads strace lines (live, or a saved log at full
speed), keeps a sliding window of recent events per process, and scores a
window every ``stride`` calls of that process, in batches across processes.
Windows are cut exactly as :func:`~sentinel_jax.data.traces.window_starts`
cuts a finished trace: windows start at ``0, stride, 2 * stride, ...``; when
a process ends off the stride, one more window ends at its last call; a
process with fewer than ``time`` calls gives one padded window. So the scores
of a process equal those of ``InferenceEngine.detect`` on its calls.

Memory is bounded by the live processes: each holds at most ``2 * time``
recent events, and is dropped when strace reports its exit (or, if exits are
never reported, when ``max_processes`` is reached, oldest first). Pending
windows are scored once ``batch_size`` have gathered or the oldest has waited
``max_delay`` seconds (see :meth:`LiveMonitor.tick`). A full batch is
dispatched without waiting: the device scores it while the host parses the
next lines, and its alerts are raised when the next batch goes out.

A window whose score reaches the run's threshold raises an :class:`Alert`,
with the events that drove it (occlusion, as the inference engine does).

Lines are read by :attr:`LiveMonitor.parser` (Python); a saved log can
instead be read by the native reader, whose records
:class:`~sentinel_jax.monitor.record_feed.RecordFeed` windows and queues on
this monitor (:meth:`LiveMonitor.queue_window`) with the same results.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sentinel_jax.data.encode import histogram
from sentinel_jax.data.strace import StraceCall, StraceParser
from sentinel_jax.data.syscalls import OTHER_ID, PAD_ID
from sentinel_jax.inference import InferenceEngine
from sentinel_jax.inference_result import LatencyTracker, top_events
from sentinel_jax.monitor.live_records import Alert, MonitorSummary
from sentinel_jax.scoring import occlusion_attribution

logger = logging.getLogger(__name__)

_EXEC_PATH = re.compile(r'\s*"((?:[^"\\]|\\.)*)"')
_CLONES = frozenset({"clone", "clone3", "fork", "vfork"})
_EXECS = frozenset({"execve", "execveat"})


@dataclass(eq=False, slots=True)
class _Process:
    """Recent events of one process: at most ``2 * time`` of them."""

    pid: int
    comm: str
    names: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    tags: list[int] = field(default_factory=list)
    calls: int = 0
    windows: int = 0
    last_time: float | None = None


class LiveMonitor:
    """Scores strace streams window by window, process by process.

    Args:
        engine: a loaded :class:`~sentinel_jax.inference.InferenceEngine`
            (its scorer, vocabulary, window ``time``, ``stride``, threshold).
        on_alert: called with each :class:`Alert`, in order.
        on_window: called as ``(pid, window, score)`` for every scored window
            (tests, per-window logs); ``None`` to skip.
        on_process_end: called as ``(pid, comm, calls, windows)`` when a
            process is finished.
        batch_size: windows gathered before they are scored together.
        max_delay: seconds a window may wait for its batch (live mode;
            enforced by :meth:`tick`).
        explain: attach the driving events to alerts (occlusion: about
            ``time`` extra windows scored per explained alert).
        max_explained: alerts explained per batch, highest scores first; the
            others of that batch carry no top events. Bounds the cost of a
            burst of alerts to ``max_explained * time`` extra windows.
        max_processes: processes tracked at once; beyond it the
            longest tracked is finished early (bounds memory when exits are
            missing from the stream).
        read_comm: read a new process's name from ``/proc`` (live mode).
        parser: the strace parser (a new one by default).
    """

    def __init__(self, engine: InferenceEngine, *,
                 on_alert: Callable[[Alert], None] | None = None,
                 on_window: Callable[[int, int, float], None] | None = None,
                 on_process_end: Callable[[int, str, int, int], None] | None = None,
                 batch_size: int = 512, max_delay: float = 0.25,
                 explain: bool = True, max_explained: int = 16,
                 max_processes: int = 65_536,
                 read_comm: bool = False,
                 parser: StraceParser | None = None) -> None:
        if batch_size < 1 or max_processes < 1:
            raise ValueError("batch_size and max_processes must be >= 1")
        self.engine = engine
        self.on_alert = on_alert
        self.on_window = on_window
        self.on_process_end = on_process_end
        self.batch_size = batch_size
        self.max_delay = max_delay
        self.explain = explain
        self.max_explained = max_explained
        self.max_processes = max_processes
        self.read_comm = read_comm
        self.parser = parser if parser is not None else StraceParser()
        self.time_steps = engine.time_steps
        self.stride = engine.stride
        self.threshold = engine.threshold
        self._index = engine.vocabulary.index
        self._processes: dict[int, _Process] = {}
        self._child_comm: dict[int, str] = {}
        self._exits_seen = 0
        # Pending windows: names, ids, tags, (pid, window, calls, comm, time).
        self._pending: list[tuple[list[str], list[int], list[int], tuple]] = []
        self._oldest_pending: float | None = None
        self._in_flight: tuple | None = None
        self._latency = LatencyTracker()
        self._delays = LatencyTracker()
        self.summary = MonitorSummary(scorer=engine.scorer.name,
                                      threshold=engine.threshold)
        self._began = time.perf_counter()

    # -- input --------------------------------------------------------------

    def feed_line(self, line: str) -> None:
        """Reads one strace line (complete calls are windowed as they come)."""
        calls = self.parser.feed(line)
        if calls:
            self.feed_calls(calls)
        if self.parser.stats.exits != self._exits_seen:
            self._exits_seen = self.parser.stats.exits
            self._reap()

    def feed_lines(self, lines: Iterable[str]) -> None:
        """Reads many lines (a saved log)."""
        for line in lines:
            self.feed_line(line)

    def feed_calls(self, calls: Iterable[StraceCall]) -> None:
        """Windows parsed calls; scores a batch when one is full."""
        processes, index = self._processes, self._index
        time_steps, stride = self.time_steps, self.stride
        for call in calls:
            process = processes.get(call.pid)
            if process is None:
                if call.pid == self.parser.anon_pid and 0 in processes:
                    self._rename_anon()
                    processes = self._processes
                    process = processes[call.pid]
                else:
                    process = self._start_process(call.pid)
            name = call.name
            process.names.append(name)
            process.ids.append(index.get(name, OTHER_ID))
            process.tags.append(call.tags)
            process.last_time = call.timestamp
            process.calls += 1
            count = process.calls
            if count >= time_steps and (count - time_steps) % stride == 0:
                self._emit(process)
            raw = call.raw_name
            if raw in _EXECS or raw in _CLONES:
                self._note_process_call(process, call)

    # -- processes ------------------------------------------------------------

    def _start_process(self, pid: int) -> _Process:
        if len(self._processes) >= self.max_processes:
            # The longest tracked goes first (dicts keep insertion order).
            oldest = next(iter(self._processes))
            self.summary.evicted_processes += 1
            self.end_process(oldest)
        comm = self._child_comm.pop(pid, None) or self.process_comm(pid) or "?"
        process = _Process(pid, comm)
        self._processes[pid] = process
        self.summary.processes += 1
        self.summary.max_live_processes = max(self.summary.max_live_processes,
                                              len(self._processes))
        return process

    def process_comm(self, pid: int) -> str | None:
        """The command name of live process ``pid`` from ``/proc`` (live mode
        only; ``None`` when replaying or when it is gone)."""
        if not self.read_comm:
            return None
        try:
            return Path(f"/proc/{pid}/comm").read_text().strip() or None
        except OSError:
            return None

    def _note_process_call(self, process: _Process, call: StraceCall) -> None:
        """Follows command names across ``execve`` and ``clone``."""
        if call.raw_name in _EXECS:
            if call.result == 0:
                match = _EXEC_PATH.match(call.args)
                if match:
                    process.comm = match.group(1).rsplit("/", 1)[-1][:64] or "?"
        elif call.result is not None and call.result > 0:
            child = self._processes.get(call.result)
            if child is not None and child.comm == "?":
                child.comm = process.comm
            elif child is None:
                if len(self._child_comm) > self.max_processes:
                    self._child_comm.clear()
                self._child_comm[call.result] = process.comm

    def _rename_anon(self) -> None:
        """Lines without a pid turned out to belong to the parser's
        ``anon_pid``: their process goes on under it, in its place."""
        anon = self.parser.anon_pid
        self._processes = {anon if pid == 0 else pid: process
                           for pid, process in self._processes.items()}
        self._processes[anon].pid = anon

    def _reap(self) -> None:
        """Finishes the processes the parser has seen exit."""
        alive = self.parser.processes
        anon = self.parser.anon_pid
        if anon is not None and 0 in self._processes and anon not in self._processes:
            self._rename_anon()
        for pid in [pid for pid in self._processes if pid not in alive]:
            self.end_process(pid)

    def end_process(self, pid: int) -> None:
        """Emits the tail window of ``pid`` (if any) and forgets it."""
        process = self._processes.pop(pid, None)
        if process is None:
            return
        count, time_steps = process.calls, self.time_steps
        if count < time_steps or (count - time_steps) % self.stride:
            self._emit(process)
        self.summary.calls += count
        if self.on_process_end is not None:
            self.on_process_end(pid, process.comm, count, process.windows)

    @property
    def live_processes(self) -> int:
        """Processes being tracked now."""
        return len(self._processes)

    @property
    def buffered_events(self) -> int:
        """Events held for windows, over all live processes."""
        return sum(len(process.ids) for process in self._processes.values())

    # -- windows and scoring --------------------------------------------------

    def _emit(self, process: _Process) -> None:
        """Queues the window ending at the process's latest call."""
        time_steps = self.time_steps
        names = process.names[-time_steps:]
        ids = process.ids[-time_steps:]
        tags = process.tags[-time_steps:]
        if len(ids) < time_steps:
            padding = time_steps - len(ids)
            ids = ids + [PAD_ID] * padding
            tags = tags + [0] * padding
        if len(process.ids) >= 2 * time_steps:
            del process.names[:-time_steps]
            del process.ids[:-time_steps]
            del process.tags[:-time_steps]
        self.queue_window(names, ids, tags, process.pid, process.windows,
                          process.calls, process.comm, process.last_time)
        process.windows += 1

    def queue_window(self, names: Sequence[str], ids: Sequence[int],
                     tags: Sequence[int], pid: int, window: int, calls: int,
                     comm: str, call_time: float | None) -> None:
        """Queues one window for scoring; scores a batch when one is full.

        Args:
            names: canonical names of the window's real events (``length``).
            ids: ``[time]`` their name channels, padded with ``PAD_ID``.
            tags: ``[time]`` their tag masks, padded with 0.
            pid: the process; ``window`` its index among the process's
                windows; ``calls`` the process's calls up to its end.
            comm: the process's command name.
            call_time: strace's timestamp of its last call, if printed.
        """
        now = time.perf_counter()
        self._pending.append((names, ids, tags, (
            pid, window, calls, comm, call_time, now)))
        if self._oldest_pending is None:
            self._oldest_pending = now
        if len(self._pending) >= self.batch_size:
            self.flush(wait=False)

    def tick(self) -> None:
        """Completes a batch in flight; scores pending windows that have
        waited ``max_delay`` seconds (call it often in live mode)."""
        self._complete()
        if (self._oldest_pending is not None
                and time.perf_counter() - self._oldest_pending >= self.max_delay):
            self.flush()

    def flush(self, wait: bool = True) -> None:
        """Scores every pending window; raises alerts.

        Args:
            wait: wait for the scores. Otherwise the batch stays in flight
                (the device scores it while the caller parses on) and is
                completed by the next ``flush``, ``tick`` or ``finish``.
        """
        self._complete()
        pending, self._pending = self._pending, []
        self._oldest_pending = None
        if not pending:
            return
        began = time.perf_counter()
        engine = self.engine
        ids = np.array([window[1] for window in pending], np.int32)
        tags = np.array([window[2] for window in pending], np.uint32)
        lengths = np.array([len(window[0]) for window in pending], np.int32)
        hist = histogram(ids, tags, lengths, len(engine.vocabulary),
                         engine.channels)
        collect = engine.scorer.dispatch(ids, tags, hist)
        self._in_flight = (pending, ids, tags, lengths, collect,
                           time.perf_counter() - began)
        if wait:
            self._complete()

    def _complete(self) -> None:
        """Waits for the batch in flight, if any, and raises its alerts."""
        if self._in_flight is None:
            return
        pending, ids, tags, lengths, collect, host_seconds = self._in_flight
        self._in_flight = None
        began = time.perf_counter()
        engine = self.engine
        scores = collect()
        alerting = np.flatnonzero(scores >= self.threshold)
        attributions: list[np.ndarray | None] = [None] * len(alerting)
        if self.explain and len(alerting):
            explained = np.argsort(-scores[alerting], kind="stable")[
                : self.max_explained]
            rows = alerting[explained]
            found = occlusion_attribution(
                engine.scorer, ids[rows], tags[rows], lengths[rows], scores[rows],
                len(engine.vocabulary), engine.channels)
            for position, attribution in zip(explained, found, strict=True):
                attributions[position] = attribution
        done = time.perf_counter()
        # Host time spent on the batch: preparing it, waiting, explaining.
        self._latency.record(host_seconds + done - began, len(pending),
                             len(pending))
        self.summary.windows += len(pending)
        for window in pending:
            self._delays.record(done - window[3][5], 1, 1)
        if self.on_window is not None:
            for window, score in zip(pending, scores, strict=True):
                self.on_window(window[3][0], window[3][1], float(score))
        for row, attribution in zip(alerting, attributions, strict=True):
            names, _, window_tags, (pid, window, calls, comm, call_time,
                                    _) = pending[row]
            length = len(names)
            drivers = () if attribution is None else top_events(
                names, np.asarray(window_tags[:length], np.uint32), calls - length,
                attribution, engine.top_k)
            alert = Alert(time=time.time(), call_time=call_time, pid=pid,
                          comm=comm, window=window, calls=calls,
                          score=float(scores[row]), threshold=self.threshold,
                          top_events=drivers)
            self.summary.alerts += 1
            if self.on_alert is not None:
                self.on_alert(alert)

    def finish(self, stopped_by: str | None = None,
               lines: tuple[int, int] | None = None) -> MonitorSummary:
        """Ends the stream: completes open calls, emits the tail windows of
        every process still alive, scores everything and fills the summary.

        Args:
            stopped_by: why the run ended (default: the end of input).
            lines: ``(read, skipped)`` lines when another reader than
                :attr:`parser` read them (the native reader).
        """
        calls = self.parser.finish()
        if calls:
            self.feed_calls(calls)
        for pid in list(self._processes):
            self.end_process(pid)
        self.flush()
        summary = self.summary
        stats = self.parser.stats
        summary.lines, summary.skipped_lines = lines if lines is not None else (
            stats.lines, sum(stats.skipped.values()))
        summary.seconds = time.perf_counter() - self._began
        if stopped_by is not None:
            summary.stopped_by = stopped_by
        latency = self._latency.stats()
        summary.scoring = {
            "batches": latency["calls"],
            "avg_ms": round(latency["avg_latency_ms"], 4),
            "p50_ms": round(latency["p50_latency_ms"], 4),
            "p99_ms": round(latency["p99_latency_ms"], 4),
            "max_ms": round(latency["max_latency_ms"], 4),
            "windows_per_s": round(latency["windows_per_s"], 1)}
        delays = self._delays.stats()
        summary.window_delay = {
            "p50_ms": round(delays["p50_latency_ms"], 4),
            "p99_ms": round(delays["p99_latency_ms"], 4),
            "max_ms": round(delays["max_latency_ms"], 4)}
        return summary
