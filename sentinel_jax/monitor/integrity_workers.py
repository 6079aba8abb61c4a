"""Worker processes for the integrity scan: batches of paths out, records back.

A worker is this process forked while it still runs a single thread (a fork
copies only the calling thread, so a lock held by another one, such as JAX's
pools or a progress bar's monitor, would stay locked in the child forever).
It reads batches of paths from a pipe, records each path with the recorder it
inherited, and writes the records back; it exits when its pipe closes.

The parent hands a worker a batch only while the worker holds fewer than
``depth`` unanswered ones, and records every other batch itself. So the split
follows the CPU each side actually gets: on a busy machine a starved worker
just takes fewer batches, and the scan is never much slower than in one
process. Messages are an 8-byte length and a pickle; the parent's pipe ends
are non-blocking, and while a batch does not fit into a full pipe the parent
reads replies meanwhile, so neither side can wait on the other forever.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pickle
import select
import signal
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from sentinel_jax.monitor.integrity_entry import FileEntry, ScanIssue

logger = logging.getLogger(__name__)

Record = tuple[FileEntry | None, ScanIssue | None, int]
# A record as it crosses the pipe: the entry as a plain tuple, which pickles
# in a third of the time a named tuple takes.
WireRecord = tuple[tuple | None, ScanIssue | None, int]

_HEADER = struct.Struct("<Q")
_PIPE_BYTES = 1 << 20
_new_entry = tuple.__new__


def fork_is_safe(settle_s: float = 0.05) -> bool:
    """Whether this process runs a single thread, so forking it is safe.

    A thread that was just joined (a scan's hashing pool, shut down) can stay
    listed in ``/proc/self/task`` for a moment while it exits: 2 times in
    2,000 pool shutdowns on the 2-core CPU, enough to make a later scan skip
    its workers now and then. When Python itself runs no other thread, the
    listing is read again for up to ``settle_s`` seconds.
    """
    deadline = time.monotonic() + settle_s
    while True:
        try:
            tasks = len(os.listdir("/proc/self/task"))
        except OSError:
            return False
        if tasks == 1:
            return True
        if threading.active_count() > 1 or time.monotonic() >= deadline:
            return False
        time.sleep(0.001)


def runnable_tasks() -> int | None:
    """Threads runnable on the whole machine right now, this one included.

    The fourth field of ``/proc/loadavg`` (``runnable/total``); ``None``
    where it cannot be read.
    """
    try:
        with open("/proc/loadavg", "rb") as stream:
            return int(stream.read().split()[3].split(b"/")[0])
    except (OSError, IndexError, ValueError):
        return None


def idle_cpus(runnable: int | None) -> int:
    """CPUs left idle by ``runnable`` tasks (this one included) on this machine."""
    cpus = len(os.sched_getaffinity(0))
    return cpus - 1 if runnable is None else max(0, cpus - runnable)


def _widen(fd: int) -> None:
    # Fewer, longer writes; a pipe keeps 64 KiB unless asked for more.
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_exactly(fd: int, count: int) -> bytes | None:
    chunks, missing = [], count
    while missing:
        chunk = os.read(fd, min(missing, _PIPE_BYTES))
        if not chunk:
            return None
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def _serve(record: Callable[[bytes], Record], requests: int,
           replies: int) -> None:  # pragma: no cover - runs in the child
    """The worker's loop: batches of paths in, records out, until EOF."""
    while (header := _read_exactly(requests, _HEADER.size)) is not None:
        payload = _read_exactly(requests, _HEADER.unpack(header)[0])
        if payload is None:
            return
        wire = []
        for path in pickle.loads(payload):
            entry, issue, read = record(path)
            wire.append((None if entry is None else tuple(entry), issue, read))
        reply = pickle.dumps(wire, pickle.HIGHEST_PROTOCOL)
        _write_all(replies, _HEADER.pack(len(reply)) + reply)


class _Worker:
    """The parent's side of one worker: its pipes and unanswered batches."""

    def __init__(self, pid: int, requests: int, replies: int):
        self.pid = pid
        self.requests = requests  # parent writes batches here
        self.replies = replies  # and reads records here
        self.pending: deque[list[bytes]] = deque()
        self.received = bytearray()
        self.alive = True


class WorkerPool:
    """Forked workers that record batches of paths beside this process.

    Usage::

        pool = WorkerPool(recorder.record, count=1)
        for batch in batches:
            keep(pool.collect())
            if not pool.offer(batch):
                record_here(batch)
        keep(pool.drain())  # then pool.close()

    Results are ``(paths, records)`` pairs; ``records`` is ``None`` where a
    worker died, and those paths must be recorded by the caller.
    """

    def __init__(self, record: Callable[[bytes], Record], count: int,
                 depth: int = 2):
        """Forks ``count`` workers; call only when :func:`fork_is_safe`.

        Args:
            record: turns a path into a record (runs in the workers).
            count: worker processes to fork.
            depth: unanswered batches a worker may hold, one being recorded
                and the rest waiting, so it never idles between batches.
        """
        self.depth = depth
        self.workers: list[_Worker] = []
        self._done: list[tuple[list[bytes], list[Record] | None]] = []
        for _ in range(count):
            self.workers.append(self._fork(record))

    def _fork(self, record: Callable[[bytes], Record]) -> _Worker:
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        for fd in (request_write, reply_write):
            _widen(fd)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            status = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                # Earlier workers' pipes must close when the parent closes
                # them, so no other worker may hold a copy.
                for fd in [request_write, reply_read] + [
                        end for worker in self.workers
                        for end in (worker.requests, worker.replies)]:
                    os.close(fd)
                _serve(record, request_read, reply_write)
                status = 0
            finally:
                os._exit(status)  # no atexit handlers, no parent buffers flushed
        os.close(request_read)
        os.close(reply_write)
        os.set_blocking(request_write, False)
        os.set_blocking(reply_read, False)
        return _Worker(pid, request_write, reply_read)

    def offer(self, paths: list[bytes]) -> bool:
        """Hands ``paths`` to the least busy worker; ``False`` if all are full."""
        idle = [worker for worker in self.workers
                if worker.alive and len(worker.pending) < self.depth]
        if not idle:
            return False
        worker = min(idle, key=lambda item: len(item.pending))
        payload = pickle.dumps(paths, pickle.HIGHEST_PROTOCOL)
        view = memoryview(_HEADER.pack(len(payload)) + payload)
        worker.pending.append(paths)
        while view and worker.alive:
            try:
                view = view[os.write(worker.requests, view):]
            except BlockingIOError:
                # The worker is blocked on its replies: read them meanwhile.
                readable, _, _ = select.select(
                    [worker.replies], [worker.requests], [])
                if readable:
                    self._receive(worker)
            except BrokenPipeError:
                self._lost(worker)
        return True

    def collect(self) -> list[tuple[list[bytes], list[Record] | None]]:
        """The results that are back, without waiting."""
        for worker in self.workers:
            if worker.pending:
                self._receive(worker)
        done, self._done = self._done, []
        return done

    def drain(self) -> Iterator[tuple[list[bytes], list[Record] | None]]:
        """Every outstanding result, waiting for the workers as needed."""
        while True:
            yield from self.collect()
            waiting = [worker.replies for worker in self.workers
                       if worker.alive and worker.pending]
            if not waiting:
                return
            select.select(waiting, [], [])

    def close(self, *, kill: bool = False) -> None:
        """Ends the workers (at once with ``kill``) and reaps them."""
        for worker in self.workers:
            if kill and worker.alive:
                os.kill(worker.pid, signal.SIGKILL)
            for fd in (worker.requests, worker.replies):
                with contextlib.suppress(OSError):
                    os.close(fd)
            _, status = os.waitpid(worker.pid, 0)
            if status != 0 and not kill:
                logger.warning("scan worker %d exited with status %d", worker.pid,
                               status)
        self.workers = []

    def _receive(self, worker: _Worker) -> None:
        """Reads what ``worker`` has written and keeps each complete reply."""
        while True:
            try:
                chunk = os.read(worker.replies, _PIPE_BYTES)
            except BlockingIOError:
                break
            if not chunk:
                self._lost(worker)
                return
            worker.received += chunk
        received = worker.received
        while len(received) >= _HEADER.size:
            end = _HEADER.size + _HEADER.unpack_from(received)[0]
            if len(received) < end:
                break
            with memoryview(received) as view:
                wire = pickle.loads(view[_HEADER.size:end])
            del received[:end]
            records = [(None if entry is None else _new_entry(FileEntry, entry),
                        issue, read) for entry, issue, read in wire]
            self._done.append((worker.pending.popleft(), records))

    def _lost(self, worker: _Worker) -> None:
        """Hands back a dead worker's unanswered batches for the caller."""
        if worker.alive:
            logger.warning("a scan worker died; recording its %d unanswered "
                           "batches here", len(worker.pending))
        worker.alive = False
        self._done.extend((paths, None) for paths in worker.pending)
        worker.pending.clear()
