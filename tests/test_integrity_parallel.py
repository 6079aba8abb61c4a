"""The integrity scan gives the same records in one process or several."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from sentinel_jax.monitor import integrity_scan, integrity_workers
from sentinel_jax.monitor.integrity import IntegrityValidator
from sentinel_jax.monitor.integrity_scan import ScanOptions, scan_paths
from sentinel_jax.monitor.integrity_store import read_baseline


def _without_atime(entries: dict) -> dict:
    # Listing a folder moves its atime; nothing else may differ.
    return {path: entry._replace(atime_ns=0) for path, entry in entries.items()}


def _tree(root, files: int) -> None:
    for index in range(files):
        folder = root / f"d{index // 200}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index}").write_bytes(index.to_bytes(4, "little") * 50)
    os.symlink("d0/f0", root / "link")
    os.mkfifo(root / "fifo")
    (root / "big").write_bytes(os.urandom((1 << 20) + 5))


# Run in a fresh interpreter: the scan forks only a single-threaded process,
# and pytest's own process runs library threads (numpy's, for one).
_SPLIT_SCRIPT = """
import json, logging, os, sys
from sentinel_jax.monitor import integrity_scan, integrity_workers
from sentinel_jax.monitor.integrity_scan import ScanOptions, scan_paths
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
integrity_scan.idle_cpus = lambda runnable: 8  # as if every CPU were idle
offered = []
real_offer = integrity_workers.WorkerPool.offer
def offer(pool, paths):
    taken = real_offer(pool, paths)
    if taken:
        offered.append(len(paths))
    return taken
integrity_workers.WorkerPool.offer = offer
if sys.argv[2] == "die":
    integrity_workers._serve = lambda record, requests, replies: os._exit(3)
def summary(result):
    return {"entries": {os.fsdecode(path): list(entry._replace(atime_ns=0))
                        for path, entry in result.entries.items()},
            "order": [os.fsdecode(path) for path in result.entries],
            "errors": [issue.to_json() for issue in result.errors],
            "bytes_hashed": result.bytes_hashed}
alone = scan_paths([sys.argv[1]], ScanOptions(processes=1))
split = scan_paths([sys.argv[1]], ScanOptions(processes=3, parallel_after=0))
print(json.dumps({"alone": summary(alone), "split": summary(split),
                  "offered": offered}, default=lambda value: value.hex()))
"""


def _scan_split(root, mode: str = "") -> tuple[dict, str]:
    run = subprocess.run([sys.executable, "-c", _SPLIT_SCRIPT, str(root), mode],
                         capture_output=True, text=True, check=True, timeout=120)
    return json.loads(run.stdout), run.stderr


def test_forked_children_record_exactly_what_one_process_does(tmp_path):
    _tree(tmp_path / "tree", 3000)
    out, _ = _scan_split(tmp_path / "tree")
    alone, split = out["alone"], out["split"]
    assert out["offered"], "no batch went to a worker"
    assert len(alone["entries"]) == 3000 + 15 + 3 + 1
    assert split["entries"] == alone["entries"]
    assert split["order"] == sorted(split["order"])
    assert split["errors"] == alone["errors"] == []
    assert split["bytes_hashed"] == alone["bytes_hashed"]


def test_batches_of_a_dead_worker_are_recorded_here(tmp_path):
    _tree(tmp_path / "tree", 3000)
    out, log = _scan_split(tmp_path / "tree", "die")
    assert out["offered"]
    assert out["split"]["entries"] == out["alone"]["entries"]
    assert out["split"]["bytes_hashed"] == out["alone"]["bytes_hashed"]
    assert "a scan worker died" in log


def test_no_worker_while_every_cpu_is_busy(monkeypatch):
    forks: list[int] = []
    monkeypatch.setattr(integrity_scan, "WorkerPool",
                        lambda record, count: forks.append(count))
    monkeypatch.setattr(integrity_scan, "fork_is_safe", lambda: True)
    cpus = len(os.sched_getaffinity(0))
    scan = integrity_scan._Scan(ScanOptions(processes=2), False, None)
    scan._start_workers([cpus + 1, 1, cpus + 3])  # the median counts
    assert forks == []
    scan._start_workers([1, 1, cpus + 3])  # only this scan was runnable
    assert forks == ([1] if cpus > 1 else [])


def test_fork_waits_for_a_joined_thread_to_leave_the_task_list(monkeypatch):
    # The kernel still lists a thread Python has joined for the first reads
    # (and this test's process runs no other Python thread).
    monkeypatch.setattr(integrity_workers.threading, "active_count", lambda: 1)
    listings = iter([["1", "2"], ["1", "2"], ["1"]])
    monkeypatch.setattr(integrity_workers.os, "listdir", lambda path: next(listings))
    assert integrity_workers.fork_is_safe()
    # A thread that stays listed past the wait makes forking unsafe.
    monkeypatch.setattr(integrity_workers.os, "listdir", lambda path: ["1", "2"])
    assert not integrity_workers.fork_is_safe(settle_s=0.01)
    # So does a thread Python still runs, without waiting for it.
    monkeypatch.setattr(integrity_workers.threading, "active_count", lambda: 2)
    began = time.monotonic()
    assert not integrity_workers.fork_is_safe(settle_s=5.0)
    assert time.monotonic() - began < 1.0


def test_baseline_written_while_scanning_matches_the_scan(tmp_path):
    _tree(tmp_path / "tree", 300)
    validator = IntegrityValidator([tmp_path / "tree"], tmp_path / "db.sqlite",
                                   hmac_key=b"k")
    report = validator.build_baseline()
    meta, stored = read_baseline(tmp_path / "db.sqlite", b"k")
    assert report.entries == len(stored) == int(meta["entry_count"])
    rescanned = scan_paths([tmp_path / "tree"]).entries
    assert _without_atime(stored) == _without_atime(rescanned)
    assert validator.run_integrity_check().exit_status == 0
