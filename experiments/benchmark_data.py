"""Data benchmarks: how long the synthetic world takes at reference scale.

Times the synthetic generator on ``data.num_samples`` windows (50,000 of 64
events by default, the reference design's dataset): generating the traces,
and encoding them into a dataset with the common encoder (split, vocabulary,
ids, tags, hist). Writes DIR/benchmark_data.json and prints a short summary.

Example:
  python experiments/benchmark_data.py --out runs/bench_data
  python experiments/benchmark_data.py --out /tmp/b --set data.num_samples=5000
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sentinel_jax.atomic import write_json_atomic
from sentinel_jax.cli import make_parser, resolve_config, run_main
from sentinel_jax.data.store import build_dataset
from sentinel_jax.data.synthetic import (
    Settings,
    World,
    generate_synthetic_traces,
    settings_from,
)


def benchmark_synthetic(settings: Settings, *, name_channels: int, channels: int,
                        val_fraction: float, test_fraction: float,
                        repeats: int = 1) -> dict:
    """Best-of-``repeats`` seconds to generate and to encode the dataset."""
    started = time.perf_counter()
    World(settings.seed)  # load and build the profile tables once
    setup = time.perf_counter() - started
    generate_times, encode_times = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        traces = generate_synthetic_traces(settings)
        generated = time.perf_counter()
        dataset = build_dataset(
            traces, name_channels=name_channels, channels=channels,
            time=settings.time, stride=settings.stride, val_fraction=val_fraction,
            test_fraction=test_fraction, seed=settings.seed)
        encoded = time.perf_counter()
        generate_times.append(generated - started)
        encode_times.append(encoded - generated)
    total = min(g + e for g, e in zip(generate_times, encode_times, strict=True))
    return {
        "num_samples": settings.num_samples, "time": settings.time,
        "stride": settings.stride, "windows": len(dataset),
        "attack_share": round(float(dataset.labels.mean()), 4),
        "traces": len(traces), "events": int(sum(len(t) for t in traces)),
        "setup_s": round(setup, 3),
        "generate_s": round(min(generate_times), 3),
        "encode_s": round(min(encode_times), 3),
        "total_s": round(total, 3),
        "windows_per_s": round(len(dataset) / total, 1),
        "repeats": repeats,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs to take the best of (default 1)")
    args = parser.parse_args(argv)
    config = resolve_config(args)
    settings, data = settings_from(config)
    result = benchmark_synthetic(
        settings, name_channels=data.name_channels,
        channels=data.feature_dim, val_fraction=data.val_fraction,
        test_fraction=data.test_fraction, repeats=max(args.repeats, 1))
    report = {"synthetic": result,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "numpy": np.__version__, "platform": platform.platform()}}
    out = Path(args.out)
    write_json_atomic(out / "benchmark_data.json", report)
    print(f"synthetic: {result['windows']} windows of {result['time']} events "
          f"({result['traces']} traces, {result['events']} events): generate "
          f"{result['generate_s']:.2f} s + encode {result['encode_s']:.2f} s = "
          f"{result['total_s']:.2f} s ({result['windows_per_s']:.0f} windows/s)")
    print(f"written to {out / 'benchmark_data.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
