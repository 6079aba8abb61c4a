"""What the live monitor reports: alerts (JSON lines) and the run summary."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Alert:
    """A window whose score reached the threshold.

    Attributes:
        time: wall-clock time the alert was raised (seconds since the epoch).
        call_time: strace's timestamp of the window's last call, if printed.
        pid: the process.
        comm: its command name (from ``execve``, its parent, or ``/proc``).
        window: index of the window among the process's windows.
        calls: calls of the process up to the window's end.
        score: the window's score.
        threshold: the run's threshold.
        top_events: the events that drove the score (position counts calls of
            the process from 0).
    """

    time: float
    call_time: float | None
    pid: int
    comm: str
    window: int
    calls: int
    score: float
    threshold: float
    top_events: tuple[Any, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"time": round(self.time, 6), "call_time": self.call_time,
                "pid": self.pid, "comm": self.comm, "window": self.window,
                "calls": self.calls, "score": round(float(self.score), 6),
                "threshold": round(float(self.threshold), 6),
                "top_events": [event.to_json() for event in self.top_events]}

    def json_line(self) -> str:
        """One line of JSON, newline included."""
        return json.dumps(self.to_json(), separators=(",", ":")) + "\n"


@dataclass
class MonitorSummary:
    """What a monitoring run saw; ``to_json`` is ``summary.json``."""

    processes: int = 0
    calls: int = 0
    windows: int = 0
    alerts: int = 0
    seconds: float = 0.0
    max_live_processes: int = 0
    evicted_processes: int = 0
    lines: int = 0
    skipped_lines: int = 0
    scoring: dict[str, float] = field(default_factory=dict)
    window_delay: dict[str, float] = field(default_factory=dict)
    source: str = ""
    scorer: str = ""
    threshold: float = 0.0
    stopped_by: str = "end of input"
    strace_status: int | None = None

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "processes": self.processes, "calls": self.calls,
            "windows": self.windows, "alerts": self.alerts,
            "calls_per_s": round(self.calls_per_s, 1),
            "seconds": round(self.seconds, 4),
            "max_live_processes": self.max_live_processes,
            "evicted_processes": self.evicted_processes,
            "lines": self.lines, "skipped_lines": self.skipped_lines,
            "scoring_latency_ms": self.scoring, "window_delay_ms": self.window_delay,
            "source": self.source, "scorer": self.scorer,
            "threshold": self.threshold, "stopped_by": self.stopped_by,
            "strace_status": self.strace_status}

    def text(self) -> str:
        """A short human summary."""
        scoring = self.scoring
        return (
            f"{self.processes} processes, {self.calls} calls, {self.windows} "
            f"windows, {self.alerts} alerts in {self.seconds:.2f}s "
            f"({self.calls_per_s:,.0f} calls/s; stopped by {self.stopped_by})\n"
            f"scoring: {scoring.get('batches', 0)} batches, "
            f"{scoring.get('avg_ms', 0.0):.2f} ms avg, "
            f"{scoring.get('p50_ms', 0.0):.2f} ms p50, "
            f"{scoring.get('p99_ms', 0.0):.2f} ms p99 per batch; window delay "
            f"p99 {self.window_delay.get('p99_ms', 0.0):.1f} ms")
