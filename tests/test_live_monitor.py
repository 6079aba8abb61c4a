"""Live monitoring through real strace: per-process windows, replay equals
detect, alerts, the command line, and the ways a run can end."""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from sentinel_jax.cli import run_main
from sentinel_jax.data.strace import iter_strace_calls
from sentinel_jax.data.traces import window_starts
from sentinel_jax.monitor.live import LiveMonitor
from sentinel_jax.monitor.strace_session import STRACE_FLAGS, StraceSession

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))
import monitor as monitor_script  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("strace") is None,
                                reason="strace is not installed")

SHELL_LOOP = "for i in 1 2 3 4 5; do cat /etc/hostname > /dev/null; done; ls /"


@pytest.fixture(scope="module")
def recorded_log(tmp_path_factory) -> Path:
    """A real strace log of a shell that forks five cats and an ls."""
    log = tmp_path_factory.mktemp("strace") / "loop.log"
    subprocess.run(["strace", *STRACE_FLAGS, "-o", str(log), "sh", "-c",
                    SHELL_LOOP], check=True, stdout=subprocess.DEVNULL,
                   timeout=60)
    return log


class _Recorder:
    """Collects what a LiveMonitor reports through its hooks."""

    def __init__(self) -> None:
        self.windows = collections.defaultdict(list)
        self.ended: dict[int, tuple[str, int, int]] = {}
        self.alerts = []

    def monitor(self, engine, **kwargs) -> LiveMonitor:
        return LiveMonitor(
            engine, on_alert=self.alerts.append,
            on_window=lambda pid, window, score: self.windows[pid].append(
                (window, score)),
            on_process_end=lambda pid, comm, calls, windows: self.ended.__setitem__(
                pid, (comm, calls, windows)), **kwargs)


def test_replay_gives_the_scores_of_detect(tiny_engine, recorded_log):
    recorder = _Recorder()
    monitor = recorder.monitor(tiny_engine, batch_size=7)
    with recorded_log.open() as lines:
        monitor.feed_lines(lines)
    summary = monitor.finish()

    calls_by_pid = collections.defaultdict(list)
    for call in iter_strace_calls(recorded_log.read_text().splitlines()):
        calls_by_pid[call.pid].append(call)
    assert set(recorder.windows) == set(calls_by_pid)
    assert len(calls_by_pid) == 7  # sh, five cats, ls
    for pid, calls in calls_by_pid.items():
        result = tiny_engine.detect(calls, explain=False)
        windows = sorted(recorder.windows[pid])
        assert [index for index, _ in windows] == list(range(len(windows)))
        np.testing.assert_allclose([score for _, score in windows],
                                   result.window_scores, rtol=1e-5, atol=1e-5)
        assert recorder.ended[pid][1:] == (len(calls), len(result.window_scores))
    assert summary.calls == sum(len(calls) for calls in calls_by_pid.values())
    assert summary.windows == sum(len(w) for w in recorder.windows.values())
    assert summary.processes == 7 and monitor.live_processes == 0
    comms = collections.Counter(comm for comm, _, _ in recorder.ended.values())
    assert comms == {"cat": 5, "sh": 1, "ls": 1}


def test_a_live_command_is_windowed_per_process(tiny_engine):
    recorder = _Recorder()
    monitor = recorder.monitor(tiny_engine, batch_size=16, read_comm=True)
    with StraceSession(["sh", "-c", SHELL_LOOP]) as session:
        for line in session.lines(idle_seconds=0.05):
            if line is not None:
                monitor.feed_line(line)
            monitor.tick()
        status = session.process.wait()
    summary = monitor.finish()

    assert status == 0
    assert summary.processes == len(recorder.ended) == 7
    counts = {pid: calls for pid, (_, calls, _) in recorder.ended.items()}
    assert sum(counts.values()) == summary.calls > 100
    for pid, (_, calls, windows) in recorder.ended.items():
        expected = len(window_starts(calls, tiny_engine.time_steps,
                                     tiny_engine.stride))
        assert windows == len(recorder.windows[pid]) == expected
    comms = collections.Counter(comm for comm, _, _ in recorder.ended.values())
    assert comms == {"cat": 5, "sh": 1, "ls": 1}


def test_alerts_name_the_driving_events(tiny_engine, recorded_log):
    recorder = _Recorder()
    monitor = recorder.monitor(tiny_engine, max_explained=10**6)
    monitor.threshold = -np.inf  # every window alerts
    with recorded_log.open() as lines:
        monitor.feed_lines(lines)
    summary = monitor.finish()

    assert summary.alerts == summary.windows == len(recorder.alerts)
    for alert in recorder.alerts:
        record = json.loads(alert.json_line())
        assert set(record) >= {"time", "pid", "comm", "score", "threshold",
                               "top_events", "window", "calls"}
        assert record["comm"] in ("sh", "cat", "ls")
        assert 1 <= len(record["top_events"]) <= tiny_engine.top_k
        length = min(record["calls"], tiny_engine.time_steps)
        for event in record["top_events"]:
            assert record["calls"] - length <= event["position"] < record["calls"]
            assert isinstance(event["tags"], list)


def test_explanations_per_batch_are_capped(tiny_engine, recorded_log):
    recorder = _Recorder()
    monitor = recorder.monitor(tiny_engine, batch_size=32, max_explained=2)
    monitor.threshold = -np.inf
    with recorded_log.open() as lines:
        monitor.feed_lines(lines)
    batches = monitor.finish().scoring["batches"]
    explained = [alert for alert in recorder.alerts if alert.top_events]
    assert 2 * (batches - 1) <= len(explained) <= 2 * batches < len(recorder.alerts)


