"""Watch processes through strace and score their system calls live.

Three sources, one at a time:
  -- COMMAND ARGS...   run COMMAND under strace -f and score it as it runs
  --pid PID            attach to a running process (and its new children)
  --replay LOG         score a saved strace log (strace -f -o LOG) at full speed

Each process gets its own windows (the run's window length and stride); a
window is scored every stride calls, in batches across processes, and a
window whose score reaches the run's threshold is an alert: one JSON line
(time, pid, command name, window score, threshold, top events with tags) on
stdout or --alerts FILE. A progress line and, at the end, a short summary go
to stderr; DIR/summary.json holds processes, calls, windows, alerts,
calls_per_s and the scoring latency. Ctrl-C stops cleanly: the summary is
still written and the alert file holds only complete lines.

The window length, stride and threshold come from the trained run
(--checkpoint); --config/--set are accepted for the shared command line.

--reader picks the strace reader of --replay: `native` (a Rust port of the
Python reader, built once with cargo into $SENTINEL_CACHE_DIR or
~/.cache/sentinel_jax, parsing on its own core), `python`, or `auto` (the
default: native when cargo is there, else Python, said once in the log).
Both give the same windows, scores and alerts. Live sources read with Python.

Examples::

    python experiments/monitor.py --checkpoint runs/tiny -- tar -cf /tmp/x.tar .
    python experiments/monitor.py --checkpoint runs/tiny --pid 1234 --alerts a.jsonl
    python experiments/monitor.py --checkpoint runs/tiny --replay trace.log --quiet
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from sentinel_jax.atomic import write_json_atomic
from sentinel_jax.cli import UsageError, make_parser, resolve_config, run_main
from sentinel_jax.data.native.build import (
    RustBuildError,
    RustUnavailableError,
    reader_binary,
)
from sentinel_jax.data.native.records import NativeReader
from sentinel_jax.data.strace import open_log
from sentinel_jax.inference import SCORERS, InferenceEngine
from sentinel_jax.monitor.live import Alert, LiveMonitor, MonitorSummary
from sentinel_jax.monitor.record_feed import RecordFeed
from sentinel_jax.monitor.strace_session import StraceSession, strace_path
from sentinel_jax.scoring import DEFAULT_BUCKETS

_CHECK_EVERY = 4096  # lines between checks for Ctrl-C and progress in replay
READERS = ("auto", "native", "python")
logger = logging.getLogger("monitor")


class _StopFlag:
    """Set by SIGINT or SIGTERM; a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def __call__(self, signum: int, frame: object) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = f"interrupted ({signal.Signals(signum).name})"


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[_StopFlag]:
    flag = _StopFlag()
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Outside the main thread signals cannot be caught: leave them be.
        with contextlib.suppress(ValueError):
            previous[signum] = signal.signal(signum, flag)
    try:
        yield flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Progress:
    """One progress line on stderr, redrawn at most every ``every`` seconds."""

    def __init__(self, monitor: LiveMonitor, enabled: bool,
                 feed: RecordFeed | None = None) -> None:
        self.monitor = monitor
        self.feed = feed
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.every = 0.5 if self.tty else 5.0
        self.began = self.last = time.perf_counter()
        self.drawn = False

    def update(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (not force and now - self.last < self.every):
            return
        self.last = now
        monitor, feed = self.monitor, self.feed
        calls = monitor.parser.stats.calls if feed is None else feed.calls
        live = monitor.live_processes if feed is None else feed.live_processes
        rate = calls / max(now - self.began, 1e-9)
        line = (f"{calls:,} calls  {monitor.summary.windows:,} windows  "
                f"{monitor.summary.alerts:,} alerts  {live} live "
                f"processes  {rate:,.0f} calls/s")
        if self.tty:
            sys.stderr.write(f"\r{line}\033[K")
            self.drawn = True
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _replay(monitor: LiveMonitor, path: Path, stop: _StopFlag,
            progress: _Progress) -> str:
    with open_log(path) as lines:
        feed = monitor.feed_line
        for number, line in enumerate(lines, start=1):
            feed(line)
            if number % _CHECK_EVERY == 0:
                if stop.reason is not None:
                    return stop.reason
                progress.update()
    return "end of input"


def _replay_native(feed: RecordFeed, binary: Path, path: Path, stop: _StopFlag,
                   progress: _Progress) -> str:
    with NativeReader(binary, path) as reader:
        for records in reader:
            feed.feed(records)
            if stop.reason is not None:
                return stop.reason
            progress.update()
    return "end of input"


def choose_reader(reader: str, replay: bool) -> Path | None:
    """The native reader's binary, or ``None`` for the Python reader.

    Raises:
        UsageError: ``native`` asked for a live source, or it cannot be built.
    """
    if reader == "python" or (reader == "auto" and not replay):
        return None
    if not replay:
        raise UsageError("--reader native reads --replay logs only; live "
                         "sources use the Python reader")
    try:
        return reader_binary()
    except (RustUnavailableError, RustBuildError, OSError) as error:
        why = ("cargo not found on PATH or in ~/.cargo/bin"
               if isinstance(error, RustUnavailableError)
               else str(error).splitlines()[0])
        if reader == "native":
            raise UsageError(f"--reader native: the native strace reader "
                             f"cannot be built: {why}") from error
        logger.warning("native strace reader unavailable (%s): replaying with "
                       "the Python reader, several times slower", why)
        return None


def _live(monitor: LiveMonitor, session: StraceSession, stop: _StopFlag,
          progress: _Progress) -> str:
    feed, tick = monitor.feed_line, monitor.tick
    for line in session.lines():
        if line is not None:
            feed(line)
        tick()
        if stop.reason is not None:
            return stop.reason
        progress.update()
    status = session.process.wait() if session.process else None
    if status is not None and status < 0:
        return f"strace killed by {signal.Signals(-status).name}"
    return "traced processes exited"


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__, out_default="runs/monitor")
    parser.add_argument("--checkpoint", required=True, metavar="RUN",
                        help="trained run folder (or its checkpoints folder)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--pid", type=int, help="attach to this process")
    source.add_argument("--replay", metavar="LOG",
                        help="score a saved strace -f log at full speed")
    parser.add_argument("command", nargs="*", metavar="-- COMMAND ARGS",
                        help="command to run under strace (after --)")
    parser.add_argument("--alerts", metavar="FILE",
                        help="append alerts as JSON lines here (default stdout)")
    parser.add_argument("--scorer", choices=SCORERS, default="network",
                        help="the network, or the distilled equation")
    parser.add_argument("--threshold", type=float,
                        help="alert threshold (default: the run's)")
    parser.add_argument("--batch-size", type=int, default=512,
                        help="windows scored together (default 512)")
    parser.add_argument("--max-delay", type=float, default=0.25, metavar="S",
                        help="longest a live window waits for its batch")
    parser.add_argument("--no-explain", action="store_true",
                        help="omit the events that drove each alert")
    parser.add_argument("--max-explained", type=int, default=16, metavar="N",
                        help="alerts explained per scored batch, highest "
                        "first (default 16)")
    parser.add_argument("--reader", choices=READERS, default="auto",
                        help="strace reader of --replay: native (Rust, built "
                        "once with cargo), python, or auto (default: native "
                        "when cargo is there)")
    args = parser.parse_args(argv)
    resolve_config(args)
    sources = sum([bool(args.command), args.pid is not None,
                   args.replay is not None])
    if sources != 1:
        raise UsageError("give exactly one source: -- COMMAND ARGS..., --pid PID "
                         "or --replay LOG")
    if args.batch_size < 1 or args.max_delay < 0 or args.max_explained < 0:
        raise UsageError("--batch-size must be >= 1, --max-delay and "
                         "--max-explained >= 0")
    if args.replay is not None:
        replay = Path(args.replay)
        if not replay.is_file():
            raise UsageError(f"--replay: log file not found: {replay}")
    else:
        strace_path()  # fail before loading the model if strace is missing
    if args.pid is not None and not Path(f"/proc/{args.pid}").exists():
        raise UsageError(f"--pid: no process with id {args.pid}")
    native = choose_reader(args.reader, replay=args.replay is not None)

    # Compile no batch size larger than the batches the monitor scores.
    buckets = {size for size in DEFAULT_BUCKETS if size < args.batch_size}
    engine = InferenceEngine(args.checkpoint, scorer=args.scorer,
                             threshold=args.threshold,
                             batch_sizes=sorted(buckets | {args.batch_size}))
    out = Path(args.out)
    if args.alerts:
        Path(args.alerts).parent.mkdir(parents=True, exist_ok=True)
    # Line-buffered: every alert reaches the file as one complete line.
    alert_stream: IO[str] = (
        open(args.alerts, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        if args.alerts else sys.stdout)

    def write_alert(alert: Alert) -> None:
        alert_stream.write(alert.json_line())
        alert_stream.flush()

    monitor = LiveMonitor(engine, on_alert=write_alert,
                          batch_size=args.batch_size, max_delay=args.max_delay,
                          explain=not args.no_explain,
                          max_explained=args.max_explained,
                          read_comm=args.replay is None)
    feed = RecordFeed(monitor) if native is not None else None
    progress = _Progress(monitor, enabled=not args.quiet, feed=feed)
    status = None
    try:
        with _stop_on_signals() as stop:
            if args.replay is not None:
                monitor.summary.source = f"replay {args.replay}"
                if feed is not None:
                    stopped_by = _replay_native(feed, native, Path(args.replay),
                                                stop, progress)
                else:
                    stopped_by = _replay(monitor, Path(args.replay), stop,
                                         progress)
            else:
                session = StraceSession(args.command or None, pid=args.pid)
                monitor.summary.source = " ".join(session.argv)
                with session:
                    stopped_by = _live(monitor, session, stop, progress)
                status = session.returncode
            summary = (monitor.finish(stopped_by) if feed is None
                       else feed.finish(stopped_by))
    finally:
        progress.close()
        if alert_stream is not sys.stdout:
            alert_stream.close()
    summary.strace_status = status
    _report(summary, out)
    if args.replay is None and summary.calls == 0 and status:
        raise UsageError(f"strace exited with status {status} before tracing any "
                         f"call (see its message above)")
    return 0


def _report(summary: MonitorSummary, out: Path) -> None:
    write_json_atomic(out / "summary.json", summary.to_json())
    print(summary.text(), file=sys.stderr)
    print(f"summary: {out / 'summary.json'}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(run_main(main))
