"""The native strace reader feeds the live monitor as the Python reader does.

On real strace logs (a shell that forks and execs, recorded here), a replay
through the Rust reader and :class:`~sentinel_jax.monitor.record_feed.
RecordFeed` gives the windows, scores, alerts (with comm, call time and top
events) and summary counts of a replay through the Python reader; so does
bad input (binary junk, truncated lines), with the same skipped lines. A
machine without cargo replays with the Python reader and says so.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest

from sentinel_jax.cli import run_main
from sentinel_jax.data.native import build
from sentinel_jax.data.native.records import NativeReader
from sentinel_jax.monitor.live import LiveMonitor
from sentinel_jax.monitor.record_feed import RecordFeed
from sentinel_jax.monitor.strace_session import STRACE_FLAGS

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))
import monitor as monitor_script  # noqa: E402

pytestmark = [
    pytest.mark.skipif(shutil.which("strace") is None,
                       reason="strace is not installed"),
    pytest.mark.skipif(shutil.which("cargo") is None,
                       reason="no Rust toolchain"),
]

WORKLOAD = ("for i in 1 2 3; do cat /etc/hostname > /dev/null; done; "
            "ls -l / > /dev/null; (echo x; sleep 0.01) | wc -c > /dev/null; "
            "cat /no/such/file 2> /dev/null; exit 0")
# Summary fields that are counts (the others time the run).
COUNTS = ("processes", "calls", "windows", "alerts", "max_live_processes",
          "evicted_processes", "lines", "skipped_lines")


@pytest.fixture(scope="module")
def reader(tmp_path_factory) -> Path:
    """The native reader, built into a fresh cache folder."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SENTINEL_CACHE_DIR", str(cache))
        binary = build.reader_binary()
    assert binary.parent == cache and os.access(binary, os.X_OK)
    return binary


@pytest.fixture(scope="module")
def recorded_log(tmp_path_factory) -> Path:
    """A real strace log: a shell forking cats, ls, a pipeline, a failure."""
    log = tmp_path_factory.mktemp("strace") / "work.log"
    subprocess.run(["strace", *STRACE_FLAGS, "-o", str(log), "sh", "-c",
                    WORKLOAD], check=True, stdout=subprocess.DEVNULL, timeout=60)
    return log


class _Run:
    """What one replay reported: windows in order, alerts, ends, summary."""

    def __init__(self, engine, **kwargs) -> None:
        self.windows: list[tuple[int, int, float]] = []
        self.alerts: list[dict] = []
        self.ended: list[tuple[int, str, int, int]] = []
        self.monitor = LiveMonitor(
            engine, on_alert=lambda alert: self.alerts.append(alert.to_json()),
            on_window=lambda pid, window, score: self.windows.append(
                (pid, window, score)),
            on_process_end=lambda *ended: self.ended.append(ended), **kwargs)

    def python(self, log: Path) -> dict:
        with log.open(encoding="utf-8", errors="replace") as lines:
            self.monitor.feed_lines(lines)
        return self.monitor.finish().to_json()

    def native(self, log: Path, binary: Path) -> dict:
        feed = RecordFeed(self.monitor)
        with NativeReader(binary, log) as records:
            for block in records:
                feed.feed(block)
        return feed.finish().to_json()


def _compare(engine, log: Path, binary: Path, **kwargs) -> tuple[_Run, dict]:
    python, native = _Run(engine, **kwargs), _Run(engine, **kwargs)
    expected, found = python.python(log), native.native(log, binary)
    assert {key: found[key] for key in COUNTS} == {
        key: expected[key] for key in COUNTS}
    assert [window[:2] for window in native.windows] == [
        window[:2] for window in python.windows]
    np.testing.assert_allclose([window[2] for window in native.windows],
                               [window[2] for window in python.windows],
                               rtol=1e-6, atol=1e-6)
    assert native.ended == python.ended
    assert len(native.alerts) == len(python.alerts)
    for mine, theirs in zip(native.alerts, python.alerts, strict=True):
        for key in ("time", "score"):
            mine.pop(key), theirs.pop(key)
        for event in (*mine["top_events"], *theirs["top_events"]):
            event.pop("contribution")
        assert mine == theirs
    return python, expected


