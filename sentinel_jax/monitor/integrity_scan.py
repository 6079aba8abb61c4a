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
releases the GIL). Once a tree proves big (``ScanOptions.parallel_after``
files) and a CPU is idle, batches of its paths also go to a forked worker
(:mod:`integrity_workers`) whenever it has room, and this process records the
rest and keeps what comes back; a small tree never pays for the fork. The
cycle collector is paused during a scan: it would only walk the new tuples
again and again.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
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
from sentinel_jax.monitor.integrity_workers import (
    WorkerPool,
    fork_is_safe,
    idle_cpus,
    runnable_tasks,
)
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


# StatResult lists size ... attributes in FileEntry's order.
assert StatResult._fields[:13] == ENTRY_FIELDS[2:15]
_new_entry = tuple.__new__
_S_ISREG = stat.S_ISREG


def _entry(path: bytes, listed: StatResult, link_target: bytes | None,
           xattrs: tuple[tuple[bytes, bytes], ...], sha256: str | None,
           digest: str, status: str, note: str) -> FileEntry:
    return _new_entry(FileEntry, (path, file_type_name(listed.mode), *listed[:13],
                                  link_target, xattrs, sha256, digest, status, note))


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
        if _S_ISREG(listed.mode):
            return self.record_file(path, listed)
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

    def record_file(self, path: bytes, listed: StatResult) -> Record:
        """Records the regular file ``listed`` at ``path``: opens and hashes it."""
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
        if (not _S_ISREG(opened.st_mode) or opened.st_ino != listed.inode
                or opened.st_dev != listed.device):
            note = (f"replaced by a {file_type_name(opened.st_mode)} between "
                    "listing and reading; not read")
            return self._unstable(path, listed, xattrs, note, 0)
        size, mtime_ns, ctime_ns = listed.size, listed.mtime_ns, listed.ctime_ns
        if (opened.st_size != size or opened.st_mtime_ns != mtime_ns
                or opened.st_ctime_ns != ctime_ns):
            note = "changed between listing and reading; hash discarded"
            return self._unstable(path, listed, xattrs, note, 0)
        linked = listed.nlink > 1
        if linked:
            key = (listed.device, listed.inode, size, mtime_ns, ctime_ns)
            known = self.hard_links.get(key)
            if known is not None:
                digest_name, sha = known
                entry = _entry(path, listed, None, xattrs, sha, digest_name, "ok",
                               "")
                return entry, None, 0
        try:
            if (size >= self.options.sparse_min_bytes
                    and listed.blocks * 512 < size // 2):
                digest_name, sha = "sha256-extents", hash_extents(fd, size)
                read = size
            else:
                digest_name = "sha256"
                sha, read = _hash_stream(fd, size)
        except OSError as error:
            note = f"read failed: {error.strerror}"
            entry = _entry(path, listed, None, xattrs, None, "", "unreadable", note)
            return entry, ScanIssue(path, note), 0
        after = os.fstat(fd)
        if (after.st_size != size or after.st_mtime_ns != mtime_ns
                or after.st_ctime_ns != ctime_ns or read != size):
            return self._unstable(path, listed, xattrs,
                                  "changed while hashed; hash discarded", read)
        if linked:
            self.hard_links[key] = (digest_name, sha)
        entry = _entry(path, listed, None, xattrs, sha, digest_name, "ok", "")
        return entry, None, read

    @staticmethod
    def _unstable(path: bytes, listed: StatResult,
                  xattrs: tuple[tuple[bytes, bytes], ...], note: str,
                  read: int) -> Record:
        entry = _entry(path, listed, None, xattrs, None, "", "unstable", note)
        return entry, ScanIssue(path, note), read


class _Scan:
    """One scan: records batches here or in workers, keeps what comes back,
    feeds a sink."""

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
        self.workers: WorkerPool | None = None

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
            elif not _S_ISREG(listed.mode):
                done.append(recorder.record_listed(path, listed))
            elif listed.size < SMALL_FILE:
                done.append(recorder.record_file(path, listed))
            else:
                if self.threads is None:
                    self.threads = ThreadPoolExecutor(
                        max(1, self.options.hash_threads))
                self.large.append(self.threads.submit(
                    recorder.record_file, path, listed))
        self.keep_batch(done)

    def keep_from_workers(self, results: Iterable[tuple[list[bytes],
                                                         list[Record] | None]],
                          ) -> None:
        for paths, records in results:
            if records is None:  # the worker died: record its batch here
                self.record_here(paths)
            else:
                self.keep_batch(records)

    # TODO: while both cores of the shared 2-core machine are busy, the
    # small-file baseline stays at 2.0-2.9x AIDE against a goal of 3x (3.25x
    # with a CPU free for the worker): one process spends ~14 us of CPU per
    # file, a quarter of it binding 21 SQLite columns and an eighth in the
    # ctypes statx call, where 3x needs ~11.
    def _start_workers(self, runnable: list[int]) -> None:
        """Forks workers for the CPUs that were idle while the scan began.

        On a machine whose CPUs are all busy a worker only adds the fork, the
        copying of pages and the pipe, so none is started there.
        """
        wanted = self.options.processes - 1
        if wanted < 1 or not fork_is_safe():
            return
        busy = sorted(runnable)[len(runnable) // 2] if runnable else None
        count = min(wanted, idle_cpus(busy))
        if count < 1:
            logger.info("no idle CPU (%s runnable tasks): recording in one "
                        "process", busy)
            return
        logger.info("recording with %d worker processes (%s runnable tasks, "
                    "%d CPUs)", count, busy, len(os.sched_getaffinity(0)))
        self.workers = WorkerPool(self.recorder.record, count)

    def run(self, roots: list[bytes]) -> None:
        """Records the first files here, the rest here and in workers."""
        listed, parallel_after = 0, self.options.parallel_after
        runnable: list[int] = []  # samples of the machine's load meanwhile
        try:
            for batch in self.walk.batches(roots, _BATCH_FILES):
                if listed <= parallel_after and self.options.processes > 1:
                    tasks = runnable_tasks()
                    if tasks is not None:
                        runnable.append(tasks)
                # Once, when the tree proves big enough to pay for a fork.
                if listed <= parallel_after < listed + len(batch):
                    self._start_workers(runnable)
                listed += len(batch)
                if self.workers is not None:
                    self.keep_from_workers(self.workers.collect())
                    if self.workers.offer(batch):
                        continue
                self.record_here(batch)
            if self.workers is not None:
                self.keep_from_workers(self.workers.drain())
            for future in self.large:
                self.keep_batch([future.result()])
        except BaseException:
            if self.workers is not None:
                self.workers.close(kill=True)
                self.workers = None
            raise
        finally:
            if self.workers is not None:
                self.workers.close()
            if self.threads is not None:
                self.threads.shutdown(cancel_futures=True)
            if self.bar is not None:
                self.bar.close()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pauses Python's cycle collector while a scan runs.

    A scan allocates a handful of tuples per entry and never a reference
    cycle; collections triggered by them only walk young objects again and
    again (about 5% of a small-file baseline).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
    with _collector_paused():
        scan.run(sorted({as_bytes_path(root) for root in roots}))
        recorded = scan.entries
        # Sorting the keys alone skips comparing (path, entry) pairs.
        entries = {path: recorded[path] for path in sorted(recorded)}
    seconds = time.perf_counter() - start
    logger.info("scanned %d entries (%.1f MB hashed) in %.2f s, %d errors",
                len(entries), scan.bytes_hashed / 1e6, seconds, len(scan.errors))
    errors = scan.walk.errors + scan.errors
    return ScanResult(entries, errors, scan.walk.skipped, scan.bytes_hashed,
                      seconds)
