"""What the inference engine returns: detections and latency statistics."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sentinel_jax.data.tags import tag_names


@dataclass(frozen=True)
class TopEvent:
    """One event that drove a window's score.

    Attributes:
        position: index of the event in the whole sequence.
        name: canonical syscall name.
        tags: names of the event's tags.
        contribution: window score minus the score of the window without
            this event (positive: the event pushed towards "attack").
    """

    position: int
    name: str
    tags: tuple[str, ...]
    contribution: float

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "name": self.name,
                "tags": list(self.tags),
                "contribution": round(float(self.contribution), 6)}


def top_events(names: tuple[str, ...] | list[str], tags: np.ndarray,
               offset: int, attribution: np.ndarray,
               count: int) -> tuple[TopEvent, ...]:
    """The ``count`` events of a window with the largest attributions.

    Args:
        names: canonical names of the window's real events.
        tags: ``uint32 [length]`` their tag masks.
        offset: position of the window's first event in the sequence.
        attribution: ``float32 [length]``, from occlusion.
        count: how many to keep.
    """
    order = np.argsort(-attribution, kind="stable")[:count]
    return tuple(
        TopEvent(position=offset + int(i), name=names[i],
                 tags=tuple(tag_names(int(tags[i]))),
                 contribution=float(attribution[i]))
        for i in order)


def sigmoid(value: float) -> float:
    """The logistic function, safe for large magnitudes."""
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    exp = math.exp(value)
    return exp / (1.0 + exp)


@dataclass(frozen=True)
class DetectionResult:
    """The verdict on one sequence of system calls.

    Attributes:
        sequence_id: the caller's name for the sequence.
        is_anomalous: ``anomaly_score >= threshold``.
        confidence: ``sigmoid(|anomaly_score - threshold|)``, in ``[0.5, 1]``:
            how far, in log-odds, the score lies from the decision boundary.
        anomaly_score: the sequence's score, the maximum over its windows
            (attack log-odds on the network's scale).
        threshold: the decision threshold of the run.
        window_scores: ``float32 [windows]``.
        window_starts: ``int64 [windows]``, offset of each window.
        top_window: index of the window with the highest score.
        top_events: the events of that window that raised its score most.
        num_events: events in the sequence.
        unknown_events: events whose name is not in the vocabulary (they
            share the ``OTHER`` channel).
        scorer: ``network`` or ``equation``.
        latency_ms: wall time of the detection.
    """

    sequence_id: str | None
    is_anomalous: bool
    confidence: float
    anomaly_score: float
    threshold: float
    window_scores: np.ndarray
    window_starts: np.ndarray
    top_window: int
    top_events: tuple[TopEvent, ...]
    num_events: int
    unknown_events: int
    scorer: str
    latency_ms: float = 0.0

    @property
    def attack_probability(self) -> float:
        """``sigmoid(anomaly_score)``: the model's attack probability."""
        return sigmoid(self.anomaly_score)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able summary (window scores as a list)."""
        return {
            "sequence_id": self.sequence_id,
            "is_anomalous": self.is_anomalous,
            "confidence": round(self.confidence, 6),
            "anomaly_score": round(self.anomaly_score, 6),
            "threshold": round(self.threshold, 6),
            "window_scores": [round(float(s), 6) for s in self.window_scores],
            "window_starts": [int(s) for s in self.window_starts],
            "top_window": self.top_window,
            "top_events": [event.to_json() for event in self.top_events],
            "num_events": self.num_events,
            "unknown_events": self.unknown_events,
            "scorer": self.scorer,
            "latency_ms": round(self.latency_ms, 3),
        }


@dataclass
class LatencyTracker:
    """Latencies of recent calls and totals since the start.

    Attributes:
        history: how many recent latencies the percentiles are taken over.
    """

    history: int = 10_000
    calls: int = 0
    items: int = 0
    windows: int = 0
    busy_seconds: float = 0.0
    _recent: deque = field(default_factory=deque, repr=False)

    def record(self, seconds: float, items: int, windows: int) -> None:
        """Adds one call that handled ``items`` sequences of ``windows``."""
        self.calls += 1
        self.items += items
        self.windows += windows
        self.busy_seconds += seconds
        self._recent.append(seconds * 1e3)
        while len(self._recent) > self.history:
            self._recent.popleft()

    def stats(self) -> dict[str, float]:
        """avg, p50, p99 and max latency in ms; throughput per second.

        ``throughput`` is sequences per busy second; ``windows_per_s`` windows
        per busy second.
        """
        recent = np.asarray(self._recent, np.float64)
        busy = max(self.busy_seconds, 1e-12)
        return {
            "calls": self.calls,
            "sequences": self.items,
            "windows": self.windows,
            "avg_latency_ms": float(recent.mean()) if recent.size else 0.0,
            "p50_latency_ms": float(np.percentile(recent, 50)) if recent.size
            else 0.0,
            "p99_latency_ms": float(np.percentile(recent, 99)) if recent.size
            else 0.0,
            "max_latency_ms": float(recent.max()) if recent.size else 0.0,
            "throughput": self.items / busy if self.calls else 0.0,
            "windows_per_s": self.windows / busy if self.calls else 0.0,
        }