def test_memory_is_bounded_by_live_processes(tiny_engine):
    monitor = LiveMonitor(tiny_engine, batch_size=64, max_processes=3)
    time_steps = tiny_engine.time_steps
    line = '{pid} 1.0 read(3</etc/hosts>, "x", 1) = 1\n'
    for step in range(5000):
        monitor.feed_line(line.format(pid=100 + step % 5))
        assert monitor.buffered_events <= 3 * 2 * time_steps
    monitor.feed_line("100 2.0 +++ exited with 0 +++\n")
    summary = monitor.finish()
    assert summary.max_live_processes == 3 and summary.evicted_processes > 0
    assert summary.calls == 5000 and monitor.live_processes == 0


def _run_monitor(argv, capsys):
    status = run_main(monitor_script.main, argv)
    return status, capsys.readouterr()


def test_command_line_monitors_a_command(tiny_run, tmp_path, capsys):
    alerts = tmp_path / "alerts.jsonl"
    out = tmp_path / "out"
    status, captured = _run_monitor(
        ["--checkpoint", str(tiny_run), "--out", str(out), "--quiet",
         "--alerts", str(alerts), "--threshold=-1e9", "--batch-size", "16",
         "--", "sh", "-c", SHELL_LOOP], capsys)

    assert status == 0, captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 7 and summary["calls"] > 100
    assert summary["alerts"] == summary["windows"] > 7
    assert summary["calls_per_s"] > 0 and summary["strace_status"] == 0
    assert summary["scoring_latency_ms"]["batches"] >= 1
    lines = alerts.read_text().splitlines()
    assert len(lines) == summary["alerts"]
    assert {json.loads(line)["comm"] for line in lines} == {"sh", "cat", "ls"}
    assert "7 processes" in captured.err and captured.out == ""


def test_command_line_replays_a_log_to_stdout(tiny_run, recorded_log, tmp_path,
                                             capsys):
    status, captured = _run_monitor(
        ["--checkpoint", str(tiny_run), "--out", str(tmp_path), "--quiet",
         "--replay", str(recorded_log), "--threshold=-1e9", "--no-explain",
         "--batch-size", "16"],
        capsys)
    assert status == 0, captured.err
    summary = json.loads((tmp_path / "summary.json").read_text())
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert len(records) == summary["alerts"] == summary["windows"]
    assert all(record["top_events"] == [] for record in records)


@pytest.mark.parametrize("argv, message", [
    ([], "exactly one source"),
    (["--replay", "/no/such.log"], "not found"),
    (["--pid", "1", "--", "ls"], "exactly one source"),
    (["--pid", "999999999"], "no process with id 999999999"),
])
def test_command_line_usage_errors(tiny_run, tmp_path, capsys, argv, message):
    status, captured = _run_monitor(
        ["--checkpoint", str(tiny_run), "--out", str(tmp_path), *argv], capsys)
    assert status == 2 and message in captured.err


def test_missing_strace_gives_the_install_hint(tiny_run, tmp_path, capsys,
                                               monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    status, captured = _run_monitor(
        ["--checkpoint", str(tiny_run), "--out", str(tmp_path), "--", "ls"], capsys)
    assert status == 2 and "apt-get install strace" in captured.err


def test_ctrl_c_still_writes_the_summary(tiny_run, tmp_path, capsys):
    marker = "31.5"  # a unique sleep length to find the process by
    alerts = tmp_path / "alerts.jsonl"
    done = threading.Event()

    def interrupt_once_sleeping() -> None:
        while not done.wait(0.05):
            if _sleepers(marker):
                time.sleep(0.3)  # let the monitor read the calls so far
                os.kill(os.getpid(), signal.SIGINT)
                return

    thread = threading.Thread(target=interrupt_once_sleeping)
    thread.start()
    try:
        status, captured = _run_monitor(
            ["--checkpoint", str(tiny_run), "--out", str(tmp_path), "--quiet",
             "--alerts", str(alerts), "--threshold=-1e9", "--batch-size", "16",
             "--", "sh", "-c", f"ls / > /dev/null; exec sleep {marker}"], capsys)
    finally:
        done.set()
        thread.join()
    assert status == 0, captured.err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["stopped_by"] == "interrupted (SIGINT)"
    assert summary["calls"] > 0
    lines = alerts.read_text().splitlines()
    assert len(lines) == summary["alerts"] > 0
    assert all(json.loads(line)["pid"] for line in lines)
    time.sleep(0.2)
    assert _sleepers(marker) == [], "the traced command outlived the monitor"


def _sleepers(marker: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] == ["sleep", marker]]


def test_killed_strace_ends_the_run(tiny_engine):
    monitor = LiveMonitor(tiny_engine)
    with StraceSession(["sh", "-c", "ls / > /dev/null; sleep 2"]) as session:
        killed = False
        for line in session.lines(idle_seconds=0.05):
            if line is not None:
                monitor.feed_line(line)
            if not killed and monitor.parser.stats.calls > 20:
                session.process.kill()
                killed = True
        assert session.process.wait() == -signal.SIGKILL
    summary = monitor.finish()
    assert summary.calls > 20 and monitor.live_processes == 0


def test_many_children_are_tracked_and_forgotten(tiny_engine):
    recorder = _Recorder()
    monitor = recorder.monitor(tiny_engine)
    script = "for i in $(seq 25); do /bin/true & done; wait"
    with StraceSession(["sh", "-c", script]) as session:
        for line in session.lines(idle_seconds=0.05):
            if line is not None:
                monitor.feed_line(line)
    summary = monitor.finish()
    assert summary.processes >= 26 and monitor.live_processes == 0
    comms = collections.Counter(comm for comm, _, _ in recorder.ended.values())
    assert comms["true"] == 25
