"""Entropy of host metrics and of syscall windows.

Three Renyi entropies of a histogram ``p`` over ``k`` bins, in nats:

* Shannon ``H1 = -sum p log p`` (overall spread);
* collision ``H2 = -log sum p^2`` (how often two draws collide);
* min-entropy ``Hinf = -log max p`` (worst-case predictability: a scripted,
  automated load piles into one bin).

They satisfy ``Hinf <= H2 <= H1 <= log k``; dividing by ``log k`` maps them to
[0, 1]. :class:`SystemEntropyMonitor` keeps a sliding window per subsystem
(CPU, memory, I/O, network), bins each new reading, and reports the three
normalised entropies per subsystem and a weighted composite; a composite at or
above the threshold is an anomaly. :class:`HostMetricSampler` reads this
host's metrics with psutil.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import psutil

logger = logging.getLogger(__name__)

SUBSYSTEMS = ("cpu", "memory", "io", "network")
MEASURES = ("shannon", "min", "collision")


def _check_counts(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim < 1 or counts.shape[-1] < 1:
        raise ValueError(f"counts: expected shape [..., bins] with bins >= 1, "
                         f"got {counts.shape}")
    if not np.all(np.isfinite(counts)):
        raise ValueError("counts: expected finite values, got NaN or inf")
    if np.any(counts < 0):
        raise ValueError("counts: expected non-negative values")
    return counts


def _probabilities(counts: np.ndarray) -> np.ndarray:
    total = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def shannon_entropy(counts: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats of histograms ``[..., bins]`` -> ``[...]``.

    An empty histogram (all zeros) has entropy 0.

    Raises:
        ValueError: on NaN, inf or negative counts.
    """
    p = _probabilities(_check_counts(counts))
    logs = np.log(p, out=np.zeros_like(p), where=p > 0)
    return np.maximum(-(p * logs).sum(axis=-1), 0.0)


def collision_entropy(counts: np.ndarray) -> np.ndarray:
    """Renyi-2 (collision) entropy in nats of histograms ``[..., bins]``."""
    p = _probabilities(_check_counts(counts))
    collision = (p * p).sum(axis=-1)
    logs = np.log(collision, out=np.zeros_like(collision), where=collision > 0)
    return np.maximum(-logs, 0.0)


def min_entropy(counts: np.ndarray) -> np.ndarray:
    """Min-entropy in nats of histograms ``[..., bins]``."""
    p = _probabilities(_check_counts(counts))
    top = p.max(axis=-1)
    logs = np.log(top, out=np.zeros_like(top), where=top > 0)
    return np.maximum(-logs, 0.0)


def normalised_entropies(counts: np.ndarray, support: int | None = None,
                         ) -> dict[str, np.ndarray]:
    """Shannon, min and collision entropy divided by ``log support``.

    Args:
        counts: histograms ``[..., bins]``.
        support: number of outcomes possible (default: ``bins``); with one
            outcome every entropy is 0.

    Returns:
        ``{"shannon", "min", "collision"}`` -> ``[...]`` arrays in [0, 1].
    """
    counts = _check_counts(counts)
    scale = math.log(support if support is not None else counts.shape[-1])
    values = {"shannon": shannon_entropy(counts), "min": min_entropy(counts),
              "collision": collision_entropy(counts)}
    if scale <= 0:
        return {name: np.zeros_like(value) for name, value in values.items()}
    # Clip rounding error only; the bounds hold exactly in theory.
    return {name: np.clip(value / scale, 0.0, 1.0) for name, value in values.items()}


def window_entropies(ids: np.ndarray, lengths: np.ndarray, num_channels: int,
                     ) -> dict[str, np.ndarray]:
    """Entropy of the syscall names in each window: a cheap report signal.

    Normalised by ``log min(length, num_channels - 1)``, the most a window of
    that length can reach, so short and long windows compare.

    Args:
        ids: ``int [batch, time]`` name channels, 0 for padding.
        lengths: ``int [batch]`` real events per window.
        num_channels: name channels (ids are below it).

    Returns:
        ``{"shannon", "min", "collision"}`` -> ``float64 [batch]``.
    """
    ids = np.asarray(ids)
    lengths = np.asarray(lengths)
    if ids.ndim != 2 or lengths.shape != ids.shape[:1]:
        raise ValueError(f"ids [batch, time] and lengths [batch] expected, got "
                         f"{ids.shape} and {lengths.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= num_channels):
        raise ValueError(f"ids: expected values in [0, {num_channels}), got "
                         f"[{ids.min()}, {ids.max()}]")
    batch, steps = ids.shape
    real = np.arange(steps)[None, :] < lengths[:, None]  # [batch, time]
    flat = (np.arange(batch)[:, None] * num_channels + ids)[real & (ids > 0)]
    counts = np.bincount(flat, minlength=batch * num_channels).reshape(
        batch, num_channels)[:, 1:]  # [batch, channels - 1], padding dropped
    raw = {"shannon": shannon_entropy(counts), "min": min_entropy(counts),
           "collision": collision_entropy(counts)}
    support = np.minimum(lengths, num_channels - 1).astype(np.float64)
    scale = np.log(np.maximum(support, 1.0))
    return {name: np.divide(value, scale, out=np.zeros_like(value), where=scale > 0)
            .clip(0.0, 1.0) for name, value in raw.items()}


@dataclasses.dataclass(frozen=True)
class MetricBins:
    """Equal-width bins over ``[low, high]``, on a log1p scale if ``log``.

    Readings outside the range fall into the first or last bin.
    """

    low: float = 0.0
    high: float = 1.0
    log: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)
                and self.low < self.high) or (self.log and self.low < 0):
            raise ValueError(f"MetricBins: expected finite low < high (low >= 0 "
                             f"for log), got {self.low}, {self.high}")

    def index(self, value: float, bins: int) -> int:
        low, high = self.low, self.high
        if self.log:
            value, low, high = math.log1p(max(value, 0.0)), math.log1p(low), \
                math.log1p(high)
        position = (value - low) / (high - low) * bins
        return min(max(int(position), 0), bins - 1)


