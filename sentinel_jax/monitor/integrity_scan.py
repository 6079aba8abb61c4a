"""Walk watched trees and record every entry the way AIDE, osquery, Wazuh
syscheck and Samhain do, safely on hostile trees.

Per entry: file type, size, mode, uid, gid, inode, device, link count, rdev,
atime/mtime/ctime in nanoseconds, birth time from ``statx`` (``None`` where the
filesystem has none), ``statx`` attribute bits (immutable, append-only ...),
symlink target, extended attributes, and the SHA-256 of regular files.

Rules that keep a scan safe and honest:

* paths are ``bytes`` from start to end; symlinks are recorded, never followed;
* only entries listed as regular files are opened, with ``O_NOFOLLOW |
  O_NONBLOCK | O_NOCTTY``, and ``fstat`` after ``open`` must show the same
  regular file, so a FIFO, socket or device swapped in is never read;
* a file whose size or times move while it is hashed, or that differs from its
  listing, gets no hash and the status ``unstable``;
* the walk is an explicit stack (no recursion limit) and does not enter
  ``/proc``, ``/sys`` or any other pseudo filesystem;
* entries that vanish, or cannot be read, are reported and the scan goes on.

Hashing runs in a thread pool: ``hashlib``, ``os.read`` and ``statx`` release
the GIL, so two cores hash two files at once.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import logging
import os
import stat
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

from tqdm import tqdm

from sentinel_jax.monitor.pathnames import as_bytes_path, escape_path
from sentinel_jax.monitor.statx import StatResult, lstatx

logger = logging.getLogger(__name__)

# Kernel-made trees: their contents are not files on a disk and reading some
# of them has side effects or never ends.
PSEUDO_FILESYSTEMS = frozenset({
    "proc", "sysfs", "devpts", "cgroup", "cgroup2", "securityfs", "debugfs",
    "tracefs", "pstore", "bpf", "configfs", "fusectl", "mqueue", "binfmt_misc",
    "efivarfs", "selinuxfs", "nsfs", "rpc_pipefs", "autofs", "hugetlbfs",
})
ALWAYS_SKIPPED = (b"/proc", b"/sys")

_TYPE_NAMES = {
    stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
    stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "char",
    stat.S_IFBLK: "block",
}
_OPEN_FLAGS = (os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
               | os.O_CLOEXEC)
_NOATIME = getattr(os, "O_NOATIME", 0)
_SMALL_FILE = 1 << 20
_CHUNK = 1 << 20
_BATCH_FILES = 256


class FileEntry(NamedTuple):
    """Everything recorded about one path.

    ``sha256`` is hex, or ``None`` for anything but a readable, stable regular
    file. ``digest`` names how it was computed: ``sha256`` of the bytes, or
    ``sha256-extents`` for large sparse files (a SHA-256 over the size and each
    data extent's offset, length and bytes, so holes are never read).
    ``status`` is ``ok``, ``unstable`` (changed while read) or ``unreadable``.
    A named tuple: hundreds of thousands are made per scan.
    """

    path: bytes
    file_type: str
    size: int
    mode: int
    uid: int
    gid: int
    inode: int
    device: int
    nlink: int
    rdev: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    btime_ns: int | None
    attributes: int
    link_target: bytes | None
    xattrs: tuple[tuple[bytes, bytes], ...]
    sha256: str | None
    digest: str
    status: str
    note: str


ENTRY_FIELDS = FileEntry._fields


@dataclasses.dataclass(frozen=True, slots=True)
class ScanIssue:
    """A path the scan could not record fully, and why."""

    path: bytes
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"path": escape_path(self.path), "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class ScanOptions:
    """How to walk and hash.

    Attributes:
        hash_threads: threads that stat, open and hash files.
        skip_filesystems: filesystem types never entered.
        skip_paths: extra absolute paths never entered or recorded.
        one_filesystem: stay on each root's device (``find -xdev``).
        sparse_min_bytes: files at least this big with fewer allocated blocks
            than half their size are hashed by data extent.
        xattrs: record extended attributes.
    """

    hash_threads: int = 2
    skip_filesystems: frozenset[str] = PSEUDO_FILESYSTEMS
    skip_paths: tuple[bytes, ...] = ()
    one_filesystem: bool = False
    sparse_min_bytes: int = 64 << 20
    xattrs: bool = True


@dataclasses.dataclass
class ScanResult:
    """Entries by path, what could not be recorded, and what was skipped."""

    entries: dict[bytes, FileEntry]
    errors: list[ScanIssue]
    skipped: list[ScanIssue]
    bytes_hashed: int
    seconds: float


def file_type_name(mode: int) -> str:
    """``file``, ``dir``, ``symlink``, ``fifo``, ``socket``, ``char``, ``block``."""
    return _TYPE_NAMES.get(stat.S_IFMT(mode), "unknown")


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


def _xattrs(target: int | bytes) -> tuple[tuple[bytes, bytes], ...]:
    """Extended attributes of an open fd or, unfollowed, of a path."""
    follow = not isinstance(target, bytes)
    try:
        names = os.listxattr(target, follow_symlinks=follow)
    except OSError:  # ENOTSUP, EPERM on some symlinks, vanished
        return ()
    pairs = []
    for name in sorted(names):
        try:
            value = os.getxattr(target, name, follow_symlinks=follow)
        except OSError:
            continue
        pairs.append((os.fsencode(name), value))
    return tuple(pairs)


def _hash_extents(fd: int, size: int) -> str:
    """SHA-256 over the size and each data extent: holes are never read."""
    digest = hashlib.sha256(b"sha256-extents\0" + size.to_bytes(8, "little"))
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as error:
            if error.errno == errno.ENXIO:  # only a hole is left
                break
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        digest.update(start.to_bytes(8, "little") + (end - start).to_bytes(8, "little"))
        os.lseek(fd, start, os.SEEK_SET)
        remaining = end - start
        while remaining > 0:
            count = os.readv(fd, [view[:min(remaining, _CHUNK)]])
            if count == 0:
                break
            digest.update(view[:count])
            remaining -= count
        offset = end
    return digest.hexdigest()


def _hash_stream(fd: int, size: int) -> tuple[str, int]:
    """SHA-256 of everything readable from ``fd`` and the bytes read."""
    if size < _SMALL_FILE:
        data = os.read(fd, size + 1)
        total = len(data)
        digest = hashlib.sha256(data)
        while data:  # a short read or a file that grew: read to the end
            data = os.read(fd, _CHUNK)
            total += len(data)
            digest.update(data)
        return digest.hexdigest(), total
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    total = 0
    while count := os.readv(fd, [buffer]):
        digest.update(view[:count])
        total += count
    return digest.hexdigest(), total


def _open_listed(path: bytes) -> int:
    try:
        return os.open(path, _OPEN_FLAGS | _NOATIME)
    except PermissionError:
        if not _NOATIME:
            raise
        # O_NOATIME needs ownership; retry without it.
        return os.open(path, _OPEN_FLAGS)


class _Recorder:
    """Turns a listed path into a :class:`FileEntry` (thread-safe)."""

    def __init__(self, options: ScanOptions):
        self.options = options
        self.hard_links: dict[tuple[int, ...], tuple[str, str]] = {}

    def record(self, path: bytes) -> tuple[FileEntry | None, ScanIssue | None, int]:
        """The entry at ``path``, an issue if any, and the bytes hashed."""
        try:
            listed = lstatx(path)
        except FileNotFoundError:
            return None, ScanIssue(path, "vanished between listing and reading"), 0
        except OSError as error:
            return None, ScanIssue(path, f"cannot stat: {error.strerror}"), 0
        file_type = file_type_name(listed.mode)
        if file_type == "file":
            return self._record_file(path, listed)
        link_target, status, note, issue = None, "ok", "", None
        if file_type == "symlink":
            try:
                link_target = os.readlink(path)
            except OSError as error:
                status = "unstable"
                note = f"symlink changed while read: {error.strerror}"
                issue = ScanIssue(path, note)
        xattrs = _xattrs(path) if self.options.xattrs else ()
        entry = _entry(path, listed, link_target, xattrs, None, "", status, note)
        return entry, issue, 0

    def _record_file(self, path: bytes, listed: StatResult,
                     ) -> tuple[FileEntry | None, ScanIssue | None, int]:
        xattrs: tuple[tuple[bytes, bytes], ...] = ()
        try:
            fd = _open_listed(path)
        except FileNotFoundError:
            return None, ScanIssue(path, "vanished between listing and reading"), 0
        except OSError as error:
            if error.errno == errno.ELOOP:
                note = "replaced by a symlink between listing and reading"
                status = "unstable"
            else:
                note, status = f"cannot open: {error.strerror}", "unreadable"
            if self.options.xattrs:
                xattrs = _xattrs(path)
            entry = _entry(path, listed, None, xattrs, None, "", status, note)
            return entry, ScanIssue(path, note), 0
        try:
            return self._hash_open_file(path, fd, listed)
        finally:
            os.close(fd)

    def _hash_open_file(self, path: bytes, fd: int, listed: StatResult,
                        ) -> tuple[FileEntry | None, ScanIssue | None, int]:
        opened = os.fstat(fd)
        xattrs = _xattrs(fd) if self.options.xattrs else ()
        if (not stat.S_ISREG(opened.st_mode)
                or (opened.st_dev, opened.st_ino) != (listed.device, listed.inode)):
            note = (f"replaced by a {file_type_name(opened.st_mode)} between "
                    "listing and reading; not read")
            entry = _entry(path, listed, None, xattrs, None, "", "unstable", note)
            return entry, ScanIssue(path, note), 0
        snapshot = (opened.st_size, opened.st_mtime_ns, opened.st_ctime_ns)
        if snapshot != (listed.size, listed.mtime_ns, listed.ctime_ns):
            note = "changed between listing and reading; hash discarded"
            entry = _entry(path, listed, None, xattrs, None, "", "unstable", note)
            return entry, ScanIssue(path, note), 0
        key = (listed.device, listed.inode) + snapshot
        if listed.nlink > 1 and key in self.hard_links:
            digest_name, sha = self.hard_links[key]
            entry = _entry(path, listed, None, xattrs, sha, digest_name, "ok", "")
            return entry, None, 0
        try:
            if (listed.size >= self.options.sparse_min_bytes
                    and listed.blocks * 512 < listed.size // 2):
                digest_name, sha = "sha256-extents", _hash_extents(fd, listed.size)
                read = listed.size
            else:
                digest_name = "sha256"
                sha, read = _hash_stream(fd, listed.size)
        except OSError as error:
            note = f"read failed: {error.strerror}"
            entry = _entry(path, listed, None, xattrs, None, "", "unreadable", note)
            return entry, ScanIssue(path, note), 0
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != snapshot \
                or read != listed.size:
            note = "changed while hashed; hash discarded"
            entry = _entry(path, listed, None, xattrs, None, "", "unstable", note)
            return entry, ScanIssue(path, note), read
        if listed.nlink > 1:
            self.hard_links[key] = (digest_name, sha)
        entry = _entry(path, listed, None, xattrs, sha, digest_name, "ok", "")
        return entry, None, read


def _entry(path: bytes, listed: StatResult, link_target: bytes | None,
           xattrs: tuple[tuple[bytes, bytes], ...], sha256: str | None,
           digest: str, status: str, note: str) -> FileEntry:
    return FileEntry(
        path=path, file_type=file_type_name(listed.mode), size=listed.size,
        mode=listed.mode, uid=listed.uid, gid=listed.gid, inode=listed.inode,
        device=listed.device, nlink=listed.nlink, rdev=listed.rdev,
        atime_ns=listed.atime_ns, mtime_ns=listed.mtime_ns,
        ctime_ns=listed.ctime_ns, btime_ns=listed.btime_ns,
        attributes=listed.attributes, link_target=link_target, xattrs=xattrs,
        sha256=sha256, digest=digest, status=status, note=note)


class _Walk:
    """Lists trees with an explicit stack; yields batches of paths to record."""

    def __init__(self, options: ScanOptions, recorder: _Recorder):
        self.options = options
        self.recorder = recorder
        self.skip_devices, points = pseudo_mounts(options.skip_filesystems)
        self.skip_paths = frozenset(points) | frozenset(ALWAYS_SKIPPED) | frozenset(
            as_bytes_path(path) for path in options.skip_paths)
        self.entries: dict[bytes, FileEntry] = {}
        self.errors: list[ScanIssue] = []
        self.skipped: list[ScanIssue] = []

    def _keep(self, entry: FileEntry | None, issue: ScanIssue | None) -> None:
        if entry is not None:
            self.entries[entry.path] = entry
        if issue is not None:
            self.errors.append(issue)

    def _skip_reason(self, path: bytes, device: int, root_device: int) -> str:
        if path in self.skip_paths:
            return "excluded or pseudo-filesystem mount point"
        if device in self.skip_devices:
            return "on a pseudo filesystem"
        if self.options.one_filesystem and device != root_device:
            return "on another filesystem (one_filesystem)"
        return ""

    def batches(self, roots: Iterable[bytes]) -> Iterator[list[bytes]]:
        """Records folders itself and yields the other paths in batches."""
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
            pending = deque([root])
            while pending:
                folder = pending.pop()
                entry, issue, _ = self.recorder.record(folder)
                self._keep(entry, issue)
                if entry is None or entry.file_type != "dir":
                    continue  # vanished or replaced since it was listed
                reason = self._skip_reason(folder, entry.device, root_stat.device)
                if reason:
                    del self.entries[folder]
                    self.skipped.append(ScanIssue(folder, reason))
                    continue
                try:
                    with os.scandir(folder) as listing:
                        for item in listing:
                            if item.path in self.skip_paths:
                                self.skipped.append(ScanIssue(item.path, "excluded"))
                                continue
                            try:
                                is_dir = item.is_dir(follow_symlinks=False)
                            except OSError:
                                is_dir = False
                            if is_dir:
                                pending.append(item.path)
                            else:
                                batch.append(item.path)
                                if len(batch) >= _BATCH_FILES:
                                    yield batch
                                    batch = []
                except OSError as error:
                    self.errors.append(ScanIssue(
                        folder, f"cannot list folder: {error.strerror}"))
        if batch:
            yield batch


def _record_batch(recorder: _Recorder, paths: list[bytes]) -> list[tuple]:
    return [recorder.record(path) for path in paths]


def scan_paths(roots: Iterable[str | bytes | os.PathLike], options: ScanOptions
               = ScanOptions(), *, progress: bool = False) -> ScanResult:
    """Records every entry under ``roots``.

    Args:
        roots: files or folders to watch; made absolute, never resolved.
        options: how to walk and hash.
        progress: show a tqdm bar of entries recorded.

    Returns:
        A :class:`ScanResult`; unreadable or changing entries are in ``errors``
        as well as (where they still exist) in ``entries``.
    """
    start = time.perf_counter()
    recorder = _Recorder(options)
    walk = _Walk(options, recorder)
    roots = sorted({as_bytes_path(root) for root in roots})
    bar = tqdm(unit=" files", disable=not progress, desc="scan")
    bytes_hashed = 0
    threads = max(1, options.hash_threads)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: deque[Future] = deque()

        def drain(limit: int) -> None:
            nonlocal bytes_hashed
            while len(pending) > limit:
                for entry, issue, read in pending.popleft().result():
                    walk._keep(entry, issue)
                    bytes_hashed += read
                bar.update(_BATCH_FILES)

        for batch in walk.batches(roots):
            pending.append(pool.submit(_record_batch, recorder, batch))
            drain(4 * threads)
        drain(0)
    bar.close()
    seconds = time.perf_counter() - start
    logger.info("scanned %d entries (%.1f MB hashed) in %.2f s, %d errors",
                len(walk.entries), bytes_hashed / 1e6, seconds, len(walk.errors))
    return ScanResult(walk.entries, walk.errors, walk.skipped, bytes_hashed, seconds)
