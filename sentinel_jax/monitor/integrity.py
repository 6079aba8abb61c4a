"""File-integrity validator: baseline, check, and timestamp forgery.

Usage::

    validator = IntegrityValidator(watch_paths=["/etc", "/usr/bin"],
                                   database="baseline.sqlite")
    validator.build_baseline()
    ...
    report = validator.run_integrity_check()
    report.added, report.removed, report.changed, report.attribute_changes,
    report.forgeries, report.exit_status

``MFTIntegrityValidator`` is the reference design's name for the same class.
The reference read the NTFS Master File Table; this one is for Linux: it walks
the watched trees and records what ``statx`` and the file contents say (see
:mod:`sentinel_jax.monitor.integrity_scan`).

What is compared: content (type, SHA-256, symlink target, size of regular
files) makes a *change*; mode, owner, group, inode, device, link count, rdev,
mtime, ctime, birth time, ``statx`` attributes and extended attributes make an
*attribute change*. atime is recorded but not compared: every read moves it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from sentinel_jax.monitor.forgery import ForgeryFinding, ForgeryRules, assess_forgery
from sentinel_jax.monitor.integrity_scan import (
    FileEntry,
    ScanIssue,
    ScanOptions,
    ScanResult,
    scan_paths,
)
from sentinel_jax.monitor.integrity_store import BaselineWriter, read_baseline
from sentinel_jax.monitor.pathnames import as_bytes_path, escape_path, unescape_path

logger = logging.getLogger(__name__)

EXIT_ADDED, EXIT_REMOVED, EXIT_CHANGED, EXIT_FORGED = 1, 2, 4, 8
_ATTRIBUTE_FIELDS = ("mode", "uid", "gid", "inode", "device", "nlink", "rdev",
                     "mtime_ns", "ctime_ns", "btime_ns", "attributes", "xattrs")


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return escape_path(value)
    if isinstance(value, tuple):
        return {escape_path(name): value.hex() for name, value in value}
    return value


@dataclasses.dataclass(frozen=True)
class Change:
    """A path added, removed or changed, with the reason in words.

    ``fields`` maps each differing field to ``(baseline value, current value)``.
    """

    path: bytes
    reason: str
    fields: dict[str, tuple[Any, Any]] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"path": escape_path(self.path), "reason": self.reason,
                "fields": {name: [_json_value(old), _json_value(new)]
                           for name, (old, new) in self.fields.items()}}


def compare_entries(old: FileEntry, new: FileEntry) -> tuple[Change | None,
                                                            Change | None]:
    """The content change and the attribute change between two records."""
    content: dict[str, tuple[Any, Any]] = {}
    if old.file_type != new.file_type:
        content["file_type"] = (old.file_type, new.file_type)
    if old.link_target != new.link_target:
        content["link_target"] = (old.link_target, new.link_target)
    if new.file_type == "file" and old.size != new.size:
        content["size"] = (old.size, new.size)
    if old.sha256 and new.sha256 and (old.sha256, old.digest) != (new.sha256,
                                                                new.digest):
        content["sha256"] = (old.sha256, new.sha256)
        if old.digest != new.digest:
            content["digest"] = (old.digest, new.digest)
    attributes = {name: (getattr(old, name), getattr(new, name))
                  for name in _ATTRIBUTE_FIELDS
                  if getattr(old, name) != getattr(new, name)}
    if new.file_type != "file" and old.size != new.size:
        attributes["size"] = (old.size, new.size)
    content_change = attribute_change = None
    if content:
        words = {"file_type": "type", "link_target": "symlink target",
                 "size": "size", "sha256": "content hash", "digest": "digest method"}
        content_change = Change(new.path, "changed: " + ", ".join(
            words[name] for name in content), content)
    if attributes:
        attribute_change = Change(new.path, "attributes changed: " + ", ".join(
            name.removesuffix("_ns") for name in attributes), attributes)
    return content_change, attribute_change


@dataclasses.dataclass
class IntegrityReport:
    """What a baseline or a check found.

    ``forgeries`` holds the alarms (severity high or medium);
    ``weak_signals`` counts, by rule, the files with weak signals below the
    alarm score. Subscripting with the reference design's keys
    (``report["changes_detected"]``, ``report["spoofing_detected"]``) works.
    """

    command: str
    database: str
    watch_paths: list[bytes]
    entries: int
    added: list[Change] = dataclasses.field(default_factory=list)
    removed: list[Change] = dataclasses.field(default_factory=list)
    changed: list[Change] = dataclasses.field(default_factory=list)
    attribute_changes: list[Change] = dataclasses.field(default_factory=list)
    forgeries: list[ForgeryFinding] = dataclasses.field(default_factory=list)
    weak_signals: dict[str, int] = dataclasses.field(default_factory=dict)
    weak_files: int = 0
    unstable: int = 0
    errors: list[ScanIssue] = dataclasses.field(default_factory=list)
    skipped: list[ScanIssue] = dataclasses.field(default_factory=list)
    bytes_hashed: int = 0
    seconds: float = 0.0

    @property
    def exit_status(self) -> int:
        """AIDE-style bits: 1 added, 2 removed, 4 changed, 8 forged times."""
        return ((EXIT_ADDED if self.added else 0)
                | (EXIT_REMOVED if self.removed else 0)
                | (EXIT_CHANGED if self.changed or self.attribute_changes else 0)
                | (EXIT_FORGED if self.forgeries else 0))

    def summary(self) -> dict[str, Any]:
        seconds = max(self.seconds, 1e-9)
        return {
            "entries": self.entries, "added": len(self.added),
            "removed": len(self.removed), "changed": len(self.changed),
            "attribute_changes": len(self.attribute_changes),
            "forgeries": len(self.forgeries), "weak_signal_files": self.weak_files,
            "unstable": self.unstable,
            "errors": len(self.errors), "skipped": len(self.skipped),
            "seconds": round(self.seconds, 3),
            "entries_per_s": round(self.entries / seconds, 1),
            "mb_per_s": round(self.bytes_hashed / 1e6 / seconds, 1),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command, "database": self.database,
            "watch_paths": [escape_path(path) for path in self.watch_paths],
            "exit_status": self.exit_status, "summary": self.summary(),
            "added": [change.to_json() for change in self.added],
            "removed": [change.to_json() for change in self.removed],
            "changed": [change.to_json() for change in self.changed],
            "attribute_changes": [c.to_json() for c in self.attribute_changes],
            "forgeries": [finding.to_json() for finding in self.forgeries],
            "weak_signals": self.weak_signals,
            "errors": [issue.to_json() for issue in self.errors],
            "skipped": [issue.to_json() for issue in self.skipped],
        }

    def __getitem__(self, key: str) -> Any:
        if key == "changes_detected":
            return (len(self.added) + len(self.removed) + len(self.changed)
                    + len(self.attribute_changes))
        if key == "spoofing_detected":
            return len(self.forgeries)
        return self.to_json()[key]


class IntegrityValidator:
    """Builds a baseline of the watched paths and checks them against it.

    Linux only: records come from ``statx``, ``readlink``, extended attributes
    and SHA-256 of contents; the baseline is an SQLite file.
    """

    def __init__(self, watch_paths: Iterable[str | bytes | os.PathLike] = ("/etc",),
                 database: str | os.PathLike = "integrity_baseline.sqlite", *,
                 hmac_key: bytes | None = None,
                 scan_options: ScanOptions | None = None,
                 forgery_rules: ForgeryRules | None = None,
                 progress: bool = False):
        """Creates a validator.

        Args:
            watch_paths: files and folders to watch (str or bytes).
            database: the baseline SQLite file.
            hmac_key: signs the baseline and refuses one that does not verify.
            scan_options: walking and hashing options (default ScanOptions()).
            forgery_rules: forgery weights and tolerances (default ForgeryRules()).
            progress: show tqdm bars while scanning.

        Raises:
            ValueError: if no watch path is given or one is empty.
        """
        self.watch_paths = sorted({as_bytes_path(path) for path in watch_paths})
        if not self.watch_paths:
            raise ValueError("watch_paths is empty: expected files or folders")
        self.database = Path(database)
        self.hmac_key = hmac_key
        self.scan_options = scan_options or ScanOptions()
        self.forgery_rules = forgery_rules or ForgeryRules()
        self.progress = progress

    @classmethod
    def from_baseline(cls, database: str | os.PathLike, *,
                      hmac_key: bytes | None = None, **kwargs: Any,
                      ) -> IntegrityValidator:
        """A validator for the watch paths recorded in an existing baseline."""
        meta, _ = read_baseline(database, hmac_key)
        paths = [unescape_path(path) for path in json.loads(meta["watch_paths"])]
        return cls(paths, database, hmac_key=hmac_key, **kwargs)

    def _scan(self, sink: Callable[[list[FileEntry]], None] | None = None,
              ) -> ScanResult:
        return scan_paths(self.watch_paths, self.scan_options,
                          progress=self.progress, sink=sink)

    def _assess(self, report: IntegrityReport, entries: Iterable[FileEntry],
                baseline: dict[bytes, FileEntry], now_ns: int) -> None:
        weak = Counter()
        for entry in entries:
            finding = assess_forgery(entry, baseline.get(entry.path), now_ns,
                                     self.forgery_rules)
            if finding is None:
                continue
            if finding.alarm:
                report.forgeries.append(finding)
            else:
                report.weak_files += 1
                weak.update(signal.rule for signal in finding.signals)
        report.weak_signals = dict(sorted(weak.items()))

    def build_baseline(self) -> IntegrityReport:
        """Scans the watch paths and writes the baseline atomically.

        Entries are stored as the scan records them, so writing overlaps
        scanning; the finished file replaces the old baseline only at the end.

        Returns:
            A report with entry counts, errors and the forgery alarms already
            present (no added/removed/changed lists).
        """
        start = time.perf_counter()
        with BaselineWriter(self.database, self.hmac_key) as writer:
            result = self._scan(sink=writer.add)
            writer.commit({
                "created_ns": str(time.time_ns()), "host": socket.gethostname(),
                "watch_paths": json.dumps([escape_path(p)
                                           for p in self.watch_paths]),
            })
        report = self._report("baseline", result)
        self._assess(report, result.entries.values(), {}, time.time_ns())
        report.seconds = time.perf_counter() - start
        logger.info("baseline of %d entries written to %s", report.entries,
                    self.database)
        return report

    def _report(self, command: str, result: ScanResult) -> IntegrityReport:
        return IntegrityReport(
            command=command, database=str(self.database),
            watch_paths=list(self.watch_paths), entries=len(result.entries),
            errors=list(result.errors), skipped=list(result.skipped),
            bytes_hashed=result.bytes_hashed, seconds=result.seconds,
            unstable=sum(entry.status == "unstable"
                         for entry in result.entries.values()))

    def run_integrity_check(self) -> IntegrityReport:
        """Scans again and compares with the baseline.

        Raises:
            BaselineError: if the baseline is missing or unreadable.
            BaselineTamperedError: if its HMAC does not verify.
        """
        start = time.perf_counter()
        meta, baseline = read_baseline(self.database, self.hmac_key)
        recorded = {unescape_path(p) for p in json.loads(meta["watch_paths"])}
        if recorded != set(self.watch_paths):
            logger.warning("watch paths differ from the baseline's; entries outside "
                           "either set show as added or removed")
        result = self._scan()
        report = self._report("check", result)
        current = result.entries
        for path in sorted(current.keys() - baseline.keys()):
            entry = current[path]
            report.added.append(Change(path, f"added {entry.file_type}"))
        for path in sorted(baseline.keys() - current.keys()):
            report.removed.append(Change(path, f"removed {baseline[path].file_type}"))
        for path in sorted(current.keys() & baseline.keys()):
            old, new = baseline[path], current[path]
            if old == new:
                continue
            content, attributes = compare_entries(old, new)
            if content is not None:
                report.changed.append(content)
            if attributes is not None:
                report.attribute_changes.append(attributes)
            if old.sha256 and not new.sha256 and new.status != "ok":
                report.errors.append(ScanIssue(
                    path, f"content not verified: {new.status}: {new.note}"))
        self._assess(report, current.values(), baseline, time.time_ns())
        report.seconds = time.perf_counter() - start
        return report


# The reference design's name. It read the NTFS Master File Table; this
# validator is for Linux and reads statx, xattrs and contents instead.
MFTIntegrityValidator = IntegrityValidator


def changed_paths(changes: Sequence[Change]) -> list[bytes]:
    """The paths of ``changes``, in order (a helper for tests and scripts)."""
    return [change.path for change in changes]