def test_native_replay_equals_python(tiny_engine, recorded_log, reader):
    run, summary = _compare(tiny_engine, recorded_log, reader, batch_size=7,
                            max_explained=10**6)
    assert summary["processes"] >= 8 and summary["windows"] > 8
    assert summary["skipped_lines"] == 0
    # Every window alerting: comm, call times and top events agree too.
    run, summary = _compare(tiny_engine, recorded_log, reader, batch_size=5,
                            max_explained=10**6, explain=True)
    assert {comm for _, comm, _, _ in run.ended} >= {"sh", "cat", "ls", "wc"}


def test_every_alert_and_its_explanation_agree(tiny_engine, recorded_log,
                                               reader):
    python, native = _Run(tiny_engine, batch_size=16, max_explained=10**6), \
        _Run(tiny_engine, batch_size=16, max_explained=10**6)
    for run in (python, native):
        run.monitor.threshold = -np.inf
    expected = python.python(recorded_log)
    found = native.native(recorded_log, reader)
    assert found["alerts"] == expected["alerts"] == expected["windows"]
    assert [(a["pid"], a["comm"], a["window"], a["calls"], a["call_time"])
            for a in native.alerts] == [
        (a["pid"], a["comm"], a["window"], a["calls"], a["call_time"])
        for a in python.alerts]
    assert [[(e["position"], e["name"], e["tags"]) for e in a["top_events"]]
            for a in native.alerts] == [
        [(e["position"], e["name"], e["tags"]) for e in a["top_events"]]
        for a in python.alerts]
    assert any(a["top_events"] for a in native.alerts)
    assert all(a["call_time"] is not None for a in native.alerts)


