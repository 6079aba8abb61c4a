"""Listing watched trees for the integrity scan: an explicit stack (no
recursion limit), never entering ``/proc``, ``/sys`` or any other pseudo
filesystem, never following a symlink to a folder.

The walk records folders itself (it needs their device to decide whether to
enter them) and hands every other path on in batches, for the caller to
record here or in worker processes.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator

from sentinel_jax.monitor.integrity_entry import (
    PSEUDO_FILESYSTEMS,
    FileEntry,
    ScanIssue,
    ScanOptions,
)
from sentinel_jax.monitor.pathnames import as_bytes_path
from sentinel_jax.monitor.statx import lstatx

logger = logging.getLogger(__name__)

ALWAYS_SKIPPED = (b"/proc", b"/sys")

Record = tuple[FileEntry | None, ScanIssue | None, int]


def _unescape_mountinfo(field: str) -> bytes:
    # mountinfo writes space, tab, newline and backslash as \ooo octal.
    raw = field.encode("utf-8", "surrogateescape")
    out, index = bytearray(), 0
    while index < len(raw):
        if raw[index:index + 1] == b"\\" and raw[index + 1:index + 4].isdigit():
            out.append(int(raw[index + 1:index + 4], 8))
            index += 4
        else:
            out.append(raw[index])
            index += 1
    return bytes(out)


def pseudo_mounts(kinds: Iterable[str] = PSEUDO_FILESYSTEMS,
                  mountinfo: str = "/proc/self/mountinfo",
                  ) -> tuple[frozenset[int], frozenset[bytes]]:
    """Devices and mount points of the filesystems of the given types.

    Returns:
        ``(devices, mount_points)``; empty sets where ``mountinfo`` is
        unreadable (then only :data:`ALWAYS_SKIPPED` is skipped).
    """
    kinds = frozenset(kinds)
    devices, points = set(), set()
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as lines:
            for line in lines:
                fields = line.split()
                if "-" not in fields:
                    continue
                fs_type = fields[fields.index("-") + 1]
                if fs_type in kinds:
                    major, minor = fields[2].split(":")
                    devices.add(os.makedev(int(major), int(minor)))
                    points.add(_unescape_mountinfo(fields[4]))
    except OSError as error:
        logger.warning("cannot read %s (%s): skipping only %s", mountinfo,
                       error.strerror, b", ".join(ALWAYS_SKIPPED).decode())
    return frozenset(devices), frozenset(points)


class TreeWalk:
    """Lists trees with an explicit stack and yields batches of paths to record.

    Folders are recorded with ``record_folder`` and handed to ``keep`` (unless
    skipped); ``errors`` and ``skipped`` collect what the walk itself met.
    """

    def __init__(self, options: ScanOptions,
                 record_folder: Callable[[bytes], Record],
                 keep: Callable[[FileEntry | None, ScanIssue | None], None]):
        self.options = options
        self.record_folder = record_folder
        self.keep = keep
        self.skip_devices, points = pseudo_mounts(options.skip_filesystems)
        self.skip_paths = frozenset(points) | frozenset(ALWAYS_SKIPPED) | frozenset(
            as_bytes_path(path) for path in options.skip_paths)
        self.errors: list[ScanIssue] = []
        self.skipped: list[ScanIssue] = []

    def _skip_reason(self, path: bytes, device: int, root_device: int) -> str:
        if path in self.skip_paths:
            return "excluded or pseudo-filesystem mount point"
        if device in self.skip_devices:
            return "on a pseudo filesystem"
        if self.options.one_filesystem and device != root_device:
            return "on another filesystem (one_filesystem)"
        return ""

    def batches(self, roots: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
        """Walks ``roots``; yields the paths of non-folders, ``size`` at a time."""
        # TODO: paths longer than PATH_MAX (4096 bytes) fail with ENAMETOOLONG
        # and are reported as errors; walking by directory fd (openat/statx
        # relative to a dir fd) would record them too.
        batch: list[bytes] = []
        for root in roots:
            try:
                root_stat = lstatx(root)
            except OSError as error:
                self.errors.append(ScanIssue(root, f"cannot stat: {error.strerror}"))
                continue
            reason = self._skip_reason(root, root_stat.device, root_stat.device)
            if reason:
                self.skipped.append(ScanIssue(root, reason))
                continue
            if not stat.S_ISDIR(root_stat.mode):
                batch.append(root)
                continue
            pending = [root]
            while pending:
                folder = pending.pop()
                if not self._enter(folder, root_stat.device):
                    continue
                try:
                    with os.scandir(folder) as listing:
                        for item in listing:
                            path = item.path
                            if path in self.skip_paths:
                                self.skipped.append(ScanIssue(path, "excluded"))
                                continue
                            try:
                                is_dir = item.is_dir(follow_symlinks=False)
                            except OSError:
                                is_dir = False
                            if is_dir:
                                pending.append(path)
                                continue
                            batch.append(path)
                            if len(batch) >= size:
                                yield batch
                                batch = []
                except OSError as error:
                    self.errors.append(ScanIssue(
                        folder, f"cannot list folder: {error.strerror}"))
        if batch:
            yield batch

    def _enter(self, folder: bytes, root_device: int) -> bool:
        """Records ``folder``; whether it is still a folder to list."""
        entry, issue, _ = self.record_folder(folder)
        if entry is None or entry.file_type != "dir":
            self.keep(entry, issue)  # vanished or replaced since it was listed
            return False
        reason = self._skip_reason(folder, entry.device, root_device)
        if reason:
            self.skipped.append(ScanIssue(folder, reason))
            return False
        self.keep(entry, issue)
        return True
