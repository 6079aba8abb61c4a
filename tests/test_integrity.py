"""File-integrity validator: records, baseline store, check, forgery, CLI."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys

import pytest

from sentinel_jax.monitor import MFTIntegrityValidator
from sentinel_jax.monitor.forgery import ForgeryRules, assess_forgery
from sentinel_jax.monitor.integrity import IntegrityValidator, changed_paths
from sentinel_jax.monitor.integrity_scan import FileEntry, ScanOptions, scan_paths
from sentinel_jax.monitor.integrity_store import (
    BaselineError,
    BaselineTamperedError,
    read_baseline,
    write_baseline,
)

SECOND = 1_000_000_000


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "watched"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"alpha\n")
    (root / "sub" / "b.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    os.symlink("a.txt", root / "link")
    return root


def _validator(tree, tmp_path, **kwargs):
    return IntegrityValidator([tree], tmp_path / "base.sqlite", **kwargs)


def test_records_every_field(tree):
    os.setxattr(tree / "a.txt", "user.origin", b"tests")
    result = scan_paths([tree])
    assert result.errors == []
    entry = result.entries[os.fsencode(tree / "a.txt")]
    info = os.lstat(tree / "a.txt")
    assert entry.file_type == "file" and entry.size == 6
    assert (entry.mode, entry.uid, entry.gid) == (info.st_mode, info.st_uid,
                                                   info.st_gid)
    assert (entry.inode, entry.device, entry.nlink) == (info.st_ino, info.st_dev, 1)
    assert (entry.mtime_ns, entry.ctime_ns) == (info.st_mtime_ns, info.st_ctime_ns)
    assert entry.btime_ns is None or entry.btime_ns <= entry.ctime_ns
    assert entry.sha256 == hashlib.sha256(b"alpha\n").hexdigest()
    assert entry.xattrs == ((b"user.origin", b"tests"),)
    link = result.entries[os.fsencode(tree / "link")]
    assert link.file_type == "symlink" and link.link_target == b"a.txt"
    assert link.sha256 is None
    big = result.entries[os.fsencode(tree / "sub" / "b.bin")]
    assert big.sha256 == hashlib.sha256(
        (tree / "sub" / "b.bin").read_bytes()).hexdigest()
    assert result.entries[os.fsencode(tree)].file_type == "dir"


def test_unchanged_tree_reports_nothing(tree, tmp_path):
    validator = _validator(tree, tmp_path)
    baseline = validator.build_baseline()
    assert baseline.entries == 5 and baseline.exit_status == 0
    report = validator.run_integrity_check()
    assert report.exit_status == 0
    assert report["changes_detected"] == 0 and report["spoofing_detected"] == 0
    assert not (report.added or report.removed or report.changed
                or report.attribute_changes or report.forgeries)


def test_added_removed_changed_and_attributes(tree, tmp_path):
    validator = MFTIntegrityValidator(watch_paths=[tree],
                                      database=tmp_path / "base.sqlite")
    validator.build_baseline()
    (tree / "new").write_bytes(b"x")
    (tree / "sub" / "b.bin").unlink()
    with open(tree / "a.txt", "ab") as stream:
        stream.write(b"beta\n")
    os.chmod(tree / "sub", 0o700)
    os.unlink(tree / "link")
    os.symlink("elsewhere", tree / "link")
    report = validator.run_integrity_check()
    assert changed_paths(report.added) == [os.fsencode(tree / "new")]
    assert changed_paths(report.removed) == [os.fsencode(tree / "sub" / "b.bin")]
    changed = {change.path: change for change in report.changed}
    assert set(changed) == {os.fsencode(tree / "a.txt"), os.fsencode(tree / "link")}
    assert "content hash" in changed[os.fsencode(tree / "a.txt")].reason
    assert "symlink target" in changed[os.fsencode(tree / "link")].reason
    attributes = {change.path: change for change in report.attribute_changes}
    assert "mode" in attributes[os.fsencode(tree / "sub")].fields
    assert report.exit_status == 1 | 2 | 4
    assert json.loads(json.dumps(report.to_json()))["exit_status"] == 7


def test_hmac_refuses_tampered_baseline(tree, tmp_path):
    key = b"correct horse battery staple"
    _validator(tree, tmp_path, hmac_key=key).build_baseline()
    database = tmp_path / "base.sqlite"
    meta, entries = read_baseline(database, key)
    assert len(entries) == 5 and meta["hmac"]
    with pytest.raises(BaselineTamperedError, match="signed"):
        read_baseline(database)
    with pytest.raises(BaselineTamperedError, match="HMAC does not verify"):
        read_baseline(database, b"wrong key")
    # An attacker edits the recorded hash to match a trojaned file.
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE entries SET sha256 = ? WHERE file_type = 'file'",
                           ("0" * 64,))
    with pytest.raises(BaselineTamperedError, match="HMAC does not verify"):
        _validator(tree, tmp_path, hmac_key=key).run_integrity_check()
    unsigned = tmp_path / "unsigned.sqlite"
    IntegrityValidator([tree], unsigned).build_baseline()
    with pytest.raises(BaselineTamperedError, match="not signed"):
        read_baseline(unsigned, key)


def test_unsigned_baseline_with_deleted_rows_is_refused(tree, tmp_path):
    _validator(tree, tmp_path).build_baseline()
    with sqlite3.connect(tmp_path / "base.sqlite") as connection:
        connection.execute("DELETE FROM entries WHERE file_type = 'symlink'")
    with pytest.raises(BaselineTamperedError, match="holds 4 entries"):
        read_baseline(tmp_path / "base.sqlite")


def test_baseline_is_written_atomically(tree, tmp_path):
    database = tmp_path / "base.sqlite"
    _validator(tree, tmp_path).build_baseline()
    before = database.read_bytes()

    def failing_entries():
        yield from scan_paths([tree]).entries.values()
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_baseline(database, failing_entries(), {"watch_paths": "[]"})
    assert database.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.sqlite", "watched"]


def test_bad_baseline_files_are_clear_errors(tmp_path):
    with pytest.raises(BaselineError, match="no baseline there"):
        read_baseline(tmp_path / "missing.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(BaselineError, match="not a readable baseline"):
        read_baseline(junk)


def _entry(**changes) -> FileEntry:
    now = 1_700_000_000 * SECOND
    fields = dict(path=b"/x", file_type="file", size=1, mode=0o100644, uid=0,
                  gid=0, inode=7, device=1, nlink=1, rdev=0, atime_ns=now + 5,
                  mtime_ns=now + 3, ctime_ns=now + 4, btime_ns=now + 1,
                  attributes=0, link_target=None, xattrs=(), sha256="aa",
                  digest="sha256", status="ok", note="")
    fields.update(changes)
    return FileEntry(**fields)


NOW = 1_700_000_100 * SECOND


def _rules(finding):
    return {signal.rule for signal in finding.signals} if finding else set()


def test_clean_timestamps_raise_nothing():
    assert assess_forgery(_entry(), _entry(), NOW) is None


@pytest.mark.parametrize("changes, rule", [
    (dict(ctime_ns=NOW - 100 * SECOND, mtime_ns=NOW - 50 * SECOND + 1),
     "ctime_before_mtime"),
    (dict(btime_ns=NOW - SECOND + 7, ctime_ns=NOW - 2 * SECOND + 3,
          mtime_ns=NOW - 3 * SECOND + 1), "ctime_before_birth"),
    (dict(atime_ns=NOW + 3600 * SECOND), "time_in_future"),
])
def test_strong_signals_alarm_alone(changes, rule):
    finding = assess_forgery(_entry(**changes), None, NOW)
    assert rule in _rules(finding)
    assert finding.alarm and finding.severity == "high"
    assert finding.reason


def test_mtime_moved_back_is_strong_on_same_inode_weak_on_replaced():
    born = NOW - 5000 * SECOND + 9
    baseline = _entry(mtime_ns=NOW - 10 * SECOND + 5, btime_ns=born)
    moved = _entry(mtime_ns=NOW - 1000 * SECOND + 5, btime_ns=born)
    assert assess_forgery(moved, baseline, NOW).severity == "high"
    replaced = moved._replace(inode=99)
    finding = assess_forgery(replaced, baseline, NOW)
    assert _rules(finding) == {"replaced_with_older_mtime"}
    assert not finding.alarm and finding.severity == "low"


def test_weak_signals_add_up():
    # What every dpkg-installed file shows: no alarm.
    packaged = _entry(mtime_ns=NOW - 9000 * SECOND, btime_ns=NOW - 10 * SECOND,
                      ctime_ns=NOW - 10 * SECOND + 7)
    finding = assess_forgery(packaged, None, NOW)
    assert _rules(finding) == {"whole_second_mtime", "mtime_before_birth"}
    assert not finding.alarm and finding.severity == "low"
    # Add content that changed under an unchanged mtime: an alarm.
    baseline = packaged._replace(sha256="bb")
    finding = assess_forgery(packaged, baseline, NOW)
    assert "content_changed_same_mtime" in _rules(finding)
    assert finding.alarm and finding.severity == "medium" and finding.score == 4
    lenient = ForgeryRules(alarm_score=10)
    assert not assess_forgery(packaged, baseline, NOW, lenient).alarm


def test_real_timestomp_is_caught(tree, tmp_path):
    validator = _validator(tree, tmp_path)
    validator.build_baseline()
    target = tree / "a.txt"
    info = os.stat(target)
    target.write_bytes(b"trojan\n")  # same size, new content
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))  # timestomp
    future = tree / "sub" / "future"
    future.write_bytes(b"x")
    os.utime(future, (2**32, 2**32))  # year 2106
    report = validator.run_integrity_check()
    findings = {finding.path: finding for finding in report.forgeries}
    assert "time_in_future" in _rules(findings[os.fsencode(future)])
    assert "ctime_before_mtime" in _rules(findings[os.fsencode(future)])
    assert changed_paths(report.changed) == [os.fsencode(target)]
    # mtime restored exactly: the content rule fires, weak on its own.
    stomped = assess_forgery(
        scan_paths([target]).entries[os.fsencode(target)],
        read_baseline(tmp_path / "base.sqlite")[1][os.fsencode(target)], NOW * 2)
    assert "content_changed_same_mtime" in _rules(stomped)
    assert report.exit_status & 8


def test_untouched_system_folder_raises_no_weak_alarm(tmp_path):
    folder = "/usr/share/zoneinfo" if os.path.isdir("/usr/share/zoneinfo") else "/etc"
    validator = IntegrityValidator([folder], tmp_path / "sys.sqlite")
    validator.build_baseline()
    report = validator.run_integrity_check()
    assert report.entries > 50
    weak_alarms = [f for f in report.forgeries
                   if not any(signal.strong for signal in f.signals)]
    assert weak_alarms == []
    assert not (report.added or report.removed or report.changed)


def _cli(*args):
    from experiments.integrity import main

    return main([*args, "--quiet"])


def test_cli_exit_bits_json_and_errors(tree, tmp_path, capsys):
    database = str(tmp_path / "cli.sqlite")
    key_file = tmp_path / "key"
    key_file.write_bytes(b"secret\n")
    assert _cli("baseline", "--db", database, str(tree),
                "--hmac-key-file", str(key_file)) == 0
    (tree / "added").write_bytes(b"1")
    report_path = tmp_path / "report.json"
    assert _cli("check", "--db", database, "--hmac-key-file", str(key_file),
                "--json", str(report_path)) == 1 | 4  # added; folder mtime moved
    report = json.loads(report_path.read_text())
    assert report["added"][0]["path"] == str(tree / "added")
    assert _cli("check", "--db", database) == 17  # signed, no key
    assert _cli("check", "--db", str(tmp_path / "none.sqlite")) == 16
    assert _cli("check") == 16  # --db missing: not 2, which means "removed"
    assert _cli("baseline", "--db", database, str(tmp_path / "nope")) == 16
    assert "error" in capsys.readouterr().err


def test_cli_runs_as_a_script(tree, tmp_path, repo_root):
    database = tmp_path / "script.sqlite"
    run = subprocess.run(
        [sys.executable, "experiments/integrity.py", "baseline", "--db",
         str(database), str(tree), "--quiet"], cwd=repo_root, capture_output=True,
        text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    os.unlink(tree / "a.txt")
    run = subprocess.run(
        [sys.executable, "experiments/integrity.py", "check", "--db", str(database)],
        cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 | 4, run.stderr
    assert "removed" in run.stdout and "a.txt" in run.stdout


def test_scan_options_threads_agree(tree):
    one = scan_paths([tree], ScanOptions(hash_threads=1)).entries
    four = scan_paths([tree], ScanOptions(hash_threads=4)).entries
    assert {p: e.sha256 for p, e in one.items()} == \
        {p: e.sha256 for p, e in four.items()}
