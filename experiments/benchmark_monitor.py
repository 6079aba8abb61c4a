"""Replay throughput of the live monitor on a long strace log, in calls/s.

Builds a long log from a real workload traced once (tar over the Python
library, find, a Python import), copied with shifted pids until it holds
--calls calls, or reads --log. Then measures, on the same lines, with each
reader (native: the Rust reader run as a subprocess, records read with numpy;
python: StraceParser in this process):

  parse     the strace reader alone (native: the reader's records read and
            counted; python: StraceParser.feed)
  replay    the whole monitor: parsing, per-process windows, batched scoring,
            alerts (what `monitor.py --replay --reader native|python` does)

and writes DIR/benchmark_monitor.json (calls, seconds and calls/s of each
phase and reader, the native/python ratio, windows, alerts, scoring latency,
the model and the command). Without cargo only the Python reader is timed.

The scorer is the trained run of --checkpoint, or, with --config, an
untrained network of that config's architecture (throughput does not depend
on the weights; its threshold is set so about 0.1% of windows alert).

Example::

    python experiments/benchmark_monitor.py --config configs/default.yaml \
        --calls 300000 --out runs/bench_monitor
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from sentinel_jax.atomic import write_json_atomic
from sentinel_jax.cli import UsageError, make_parser, resolve_config, run_main
from sentinel_jax.config import Config
from sentinel_jax.data.encode import encode_traces
from sentinel_jax.data.native.build import (
    RustBuildError,
    RustUnavailableError,
    reader_binary,
)
from sentinel_jax.data.native.records import CALL, NativeReader
from sentinel_jax.data.strace import StraceParser, open_log
from sentinel_jax.data.syscalls import Vocabulary
from sentinel_jax.inference import InferenceEngine
from sentinel_jax.models.hybrid import HybridSpec, init_hybrid
from sentinel_jax.monitor.live import LiveMonitor
from sentinel_jax.monitor.record_feed import RecordFeed
from sentinel_jax.monitor.strace_session import STRACE_FLAGS, strace_path
from sentinel_jax.training.checkpoint import TrainedRun

logger = logging.getLogger("benchmark_monitor")

_PID = re.compile(r"^(\d+)")
_STDLIB = os.path.dirname(os.__file__)
WORKLOAD = (
    ["tar", "-cf", "/dev/null", os.path.join(_STDLIB, "email"),
     os.path.join(_STDLIB, "json"), os.path.join(_STDLIB, "http")],
    ["find", "/usr/lib", "-maxdepth", "2", "-name", "*.so*"],
    ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do ls -l /usr/bin > /dev/null; done"],
    [sys.executable, "-c", "import json, email.parser, http.client"],
)


def record_workload(folder: Path) -> list[str]:
    """strace lines of :data:`WORKLOAD`, traced once each."""
    lines = []
    for index, command in enumerate(WORKLOAD):
        log = folder / f"workload-{index}.log"
        subprocess.run([strace_path(), *STRACE_FLAGS, "-o", str(log), *command],
                       check=False, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=600)
        lines.extend(log.read_text(errors="replace").splitlines(keepends=True))
    return lines


def write_long_log(base: list[str], calls: int, path: Path) -> int:
    """Copies of ``base`` with shifted pids until ``calls`` lines; returns
    the lines written."""
    written = 0
    with path.open("w") as stream:
        copy = 0
        while written < calls:
            shift = copy * 100_000
            for line in base:
                match = _PID.match(line)
                if match:
                    line = f"{int(match.group(1)) + shift}{line[match.end():]}"
                stream.write(line)
            written += len(base)
            copy += 1
    return written


def untrained_run(config: Config, log: Path) -> TrainedRun:
    """An untrained network of ``config``'s architecture, its vocabulary from
    the log and a threshold at the 99.9th percentile of a sample's scores."""
    from sentinel_jax.data.strace import iter_strace_traces

    traces = []
    for trace in iter_strace_traces(log):
        traces.append(trace)
        if len(traces) >= 200:
            break
    vocabulary = Vocabulary.build((t.names for t in traces),
                                  config.data.name_channels)
    spec = HybridSpec.from_config(config.model, config.data)
    params = init_hybrid(jax.random.PRNGKey(config.training.seed), spec)
    run = TrainedRun(params=params, spec=spec, vocabulary=vocabulary,
                     threshold=float("inf"), config=config, run_dir=log.parent,
                     meta={"untrained": True})
    windows = encode_traces(traces, vocabulary, spec.time, config.data.stride,
                            spec.channels, max_windows_per_trace=20)
    sample = run.score(windows.ids, windows.tags, windows.hist)
    threshold = float(np.quantile(sample, 0.999))
    return TrainedRun(params=params, spec=spec, vocabulary=vocabulary,
                      threshold=threshold, config=config, run_dir=log.parent,
                      meta={"untrained": True})


