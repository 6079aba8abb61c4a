"""Sample this host's metrics and watch their entropy.

Reads CPU, memory, disk and network counters with psutil every ``--interval``
seconds for ``--seconds`` seconds, feeds them to SystemEntropyMonitor (window,
threshold and bins from the ``monitor`` config section), prints one line per
reading, and writes DIR/entropy.jsonl (one reading per line) and
DIR/entropy.png (entropies over time, flagged readings marked).

Example::

    python experiments/entropy.py --seconds 30 --interval 0.5 --out runs/entropy \
        --set monitor.entropy_window=40
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sentinel_jax.cli import UsageError, make_parser, resolve_config, run_main
from sentinel_jax.monitor.entropy import (
    HOST_METRIC_BINS,
    SUBSYSTEMS,
    HostMetricSampler,
    SystemEntropyMonitor,
)


def plot_timeline(records: list[dict], threshold: float, path: Path) -> None:
    """Shannon entropy per subsystem and the composite over time, flagged
    readings in red; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = [record["t"] for record in records]
    figure, axis = plt.subplots(figsize=(10, 4), dpi=100)
    for name in SUBSYSTEMS:
        axis.plot(times, [r["entropy"][name]["shannon"] for r in records],
                  linewidth=1, label=f"{name} (Shannon)")
    composite = [record["composite"] for record in records]
    axis.plot(times, composite, color="black", linewidth=2, label="composite")
    flagged = [(t, c) for t, c, r in zip(times, composite, records, strict=True)
               if r["anomaly"]]
    if flagged:
        axis.scatter(*zip(*flagged, strict=True), color="red", zorder=3,
                     label="flagged")
    axis.axhline(threshold, color="red", linestyle="--", linewidth=1,
                 label="threshold")
    axis.set(xlabel="seconds", ylabel="normalised entropy", ylim=(0, 1.05),
             title="Host metric entropy")
    axis.legend(loc="upper left", fontsize="small", ncol=3)
    figure.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary)
    plt.close(figure)
    os.replace(temporary, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__, out_default="runs/entropy")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="how long to sample (default 10)")
    parser.add_argument("--interval", type=float, default=0.5,
                        help="seconds between readings (default 0.5)")
    args = parser.parse_args(argv)
    config = resolve_config(args)
    if not (args.seconds > 0 and args.interval > 0):
        raise UsageError(f"--seconds and --interval must be positive, got "
                         f"{args.seconds} and {args.interval}")
    settings = config.monitor
    monitor = SystemEntropyMonitor(
        settings.entropy_window, settings.entropy_threshold,
        bins=settings.entropy_bins, metric_bins=HOST_METRIC_BINS)
    sampler = HostMetricSampler()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines_path = out / "entropy.jsonl"
    partial = out / ".entropy.jsonl.partial"
    records: list[dict] = []
    start = time.monotonic()
    sampler.sample()  # primes the counters: the first reading is no reading
    with open(partial, "w", encoding="utf-8") as stream:
        while (elapsed := time.monotonic() - start) < args.seconds:
            time.sleep(min(args.interval, max(args.seconds - elapsed, 0.0)))
            sample = sampler.sample()
            if sample is None:
                continue
            metrics = monitor.update_metrics(
                cpu_usage=sample.cpu_usage, memory_usage=sample.memory_usage,
                io_rate=sample.io_rate, network_rate=sample.network_rate)
            anomaly = monitor.detect_entropy_anomaly(metrics)
            record = {
                "t": round(sample.time_s - start, 3),
                "cpu_usage": sample.cpu_usage, "memory_usage": sample.memory_usage,
                "io_rate": sample.io_rate, "network_rate": sample.network_rate,
                "counter_resets": sample.counter_resets,
                "entropy": metrics.subsystems, "composite": metrics.composite,
                "samples": metrics.samples, "anomaly": anomaly,
            }
            records.append(record)
            stream.write(json.dumps(record) + "\n")
            stream.flush()
            if not args.quiet:
                print(f"{record['t']:7.1f}s cpu {sample.cpu_usage:5.1%} "
                      f"mem {sample.memory_usage:5.1%} "
                      f"io {sample.io_rate / 1e6:8.2f} MB/s "
                      f"net {sample.network_rate / 1e6:8.2f} MB/s "
                      f"H {metrics.composite:.3f}{'  ANOMALY' if anomaly else ''}",
                      flush=True)
    os.replace(partial, lines_path)
    if records:
        plot_timeline(records, settings.entropy_threshold, out / "entropy.png")
    flagged = sum(record["anomaly"] for record in records)
    print(f"{len(records)} readings, {flagged} flagged; wrote {lines_path}"
          + (f" and {out / 'entropy.png'}" if records else ""))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