def test_bad_input_is_skipped_and_counted_alike(tiny_engine, recorded_log,
                                                reader, tmp_path):
    lines = recorded_log.read_bytes().splitlines(keepends=True)
    junk = bytes(range(256)) * 8 + b"\r\n\x00\xff\xfe not strace at all\n"
    # Truncated lines (cut mid-call), junk, a lone \r, a missing last newline.
    mangled = b"".join(
        line[: len(line) // 2] + b"\n" if index % 7 == 3 else line
        for index, line in enumerate(lines))
    log = tmp_path / "bad.log"
    log.write_bytes(junk + mangled[: len(mangled) // 2] + b"x\ry(\n" + junk
                    + mangled[len(mangled) // 2:] + b"12 read(3, ")
    _, summary = _compare(tiny_engine, log, reader, batch_size=8)
    assert summary["skipped_lines"] > 10 and summary["calls"] > 100

    text = tmp_path / "words.txt"
    text.write_text("hello world\nthis is not a trace\n" * 100)
    _, summary = _compare(tiny_engine, text, reader)
    assert summary["calls"] == 0 and summary["skipped_lines"] == 200


def test_pid_reuse_and_eviction(tiny_engine, reader, tmp_path):
    line = '{pid} 1.0 read(3</etc/hosts>, "x", 1) = 1\n'
    log = tmp_path / "many.log"
    with log.open("w") as stream:
        for step in range(5000):
            stream.write(line.format(pid=100 + step % 5))
        stream.write("100 2.0 +++ exited with 0 +++\n")
        stream.writelines(line.format(pid=100) for _ in range(40))
    run = _Run(tiny_engine, batch_size=64, max_processes=3)
    summary = run.native(log, reader)
    assert summary["calls"] == 5040 and summary["evicted_processes"] > 0
    assert run.monitor.live_processes == 0
    assert summary["max_live_processes"] <= 3 + 5
    # Without eviction the two paths agree exactly, pid reuse included.
    _compare(tiny_engine, log, reader, batch_size=64)


def test_gzip_log_is_read(tiny_engine, recorded_log, reader, tmp_path):
    packed = tmp_path / "work.log.gz"
    packed.write_bytes(gzip.compress(recorded_log.read_bytes()))
    expected = _Run(tiny_engine).python(recorded_log)
    found = _Run(tiny_engine).native(packed, reader)
    assert {key: found[key] for key in COUNTS} == {
        key: expected[key] for key in COUNTS}


def _replay(argv, capsys):
    status = run_main(monitor_script.main, argv)
    return status, capsys.readouterr()


def test_command_line_readers_agree(tiny_run, recorded_log, reader, tmp_path,
                                    capsys, monkeypatch):
    monkeypatch.setenv("SENTINEL_CACHE_DIR", str(reader.parent))
    summaries = {}
    for name in ("native", "python"):
        out = tmp_path / name
        status, captured = _replay(
            ["--checkpoint", str(tiny_run), "--out", str(out), "--quiet",
             "--replay", str(recorded_log), "--threshold=-1e9", "--reader", name,
             "--batch-size", "16", "--alerts", str(out / "alerts.jsonl")], capsys)
        assert status == 0, captured.err
        summaries[name] = json.loads((out / "summary.json").read_text())
        alerts = (out / "alerts.jsonl").read_text().splitlines()
        assert len(alerts) == summaries[name]["alerts"] > 0
    assert {key: summaries["native"][key] for key in COUNTS} == {
        key: summaries["python"][key] for key in COUNTS}
    status, captured = _replay(
        ["--checkpoint", str(tiny_run), "--out", str(tmp_path / "live"),
         "--reader", "native", "--", "true"], capsys)
    assert status == 2 and "--replay" in captured.err


def test_missing_cargo_falls_back_to_python(tiny_run, recorded_log, tmp_path,
                                            capsys, monkeypatch):
    monkeypatch.setenv("SENTINEL_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    monkeypatch.setattr(build.Path, "home", staticmethod(lambda: tmp_path))
    argv = ["--checkpoint", str(tiny_run), "--out", str(tmp_path / "out"),
            "--quiet", "--replay", str(recorded_log), "--no-explain"]
    status, captured = _replay(argv, capsys)
    assert status == 0, captured.err
    warnings = [line for line in captured.err.splitlines()
                if "Python reader" in line]
    assert len(warnings) == 1 and "cargo not found" in warnings[0]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["calls"] > 100

    status, captured = _replay([*argv, "--reader", "native"], capsys)
    assert status == 2 and "cargo" in captured.err


def test_terminal_output_agrees(tiny_engine, reader, tmp_path):
    """strace to a terminal prints no pid until a second process exists: the
    shell's first calls carry none, and both paths keep it one process."""
    log = tmp_path / "terminal.log"
    with log.open("w") as stream:
        subprocess.run(["strace", "-f", "-ttt", "-yy", "sh", "-c",
                        "cat /etc/hostname; ls / > /dev/null"], check=True,
                       stdout=subprocess.DEVNULL, stderr=stream, timeout=60)
    assert not log.read_text().split(None, 1)[0].startswith("[pid")
    run, summary = _compare(tiny_engine, log, reader, batch_size=8,
                            max_explained=10**6)
    assert summary["processes"] == 3
    assert sorted(comm for _, comm, _, _ in run.ended) == ["cat", "ls", "sh"]


def test_a_stop_ends_the_native_replay_cleanly(tiny_engine, reader, tmp_path):
    log = tmp_path / "long.log"
    line = '{pid} 1.0 read(3</etc/hosts>, "x", 1) = 1\n'
    log.write_text("".join(line.format(pid=100 + step % 7)
                           for step in range(200_000)))
    monitor = LiveMonitor(tiny_engine, batch_size=16, explain=False)
    feed = RecordFeed(monitor)
    stop = monitor_script._StopFlag()
    stop.reason = "interrupted (SIGINT)"
    progress = monitor_script._Progress(monitor, enabled=False, feed=feed)
    reason = monitor_script._replay_native(feed, reader, log, stop, progress)
    summary = feed.finish(reason)
    assert summary.stopped_by == reason == "interrupted (SIGINT)"
    assert 0 < summary.calls < 200_000 and summary.windows > 0
    assert feed.live_processes == 0
    # The reader was stopped and reaped: no process of it is left.
    left = []
    for child in psutil.Process().children(recursive=True):
        try:
            left += [child] if str(reader) in child.cmdline() else []
        except psutil.Error:
            left.append(child)
    assert not left
