"""The integrity scan on hostile and odd trees: each case AIDE, osquery,
Wazuh syscheck and Samhain must survive, with what we record for it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentinel_jax.monitor import integrity_scan
from sentinel_jax.monitor.integrity import IntegrityValidator
from sentinel_jax.monitor.integrity_scan import ScanOptions, pseudo_mounts, scan_paths
from sentinel_jax.monitor.pathnames import escape_path, unescape_path


def _b(path) -> bytes:
    return os.fsencode(path)


@pytest.fixture
def opened(monkeypatch):
    """Every path the scanner opens."""
    paths: list[bytes] = []
    real_open = os.open

    def spy(path, flags, *args, **kwargs):
        paths.append(path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(integrity_scan.os, "open", spy)
    return paths


def test_symlinks_are_recorded_never_followed(tmp_path, opened):
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "inside").write_bytes(b"x")
    os.symlink("loop_b", tmp_path / "loop_a")
    os.symlink("loop_a", tmp_path / "loop_b")
    os.symlink("missing", tmp_path / "dangling")
    os.symlink("/proc/self/mem", tmp_path / "to_proc")
    os.symlink("target", tmp_path / "to_dir")
    result = scan_paths([tmp_path])
    assert result.errors == []
    for name, target in [("loop_a", b"loop_b"), ("dangling", b"missing"),
                         ("to_proc", b"/proc/self/mem"), ("to_dir", b"target")]:
        entry = result.entries[_b(tmp_path / name)]
        assert entry.file_type == "symlink" and entry.link_target == target
    # Nothing reached through the directory symlink.
    assert not any(b"/to_dir/" in path for path in result.entries)
    assert opened == [_b(tmp_path / "target" / "inside")]


def test_fifos_sockets_and_devices_are_never_opened(tmp_path, opened):
    os.mkfifo(tmp_path / "fifo")
    server = socket.socket(socket.AF_UNIX)
    server.bind(os.fsdecode(tmp_path / "sock"))
    kinds = {"fifo": "fifo", "sock": "socket"}
    if os.geteuid() == 0:
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        kinds["null"] = "char"
    try:
        result = scan_paths([tmp_path])
    finally:
        server.close()
    for name, kind in kinds.items():
        entry = result.entries[_b(tmp_path / name)]
        assert entry.file_type == kind and entry.sha256 is None
    assert opened == []
    if "null" in kinds:
        assert result.entries[_b(tmp_path / "null")].rdev == os.makedev(1, 3)


def _race(monkeypatch, victim: bytes, action):
    """Runs ``action`` right after the scanner stats ``victim``."""
    real = integrity_scan.lstatx

    def racing(path):
        listed = real(path)
        if path == victim:
            action()
        return listed

    monkeypatch.setattr(integrity_scan, "lstatx", racing)


def test_file_vanished_between_listing_and_reading(tmp_path, monkeypatch):
    victim = tmp_path / "gone"
    victim.write_bytes(b"soon gone")
    (tmp_path / "kept").write_bytes(b"kept")
    _race(monkeypatch, _b(victim), victim.unlink)
    result = scan_paths([tmp_path])
    assert _b(victim) not in result.entries
    assert _b(tmp_path / "kept") in result.entries
    assert [issue.reason for issue in result.errors] == [
        "vanished between listing and reading"]


@pytest.mark.parametrize("replacement", ["fifo", "symlink", "file"])
def test_file_replaced_between_listing_and_reading(tmp_path, monkeypatch,
                                                   replacement):
    victim = tmp_path / "victim"
    victim.write_bytes(b"original")
    swap = tmp_path / "swap"

    def replace():
        if replacement == "fifo":
            os.mkfifo(swap)  # opening it for reading would block forever
        elif replacement == "symlink":
            os.symlink("/etc/shadow", swap)
        else:
            swap.write_bytes(b"impostor")
        os.replace(swap, victim)

    _race(monkeypatch, _b(victim), replace)
    entry = scan_paths([tmp_path]).entries[_b(victim)]
    assert entry.status == "unstable" and entry.sha256 is None
    assert "between listing and reading" in entry.note


def test_file_changing_while_hashed_is_unstable(tmp_path, monkeypatch):
    victim = tmp_path / "log"
    victim.write_bytes(b"a" * 4096)
    real = integrity_scan._hash_stream

    def hash_while_appending(fd, size):
        digest = real(fd, size)
        with open(victim, "ab") as stream:  # a writer gets in mid-hash
            stream.write(b"more")
        return digest

    monkeypatch.setattr(integrity_scan, "_hash_stream", hash_while_appending)
    result = scan_paths([tmp_path])
    entry = result.entries[_b(victim)]
    assert entry.status == "unstable" and entry.sha256 is None
    assert entry.note == "changed while hashed; hash discarded"
    assert [issue.path for issue in result.errors] == [_b(victim)]


def test_file_changing_under_a_real_writer_is_never_misrecorded(tmp_path):
    import threading

    victim = tmp_path / "growing"
    victim.write_bytes(os.urandom(8 << 20))
    stop = threading.Event()

    def writer():
        with open(victim, "ab") as stream:
            while not stop.is_set():
                stream.write(b"x")
                stream.flush()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        entries = [scan_paths([victim]).entries[_b(victim)] for _ in range(3)]
    finally:
        stop.set()
        thread.join()
    for entry in entries:
        # Either a consistent snapshot or marked unstable; never a torn hash.
        assert entry.status == "unstable" or entry.sha256 is not None
    assert any(entry.status == "unstable" for entry in entries)


_SCAN_SCRIPT = """
import json, os, sys
from sentinel_jax.monitor.integrity_scan import ScanOptions, scan_paths
if os.geteuid() == 0:  # everything is imported: now become nobody
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
result = scan_paths([sys.argv[1]], ScanOptions(hash_threads=1))
print(json.dumps({
    "errors": [issue.to_json() for issue in result.errors],
    "entries": {os.fsdecode(e.path): [e.status, e.sha256]
                for e in result.entries.values()}}))
