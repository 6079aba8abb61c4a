"""Walk watched trees and record every entry the way AIDE, osquery, Wazuh
syscheck and Samhain do, safely on hostile trees and fast on big ones.

What is recorded is :class:`FileEntry` (:mod:`integrity_entry`); how trees are
listed is :mod:`integrity_walk`; how one file is opened and hashed is
:mod:`integrity_hash`. Rules that keep a scan safe and honest:

* paths are ``bytes`` from start to end; symlinks are recorded, never followed;
* only entries that ``statx`` lists as regular files are opened, with
  ``O_NOFOLLOW | O_NONBLOCK | O_NOCTTY``, and ``fstat`` after ``open`` must
  show the same regular file, so a FIFO, socket or device swapped in is never
  read;
* a file whose size or times move while it is hashed, or that differs from its
  listing, gets no hash and the status ``unstable``;
* entries that vanish, or cannot be read, are reported and the scan goes on.

Speed: per small file the scan makes six system calls (``statx``, ``open``,
``fstat``, ``flistxattr``, one ``read``, ``fstat`` after hashing) plus
``close``, with no thread hand-off. Large files go to a thread pool (hashing
releases the GIL). Optionally (``ScanOptions.processes``), once a tree proves
big its remaining paths are split across forked children that pickle their
records back; a small tree never pays for the fork.
"""

from __future__ import annotations

import errno
import logging
import os
import pickle
import stat
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from tqdm import tqdm

from sentinel_jax.monitor.integrity_entry import (
    ENTRY_FIELDS,
    PSEUDO_FILESYSTEMS,
    FileEntry,
    ScanIssue,
    ScanOptions,
    ScanResult,
    file_type_name,
)
from sentinel_jax.monitor.integrity_hash import (
    SMALL_FILE,
    hash_extents,
    open_listed,
    read_xattrs,
)
from sentinel_jax.monitor.integrity_hash import hash_stream as _hash_stream
from sentinel_jax.monitor.integrity_walk import ALWAYS_SKIPPED, TreeWalk, pseudo_mounts
from sentinel_jax.monitor.pathnames import as_bytes_path
from sentinel_jax.monitor.statx import StatResult, lstatx

__all__ = [
    "ALWAYS_SKIPPED", "ENTRY_FIELDS", "PSEUDO_FILESYSTEMS", "FileEntry",
    "ScanIssue", "ScanOptions", "ScanResult", "file_type_name", "pseudo_mounts",
    "scan_paths",
]

logger = logging.getLogger(__name__)

Record = tuple[FileEntry | None, ScanIssue | None, int]
_BATCH_FILES = 512
_VANISHED = "vanished between listing and reading"


def _entry(path: bytes, listed: StatResult, link_target: bytes | None,
           xattrs: tuple[tuple[bytes, bytes], ...], sha256: str | None,
           digest: str, status: str, note: str) -> FileEntry:
    return FileEntry(
        path, file_type_name(listed.mode), listed.size, listed.mode, listed.uid,
        listed.gid, listed.inode, listed.device, listed.nlink, listed.rdev,
        listed.atime_ns, listed.mtime_ns, listed.ctime_ns, listed.btime_ns,
        listed.attributes, link_target, xattrs, sha256, digest, status, note)