def measure_parse(log: Path) -> dict[str, float]:
    parser = StraceParser()
    began = time.perf_counter()
    with open_log(log) as lines:
        feed = parser.feed
        for line in lines:
            feed(line)
    parser.finish()
    seconds = time.perf_counter() - began
    return {"calls": parser.stats.calls, "seconds": round(seconds, 3),
            "calls_per_s": round(parser.stats.calls / seconds, 1)}


def measure_native_parse(binary: Path, log: Path) -> dict[str, float]:
    began = time.perf_counter()
    calls = 0
    with NativeReader(binary, log) as reader:
        for records in reader:
            calls += int(np.count_nonzero(records["kind"] == CALL))
    seconds = time.perf_counter() - began
    return {"calls": calls, "seconds": round(seconds, 3),
            "calls_per_s": round(calls / seconds, 1)}


def measure_replay(engine: InferenceEngine, log: Path, batch_size: int,
                   explain: bool, binary: Path | None = None
                   ) -> dict[str, object]:
    """The whole replay; with ``binary``, through the native reader."""
    monitor = LiveMonitor(engine, batch_size=batch_size, explain=explain)
    began = time.perf_counter()
    if binary is None:
        with open_log(log) as lines:
            monitor.feed_lines(lines)
        summary = monitor.finish()
    else:
        feed = RecordFeed(monitor)
        with NativeReader(binary, log) as reader:
            for records in reader:
                feed.feed(records)
        summary = feed.finish()
    seconds = time.perf_counter() - began
    return {"calls": summary.calls, "seconds": round(seconds, 3),
            "calls_per_s": round(summary.calls / seconds, 1),
            "windows": summary.windows, "alerts": summary.alerts,
            "processes": summary.processes,
            "max_live_processes": summary.max_live_processes,
            "scoring_latency_ms": summary.scoring}


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__, out_default="runs/bench_monitor")
    parser.add_argument("--checkpoint", metavar="RUN",
                        help="trained run (default: untrained network of --config)")
    parser.add_argument("--log", help="replay this strace log instead of "
                        "recording the workload")
    parser.add_argument("--calls", type=int, default=300_000,
                        help="calls in the generated log (default 300000)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--no-explain", action="store_true",
                        help="alerts without their driving events (occlusion "
                        "costs about `time` extra windows per alert)")
    parser.add_argument("--keep-log", action="store_true",
                        help="keep the generated log in DIR")
    args = parser.parse_args(argv)
    config = resolve_config(args)
    if args.calls < 1 or args.batch_size < 1:
        raise UsageError("--calls and --batch-size must be >= 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    scratch = Path(tempfile.mkdtemp(prefix="bench-monitor-", dir=out))
    try:
        if args.log:
            log = Path(args.log)
            if not log.is_file():
                raise UsageError(f"--log: file not found: {log}")
        else:
            log = scratch / "replay.log"
            lines = write_long_log(record_workload(scratch), args.calls, log)
            logger.info("wrote %d lines to %s", lines, log)
        run = (args.checkpoint if args.checkpoint
               else untrained_run(config, log))
        engine = InferenceEngine(run, batch_sizes=(1, 8, 64, args.batch_size))
        try:
            binary = reader_binary()
        except (RustUnavailableError, RustBuildError) as error:
            logger.warning("native reader unavailable, timing Python only: %s",
                           str(error).splitlines()[0])
            binary = None
        explain = not args.no_explain
        # A warm-up replay compiles every batch size the replays will use.
        measure_replay(engine, log, args.batch_size, explain, binary)
        parse = {"python": measure_parse(log)}
        replay = {"python": measure_replay(engine, log, args.batch_size,
                                           explain)}
        if binary is not None:
            parse["native"] = measure_native_parse(binary, log)
            replay["native"] = measure_replay(engine, log, args.batch_size,
                                              explain, binary)
        if args.keep_log and not args.log:
            shutil.move(log, out / "replay.log")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    result = {
        "command": " ".join(["python", "experiments/benchmark_monitor.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "model": {"checkpoint": args.checkpoint, "untrained": not args.checkpoint,
                  "time": engine.time_steps, "stride": engine.stride,
                  "channels": engine.channels,
                  "snn_hidden": list(engine.run.spec.snn_hidden),
                  "kan_hidden": list(engine.run.spec.kan_hidden)},
        "parse": parse, "replay": replay,
        "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "jax_backend": jax.default_backend(),
    }
    if "native" in replay:
        result["native_over_python"] = round(
            replay["native"]["calls_per_s"] / replay["python"]["calls_per_s"], 2)
    write_json_atomic(out / "benchmark_monitor.json", result)
    for reader in replay:
        print(f"{reader:>6}: parse only {parse[reader]['calls_per_s']:,.0f} "
              f"calls/s; replay (parse + windows + scoring) "
              f"{replay[reader]['calls_per_s']:,.0f} calls/s over "
              f"{replay[reader]['calls']:,} calls, "
              f"{replay[reader]['windows']:,} windows, "
              f"{replay[reader]['alerts']} alerts")
    print(f"results: {out / 'benchmark_monitor.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