# Rates in bytes/s from HostMetricSampler span many decades: log bins up to
# 10 GB/s. Usage shares are in [0, 1].
HOST_METRIC_BINS = {
    "cpu": MetricBins(), "memory": MetricBins(),
    "io": MetricBins(0.0, 1e10, log=True), "network": MetricBins(0.0, 1e10, log=True),
}


@dataclasses.dataclass(frozen=True)
class EntropyMetrics:
    """Normalised entropies per subsystem over the window, and the composite.

    ``subsystems[name][measure]`` is in [0, 1] for measures ``shannon``,
    ``min`` and ``collision``; ``samples`` is how many readings the window
    holds.
    """

    subsystems: dict[str, dict[str, float]]
    composite: float
    samples: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class SystemEntropyMonitor:
    """Sliding-window entropy of host metrics, per subsystem and combined.

    Each subsystem keeps its last ``window_size`` readings as bin counts, so an
    update costs O(bins). The composite is the weighted mean over subsystems of
    the weighted mean over measures.
    """

    def __init__(self, window_size: int = 1000, entropy_threshold: float = 0.85, *,
                 bins: int = 16, metric_bins: Mapping[str, MetricBins] | None = None,
                 subsystem_weights: Mapping[str, float] | None = None,
                 measure_weights: Mapping[str, float] | None = None,
                 min_samples: int | None = None):
        """Creates a monitor.

        Args:
            window_size: readings kept per subsystem.
            entropy_threshold: composite at or above which a reading is flagged.
            bins: histogram bins per subsystem.
            metric_bins: binning per subsystem (default: [0, 1] linear).
            subsystem_weights: weight per subsystem (default: equal).
            measure_weights: weight per measure (default: equal).
            min_samples: readings needed before anything is flagged (default:
                ``min(window_size, 2 * bins)``).

        Raises:
            ValueError: on a bad size, threshold, weight or subsystem name.
        """
        if window_size < 2 or bins < 2:
            raise ValueError(f"window_size and bins must be >= 2, got "
                             f"{window_size} and {bins}")
        if not 0.0 <= entropy_threshold <= 1.0:
            raise ValueError(f"entropy_threshold: expected a value in [0, 1], "
                             f"got {entropy_threshold}")
        self.window_size, self.bins = window_size, bins
        self.entropy_threshold = entropy_threshold
        self.metric_bins = {name: MetricBins() for name in SUBSYSTEMS}
        self.metric_bins.update(
            self._known(metric_bins or {}, SUBSYSTEMS, "metric_bins"))
        self.subsystem_weights = self._weights(subsystem_weights, SUBSYSTEMS)
        self.measure_weights = self._weights(measure_weights, MEASURES)
        self.min_samples = min(window_size, 2 * bins) if min_samples is None \
            else min_samples
        self._history = {name: deque() for name in SUBSYSTEMS}
        self._counts = {name: np.zeros(bins, np.int64) for name in SUBSYSTEMS}

    @staticmethod
    def _known(mapping: Mapping[str, Any], names: tuple[str, ...], what: str) -> dict:
        unknown = set(mapping) - set(names)
        if unknown:
            raise ValueError(f"{what}: unknown name {sorted(unknown)[0]!r}; "
                             f"expected some of {', '.join(names)}")
        return dict(mapping)

    def _weights(self, weights: Mapping[str, float] | None,
                 names: tuple[str, ...]) -> dict[str, float]:
        chosen = {name: 1.0 for name in names}
        chosen.update(self._known(weights or {}, names, "weights"))
        if any(not math.isfinite(w) or w < 0 for w in chosen.values()) \
                or sum(chosen.values()) <= 0:
            raise ValueError(f"weights: expected non-negative numbers with a "
                             f"positive sum, got {chosen}")
        total = sum(chosen.values())
        return {name: weight / total for name, weight in chosen.items()}

    def update_metrics(self, cpu_usage: float, memory_usage: float,
                       io_rate: float, network_rate: float) -> EntropyMetrics:
        """Adds one reading per subsystem and returns the window's entropies.

        Raises:
            ValueError: if a reading is NaN or infinite (nothing is added).
        """
        readings = {"cpu": cpu_usage, "memory": memory_usage, "io": io_rate,
                    "network": network_rate}
        for name, value in readings.items():
            if not isinstance(value, int | float | np.number) \
                    or not math.isfinite(value):
                raise ValueError(f"{name} reading: expected a finite number, "
                                 f"got {value!r}")
        subsystems = {}
        for name, value in readings.items():
            history, counts = self._history[name], self._counts[name]
            slot = self.metric_bins[name].index(float(value), self.bins)
            history.append(slot)
            counts[slot] += 1
            if len(history) > self.window_size:
                counts[history.popleft()] -= 1
            values = normalised_entropies(counts)
            subsystems[name] = {measure: float(values[measure]) for measure in MEASURES}
        composite = sum(
            self.subsystem_weights[name] * self.measure_weights[measure] * value
            for name, measures in subsystems.items()
            for measure, value in measures.items())
        samples = len(self._history["cpu"])
        return EntropyMetrics(subsystems, float(composite), samples)

    def detect_entropy_anomaly(self, metrics: EntropyMetrics) -> bool:
        """Whether ``metrics`` is anomalous: a full enough window whose
        composite entropy is at or above the threshold."""
        return (metrics.samples >= self.min_samples
                and metrics.composite >= self.entropy_threshold)