class _Recorder:
    """Turns a listed path into a :class:`FileEntry` (thread-safe)."""

    def __init__(self, options: ScanOptions):
        self.options = options
        self.hard_links: dict[tuple[int, ...], tuple[str, str]] = {}

    def listed(self, path: bytes) -> StatResult | Record:
        """What ``statx`` says about ``path``, or the record of the failure."""
        try:
            return lstatx(path)
        except FileNotFoundError:
            return None, ScanIssue(path, _VANISHED), 0
        except OSError as error:
            return None, ScanIssue(path, f"cannot stat: {error.strerror}"), 0

    def record(self, path: bytes) -> Record:
        """The entry at ``path``, an issue if any, and the bytes hashed."""
        listed = self.listed(path)
        if type(listed) is tuple:
            return listed
        return self.record_listed(path, listed)

    def record_listed(self, path: bytes, listed: StatResult) -> Record:
        """Records ``path`` as ``listed`` says it was."""
        if stat.S_ISREG(listed.mode):
            return self._record_file(path, listed)
        link_target, status, note, issue = None, "ok", "", None
        if stat.S_ISLNK(listed.mode):
            try:
                link_target = os.readlink(path)
            except OSError as error:
                status = "unstable"
                note = f"symlink changed while read: {error.strerror}"
                issue = ScanIssue(path, note)
        xattrs = read_xattrs(path) if self.options.xattrs else ()
        entry = _entry(path, listed, link_target, xattrs, None, "", status, note)
        return entry, issue, 0

    def _record_file(self, path: bytes, listed: StatResult) -> Record:
        try:
            fd = open_listed(path)
        except FileNotFoundError:
            return None, ScanIssue(path, _VANISHED), 0
        except OSError as error:
            if error.errno == errno.ELOOP:
                note = "replaced by a symlink between listing and reading"
                status = "unstable"
            else:
                note, status = f"cannot open: {error.strerror}", "unreadable"
            xattrs = read_xattrs(path) if self.options.xattrs else ()
            entry = _entry(path, listed, None, xattrs, None, "", status, note)
            return entry, ScanIssue(path, note), 0
        try:
            return self._hash_open_file(path, fd, listed)
        finally:
            os.close(fd)

    def _hash_open_file(self, path: bytes, fd: int, listed: StatResult) -> Record:
        opened = os.fstat(fd)
        xattrs = read_xattrs(fd) if self.options.xattrs else ()
        if (not stat.S_ISREG(opened.st_mode) or opened.st_ino != listed.inode
                or opened.st_dev != listed.device):
            note = (f"replaced by a {file_type_name(opened.st_mode)} between "
                    "listing and reading; not read")
            return self._unstable(path, listed, xattrs, note, 0)
        snapshot = (opened.st_size, opened.st_mtime_ns, opened.st_ctime_ns)
        if snapshot != (listed.size, listed.mtime_ns, listed.ctime_ns):
            note = "changed between listing and reading; hash discarded"
            return self._unstable(path, listed, xattrs, note, 0)
        key = (listed.device, listed.inode) + snapshot
        if listed.nlink > 1 and key in self.hard_links:
            digest_name, sha = self.hard_links[key]
            entry = _entry(path, listed, None, xattrs, sha, digest_name, "ok", "")
            return entry, None, 0
        try:
            if (listed.size >= self.options.sparse_min_bytes
                    and listed.blocks * 512 < listed.size // 2):
                digest_name, sha = "sha256-extents", hash_extents(fd, listed.size)
                read = listed.size
            else:
                digest_name = "sha256"
                sha, read = _hash_stream(fd, listed.size)
        except OSError as error:
            note = f"read failed: {error.strerror}"
            entry = _entry(path, listed, None, xattrs, None, "", "unreadable", note)
            return entry, ScanIssue(path, note), 0
        after = os.fstat(fd)
        if (after.st_size != snapshot[0] or after.st_mtime_ns != snapshot[1]
                or after.st_ctime_ns != snapshot[2] or read != listed.size):
            return self._unstable(path, listed, xattrs,
                                  "changed while hashed; hash discarded", read)
        if listed.nlink > 1:
            self.hard_links[key] = (digest_name, sha)
        entry = _entry(path, listed, None, xattrs, sha, digest_name, "ok", "")
        return entry, None, read

    @staticmethod
    def _unstable(path: bytes, listed: StatResult,
                  xattrs: tuple[tuple[bytes, bytes], ...], note: str,
                  read: int) -> Record:
        entry = _entry(path, listed, None, xattrs, None, "", "unstable", note)
        return entry, ScanIssue(path, note), read


def _fork_is_safe() -> bool:
    """Whether this process has a single thread.

    A forked child gets only the calling thread; a lock another thread held
    (JAX's pools, a progress bar's monitor) would stay locked in it forever.
    """
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def _record_in_child(recorder: _Recorder, paths: list[bytes]) -> tuple[int, int]:
    """Forks a child that records ``paths`` and pickles the records to a pipe.

    Returns:
        ``(pid, read end of the pipe)``.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        status = 1
        try:
            os.close(read_end)
            payload = pickle.dumps([recorder.record(path) for path in paths],
                                   pickle.HIGHEST_PROTOCOL)
            with open(write_end, "wb") as stream:
                stream.write(payload)
            status = 0
        finally:
            os._exit(status)  # no atexit handlers, no flushing parent buffers
    os.close(write_end)
    return pid, read_end


def _collect_child(pid: int, read_end: int) -> list[Record] | None:
    """The child's records, or ``None`` if it failed."""
    with open(read_end, "rb") as stream:
        payload = stream.read()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        return None
    return pickle.loads(payload)


class _Scan:
    """One scan: dispatches batches, keeps what comes back, feeds a sink."""

    def __init__(self, options: ScanOptions, progress: bool,
                 sink: Callable[[list[FileEntry]], None] | None):
        self.options = options
        self.recorder = _Recorder(options)
        self.sink = sink
        self.entries: dict[bytes, FileEntry] = {}
        self.errors: list[ScanIssue] = []
        self.bytes_hashed = 0
        # A disabled tqdm still starts its monitor thread, which would rule
        # out forking workers.
        self.bar = tqdm(unit=" files", desc="scan") if progress else None
        self.walk = TreeWalk(options, self.recorder.record, self.keep)
        self.threads: ThreadPoolExecutor | None = None
        self.large: list[Future] = []

    def keep(self, entry: FileEntry | None, issue: ScanIssue | None) -> None:
        if entry is not None and entry.path not in self.entries:
            self.entries[entry.path] = entry
            if self.sink is not None:
                self.sink([entry])
        if issue is not None:
            self.errors.append(issue)

    def keep_batch(self, records: Iterable[Record]) -> None:
        entries, fresh = self.entries, []
        for entry, issue, read in records:
            if entry is not None and entry.path not in entries:
                entries[entry.path] = entry
                fresh.append(entry)
            if issue is not None:
                self.errors.append(issue)
            self.bytes_hashed += read
        if self.sink is not None and fresh:
            self.sink(fresh)
        if self.bar is not None:
            self.bar.update(len(fresh))

    def record_here(self, paths: list[bytes]) -> None:
        """Records small files on the spot and large ones in threads."""
        recorder, done = self.recorder, []
        for path in paths:
            listed = recorder.listed(path)
            if type(listed) is tuple:
                done.append(listed)
            elif stat.S_ISREG(listed.mode) and listed.size >= SMALL_FILE:
                if self.threads is None:
                    self.threads = ThreadPoolExecutor(
                        max(1, self.options.hash_threads))
                self.large.append(self.threads.submit(
                    recorder.record_listed, path, listed))
            else:
                done.append(recorder.record_listed(path, listed))
        self.keep_batch(done)

    def run(self, roots: list[bytes]) -> None:
        """Records the first files here; splits a big tree across processes."""
        rest: list[bytes] = []
        listed = 0
        try:
            for batch in self.walk.batches(roots, _BATCH_FILES):
                if listed < self.options.parallel_after:
                    self.record_here(batch)
                else:
                    rest.extend(batch)
                listed += len(batch)
            self._record_rest(rest)
            for future in self.large:
                self.keep_batch([future.result()])
        finally:
            if self.threads is not None:
                self.threads.shutdown(cancel_futures=True)
            if self.bar is not None:
                self.bar.close()

    def _record_rest(self, paths: list[bytes]) -> None:
        """Records ``paths`` in ``processes`` processes, this one included.

        Each process takes every n-th run of ``_BATCH_FILES`` paths, so a
        folder of large files does not all land on one of them.
        """
        count = self.options.processes
        if count < 2 or len(paths) < 2 * _BATCH_FILES or not _fork_is_safe():
            self.record_here(paths)
            return
        runs = [paths[start:start + _BATCH_FILES]
                for start in range(0, len(paths), _BATCH_FILES)]
        shares = [[path for run in runs[index::count] for path in run]
                  for index in range(count)]
        children = [(share, _record_in_child(self.recorder, share))
                    for share in shares[1:]]
        self.record_here(shares[0])
        for share, (pid, read_end) in children:
            records = _collect_child(pid, read_end)
            if records is None:
                logger.warning("a scan worker failed; recording its %d paths here",
                               len(share))
                self.record_here(share)
            else:
                self.keep_batch(records)


def scan_paths(roots: Iterable[str | bytes | os.PathLike],
               options: ScanOptions | None = None, *, progress: bool = False,
               sink: Callable[[list[FileEntry]], None] | None = None,
               ) -> ScanResult:
    """Records every entry under ``roots``.

    Args:
        roots: files or folders to watch; made absolute, never resolved.
        options: how to walk and hash (default ``ScanOptions()``).
        progress: show a tqdm bar of entries recorded.
        sink: called with each batch of new entries as they are recorded (a
            baseline writer stores them while the scan goes on).

    Returns:
        A :class:`ScanResult` with entries sorted by path; unreadable or
        changing entries are in ``errors`` as well as (where they still exist)
        in ``entries``.
    """
    start = time.perf_counter()
    scan = _Scan(options or ScanOptions(), progress, sink)
    scan.run(sorted({as_bytes_path(root) for root in roots}))
    entries = dict(sorted(scan.entries.items()))
    seconds = time.perf_counter() - start
    logger.info("scanned %d entries (%.1f MB hashed) in %.2f s, %d errors",
                len(entries), scan.bytes_hashed / 1e6, seconds, len(scan.errors))
    errors = scan.walk.errors + scan.errors
    return ScanResult(entries, errors, scan.walk.skipped, scan.bytes_hashed,
                      seconds)