"""


def _scan_as_nobody(root) -> dict:
    """Scans ``root`` in a child process without root's privileges.

    A fresh interpreter, not a fork: forking a process that runs JAX's
    threads can deadlock the child.
    """
    result = subprocess.run([sys.executable, "-c", _SCAN_SCRIPT, str(root)],
                            capture_output=True, text=True, check=True,
                            timeout=120)
    return json.loads(result.stdout)


def test_permission_denied_is_reported_and_scan_goes_on():
    # pytest's own temporary folders are private to root: the unprivileged
    # child needs a tree it can reach, so this one lives in /tmp directly.
    top = Path(tempfile.mkdtemp(prefix="sentinel-perm-"))
    root = top / "perm"
    (root / "closed").mkdir(parents=True)
    (root / "closed" / "hidden").write_bytes(b"h")
    (root / "secret").write_bytes(b"s")
    (root / "open").write_bytes(b"o")
    os.chmod(top, 0o755)
    os.chmod(root / "closed", 0o000)
    os.chmod(root / "secret", 0o000)
    try:
        out = _scan_as_nobody(root)
    finally:
        os.chmod(root / "closed", 0o755)
        shutil.rmtree(top)
    reasons = {error["path"]: error["reason"] for error in out["errors"]}
    assert reasons[str(root / "closed")].startswith("cannot list folder")
    assert reasons[str(root / "secret")].startswith("cannot open")
    assert out["entries"][str(root / "secret")] == ["unreadable", None]
    assert out["entries"][str(root / "open")][0] == "ok"
    assert str(root / "closed" / "hidden") not in out["entries"]


def test_hard_links_share_inode_and_link_count_changes_are_seen(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "one").write_bytes(b"shared")
    os.link(tree / "one", tree / "two")
    validator = IntegrityValidator([tree], tmp_path / "db.sqlite")
    validator.build_baseline()
    one, two = (scan_paths([tree]).entries[_b(tree / name)] for name in ("one", "two"))
    assert one.inode == two.inode and one.nlink == two.nlink == 2
    assert one.sha256 == two.sha256 is not None
    os.link(tree / "one", tmp_path / "outside")  # a third name, elsewhere
    report = validator.run_integrity_check()
    nlink = {change.path: change.fields["nlink"] for change in report.attribute_changes}
    assert nlink == {_b(tree / "one"): (2, 3), _b(tree / "two"): (2, 3)}


def test_sparse_huge_file_is_hashed_by_extent(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    huge = tree / "huge"
    with open(huge, "wb") as stream:
        stream.write(b"head")
        stream.seek(1 << 40)  # 1 TiB, almost all hole
        stream.write(b"tail")
    validator = IntegrityValidator([tree], tmp_path / "db.sqlite")
    validator.build_baseline()
    entry = scan_paths([huge]).entries[_b(huge)]
    assert entry.size == (1 << 40) + 4
    assert entry.digest == "sha256-extents" and entry.status == "ok"
    assert validator.run_integrity_check().changed == []
    with open(huge, "r+b") as stream:
        stream.seek(1 << 39)
        stream.write(b"middle")
    report = validator.run_integrity_check()
    assert [change.path for change in report.changed] == [_b(huge)]


def test_odd_names_stay_bytes_and_are_escaped(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    names = [b"bad\xff\xfe", b"new\nline", b"esc\x1b[31mred", b"back\\slash",
             b"tab\there", "caf\u00e9".encode()]
    for name in names:
        with open(os.path.join(_b(tree), name), "wb") as stream:
            stream.write(name)
    validator = IntegrityValidator([tree], tmp_path / "db.sqlite")
    validator.build_baseline()
    for name in names:
        os.unlink(os.path.join(_b(tree), name))
    report = validator.run_integrity_check().to_json()
    shown = [item["path"] for item in report["removed"]]
    assert sorted(unescape_path(path) for path in shown) == sorted(
        os.path.join(_b(tree), name) for name in names)
    text = json.dumps(report)
    assert "\\n" in text and "\x1b" not in text
    assert all("\n" not in path and "\x1b" not in path for path in shown)
    assert escape_path(b"caf\xc3\xa9") == "caf\u00e9"


@given(st.binary(max_size=64))
def test_escape_path_round_trips_and_is_one_printable_line(raw):
    shown = escape_path(raw)
    assert unescape_path(shown) == raw
    assert all(char.isprintable() for char in shown)


def _remove_chain(top: bytes) -> None:
    """Removes a chain of nested ``d`` folders without recursion."""
    bottom = top
    while os.path.isdir(os.path.join(bottom, b"d")):
        bottom = os.path.join(bottom, b"d")
    while True:
        for name in os.listdir(bottom):
            os.unlink(os.path.join(bottom, name))
        os.rmdir(bottom)
        if bottom == top:
            return
        bottom = os.path.dirname(bottom)


def test_deep_tree_has_no_recursion_limit(tmp_path):
    depth = sys.getrecursionlimit() + 200
    top = os.path.join(_b(tmp_path), b"d")
    deep = top
    try:  # pytest's recursive clean-up could not remove this tree
        os.mkdir(deep)
        for _ in range(depth - 1):  # os.makedirs would recurse too deep
            deep = os.path.join(deep, b"d")
            os.mkdir(deep)
        with open(os.path.join(deep, b"leaf"), "wb") as stream:
            stream.write(b"bottom")
        result = scan_paths([tmp_path])
    finally:
        _remove_chain(top)
    assert result.errors == []
    assert result.entries[os.path.join(deep, b"leaf")].sha256 is not None
    assert len(result.entries) == depth + 2


def test_pseudo_filesystems_are_skipped(tmp_path):
    (tmp_path / "file").write_bytes(b"f")
    result = scan_paths([tmp_path, "/proc", "/sys"])
    skipped = {issue.path for issue in result.skipped}
    assert {b"/proc", b"/sys"} <= skipped
    assert all(path.startswith(_b(tmp_path)) for path in result.entries)
    devices, points = pseudo_mounts()
    if os.path.exists("/proc/self/mountinfo"):
        assert b"/proc" in points and os.stat("/proc").st_dev in devices


def test_pseudo_mount_inside_a_tree_is_not_entered(tmp_path):
    (tmp_path / "fake_proc").mkdir()
    (tmp_path / "fake_proc" / "status").write_bytes(b"x")
    info = tmp_path / "mountinfo"
    mount_point = os.fsdecode(tmp_path / "fake_proc").replace(" ", "\\040")
    device = os.stat(tmp_path / "fake_proc").st_dev
    info.write_text(f"36 25 {os.major(device) + 1000}:{os.minor(device)} / "
                    f"{mount_point} rw - proc proc rw\n")
    devices, points = pseudo_mounts(mountinfo=str(info))
    assert points == {_b(tmp_path / "fake_proc")}
    options = ScanOptions(skip_paths=tuple(points))
    result = scan_paths([tmp_path], options)
    assert _b(tmp_path / "fake_proc" / "status") not in result.entries
    assert _b(tmp_path / "mountinfo") in result.entries