@dataclasses.dataclass(frozen=True)
class HostCounters:
    """Raw cumulative counters of this host at one moment."""

    time_s: float
    cpu_busy_s: float
    cpu_total_s: float
    memory_usage: float
    disk_bytes: dict[str, int]
    network_bytes: dict[str, int]


@dataclasses.dataclass(frozen=True)
class HostSample:
    """One real reading: usage shares in [0, 1] and rates in bytes/s."""

    time_s: float
    cpu_usage: float
    memory_usage: float
    io_rate: float
    network_rate: float
    counter_resets: int


def read_host_counters() -> HostCounters:
    """This host's counters now, from psutil."""
    times = psutil.cpu_times()
    total = sum(times)
    idle = times.idle + getattr(times, "iowait", 0.0)
    disks = psutil.disk_io_counters(perdisk=True) or {}
    nics = psutil.net_io_counters(pernic=True) or {}
    return HostCounters(
        time_s=time.monotonic(), cpu_busy_s=total - idle, cpu_total_s=total,
        memory_usage=psutil.virtual_memory().percent / 100.0,
        disk_bytes={name: c.read_bytes + c.write_bytes for name, c in disks.items()},
        network_bytes={name: c.bytes_sent + c.bytes_recv for name, c in nics.items()})


def _rate(previous: dict[str, int], current: dict[str, int]) -> tuple[int, int]:
    """Bytes moved since ``previous`` and how many counters went backwards.

    A counter that went backwards was reset (device re-added, driver
    reloaded): it contributes nothing this time and is measured from its new
    value next time. Devices seen for the first time contribute nothing.
    """
    moved, resets = 0, 0
    for name, value in current.items():
        before = previous.get(name)
        if before is None:
            continue
        if value < before:
            resets += 1
        else:
            moved += value - before
    return moved, resets


class HostMetricSampler:
    """Turns cumulative counters into readings for the entropy monitor.

    The first call of :meth:`sample` only primes the counters and returns
    ``None``: a delta needs two readings.
    """

    def __init__(self, read: Callable[[], HostCounters] = read_host_counters):
        self._read = read
        self._previous: HostCounters | None = None

    def sample(self) -> HostSample | None:
        """The reading since the last call, or ``None`` on the first call."""
        current = self._read()
        previous, self._previous = self._previous, current
        if previous is None:
            return None
        elapsed = current.time_s - previous.time_s
        if elapsed <= 0:
            logger.warning("clock did not advance between samples; skipping one")
            return None
        busy = current.cpu_busy_s - previous.cpu_busy_s
        total = current.cpu_total_s - previous.cpu_total_s
        cpu_reset = busy < 0 or total < 0
        cpu = 0.0 if cpu_reset or total == 0 else min(max(busy / total, 0.0), 1.0)
        disk, disk_resets = _rate(previous.disk_bytes, current.disk_bytes)
        network, net_resets = _rate(previous.network_bytes, current.network_bytes)
        resets = disk_resets + net_resets + int(cpu_reset)
        if resets:
            logger.info("%d counter(s) went backwards (reset); counted as 0", resets)
        return HostSample(
            time_s=current.time_s, cpu_usage=cpu,
            memory_usage=min(max(current.memory_usage, 0.0), 1.0),
            io_rate=disk / elapsed, network_rate=network / elapsed,
            counter_resets=resets)
