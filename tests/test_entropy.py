"""Entropy monitor: Renyi bounds, edge cases, the sliding window, the sampler."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentinel_jax.monitor.entropy import (
    HostCounters,
    HostMetricSampler,
    MetricBins,
    SystemEntropyMonitor,
    collision_entropy,
    min_entropy,
    normalised_entropies,
    shannon_entropy,
    window_entropies,
)

histograms = st.lists(st.integers(0, 1000), min_size=1, max_size=40).filter(
    lambda counts: sum(counts) > 0)


@given(histograms)
def test_renyi_order_min_collision_shannon_log_k(counts):
    counts = np.array(counts)
    low, mid, high = min_entropy(counts), collision_entropy(counts), \
        shannon_entropy(counts)
    tolerance = 1e-9
    assert low <= mid + tolerance
    assert mid <= high + tolerance
    assert high <= math.log(len(counts)) + tolerance
    for value in normalised_entropies(counts).values():
        assert 0.0 <= value <= 1.0


@given(st.integers(1, 64), st.integers(1, 10_000))
def test_uniform_histogram_reaches_log_k(bins, count):
    counts = np.full(bins, count)
    for value in (shannon_entropy(counts), collision_entropy(counts),
                  min_entropy(counts)):
        assert value == pytest.approx(math.log(bins))


def test_constant_input_gives_zero():
    monitor = SystemEntropyMonitor(window_size=50, entropy_threshold=0.5)
    for _ in range(100):
        metrics = monitor.update_metrics(cpu_usage=0.4, memory_usage=0.4,
                                         io_rate=0.4, network_rate=0.4)
    assert metrics.composite == 0.0
    assert all(v == 0.0 for m in metrics.subsystems.values() for v in m.values())
    assert not monitor.detect_entropy_anomaly(metrics)


def test_batched_histograms_match_rows():
    counts = np.array([[1, 2, 3, 0], [4, 0, 0, 0], [0, 0, 0, 0]])
    rows = [shannon_entropy(row) for row in counts]
    np.testing.assert_allclose(shannon_entropy(counts), rows)
    assert shannon_entropy(counts)[1] == 0.0  # a single bin
    assert shannon_entropy(counts)[2] == 0.0  # empty


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), "0.5"])
def test_nan_and_inf_readings_are_rejected(bad):
    monitor = SystemEntropyMonitor(window_size=10)
    with pytest.raises(ValueError, match="io reading: expected a finite number"):
        monitor.update_metrics(cpu_usage=0.1, memory_usage=0.1, io_rate=bad,
                               network_rate=0.1)
    # Nothing half-added: the next good reading is the first.
    metrics = monitor.update_metrics(cpu_usage=0.1, memory_usage=0.1, io_rate=0.1,
                                     network_rate=0.1)
    assert metrics.samples == 1


def test_nan_counts_are_rejected():
    with pytest.raises(ValueError, match="finite"):
        shannon_entropy(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="non-negative"):
        normalised_entropies(np.array([1.0, -1.0]))


def test_random_load_is_flagged_and_window_slides():
    rng = np.random.default_rng(0)
    monitor = SystemEntropyMonitor(window_size=200, entropy_threshold=0.85, bins=8)
    for _ in range(300):
        quiet = monitor.update_metrics(cpu_usage=0.05, memory_usage=0.3,
                                       io_rate=0.0, network_rate=0.0)
    assert not monitor.detect_entropy_anomaly(quiet)
    for _ in range(200):  # the window now holds only uniform noise
        noisy = monitor.update_metrics(*rng.uniform(0, 1, 4))
    assert noisy.samples == 200
    assert noisy.composite > 0.9
    assert noisy.subsystems["cpu"]["min"] <= noisy.subsystems["cpu"]["shannon"]
    assert monitor.detect_entropy_anomaly(noisy)
    json.dumps(noisy.to_json())


def test_weights_and_bins_are_configurable():
    monitor = SystemEntropyMonitor(
        window_size=16, bins=4, subsystem_weights={"cpu": 1.0, "memory": 0.0,
                                                   "io": 0.0, "network": 0.0},
        measure_weights={"shannon": 1.0, "min": 0.0, "collision": 0.0})
    for value in (0.1, 0.3, 0.6, 0.9):  # one reading per bin of cpu
        metrics = monitor.update_metrics(cpu_usage=value, memory_usage=0.5,
                                         io_rate=0.5, network_rate=0.5)
    assert metrics.composite == pytest.approx(1.0)
    assert MetricBins(0, 1e10, log=True).index(1e3, 10) < \
        MetricBins(0, 1e10, log=True).index(1e9, 10)
    with pytest.raises(ValueError, match="unknown name 'disk'"):
        SystemEntropyMonitor(subsystem_weights={"disk": 1.0})


def test_window_entropies_of_syscall_windows():
    ids = np.array([[2, 2, 2, 2, 0, 0], [2, 3, 4, 5, 0, 0], [2, 3, 2, 3, 2, 3]])
    lengths = np.array([4, 4, 6])
    result = window_entropies(ids, lengths, num_channels=8)
    assert result["shannon"][0] == 0.0  # one name repeated
    assert result["shannon"][1] == pytest.approx(1.0)  # 4 names in 4 events
    assert 0.3 < result["shannon"][2] < 0.7
    with pytest.raises(ValueError, match=r"ids: expected values in \[0, 8\)"):
        window_entropies(ids + 10, lengths, num_channels=8)


def _counters(time_s, busy, total, disks, nics):
    return HostCounters(time_s, busy, total, 0.5, disks, nics)


def test_sampler_skips_first_reading_and_handles_resets():
    readings = iter([
        _counters(0.0, 10.0, 100.0, {"sda": 1000}, {"eth0": 500}),
        _counters(1.0, 15.0, 110.0, {"sda": 3000}, {"eth0": 1500, "tun0": 9}),
        _counters(2.0, 15.0, 120.0, {"sda": 100}, {"eth0": 1600, "tun0": 19}),
    ])
    sampler = HostMetricSampler(read=lambda: next(readings))
    assert sampler.sample() is None  # the first sample is not a reading
    second = sampler.sample()
    assert second.cpu_usage == pytest.approx(0.5)
    assert second.io_rate == 2000 and second.network_rate == 1000  # tun0 is new
    third = sampler.sample()
    assert third.counter_resets == 1  # sda went backwards: counted as 0
    assert third.io_rate == 0 and third.network_rate == 110
    assert third.cpu_usage == 0.0


def test_real_sampler_reads_this_host():
    sampler = HostMetricSampler()
    assert sampler.sample() is None
    sum(range(200_000))
    sample = sampler.sample()
    assert sample is not None
    assert 0.0 <= sample.cpu_usage <= 1.0 and 0.0 < sample.memory_usage <= 1.0
    assert sample.io_rate >= 0 and sample.network_rate >= 0


def test_entropy_script_writes_jsonl_and_png(tmp_path):
    from experiments.entropy import main

    out = tmp_path / "run"
    assert main(["--seconds", "0.6", "--interval", "0.15", "--out", str(out),
                 "--quiet", "--set", "monitor.entropy_window=4"]) == 0
    lines = (out / "entropy.jsonl").read_text().splitlines()
    assert 2 <= len(lines) <= 5
    record = json.loads(lines[-1])
    assert set(record["entropy"]) == {"cpu", "memory", "io", "network"}
    assert 0.0 <= record["composite"] <= 1.0
    assert (out / "entropy.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(out.glob(".*"))  # no temporary files left
