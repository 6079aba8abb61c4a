"""Running the native strace reader and reading its binary records.

The reader (``templates/reader.rs``) reads strace text on its stdin and
writes fixed-size records (:data:`RECORD_DTYPE`) on its stdout: one per
completed call (pid, process serial, raw name index, tag mask, timestamp)
and a few for what the monitor needs besides (raw names, successful
``execve`` program names, clones, exits, line counts). :class:`NativeReader`
runs it as a subprocess over a log file and hands out the records in large
blocks as numpy structured arrays, while the reader parses ahead on another
core.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

logger = logging.getLogger(__name__)

CALL, NAME, PROGRAM, EXEC, SPAWN, FINISHED, STATS = range(1, 8)
RECORD_BYTES = 48
TEXT_BYTES = 40
RECORD_DTYPE = np.dtype([
    ("kind", "u1"), ("length", "u1"), ("last", "u1"), ("spare", "u1"),
    ("name", "<u4"), ("tags", "<u4"), ("spare2", "<u4"), ("pid", "<i8"),
    ("serial", "<u8"), ("time", "<f8"), ("value", "<i8")])
# The text parts of NAME and PROGRAM records.
TEXT_DTYPE = np.dtype([("head", "V8"), ("text", "u1", (TEXT_BYTES,))])
_BLOCK_BYTES = RECORD_BYTES * 32_768
_PIPE_BYTES = 1 << 20
assert RECORD_DTYPE.itemsize == TEXT_DTYPE.itemsize == RECORD_BYTES


def record_texts(records: np.ndarray, rows: np.ndarray) -> list[bytes]:
    """The text bytes of the ``NAME``/``PROGRAM`` records at ``rows``, one
    ``bytes`` per record (a text spans the records up to its ``last``)."""
    texts = records.view(TEXT_DTYPE)["text"][rows]
    lengths = records["length"][rows]
    return [texts[i, :lengths[i]].tobytes() for i in range(len(rows))]


class NativeReader:
    """The native reader over one strace log; iterate for record blocks.

    Args:
        binary: the built reader (:func:`~sentinel_jax.data.native.build.
            reader_binary`).
        log: a strace log (``.gz`` is decompressed on the way in).

    Use as a context manager: leaving it stops the reader.
    """

    def __init__(self, binary: str | os.PathLike[str], log: str | os.PathLike[str]
                 ) -> None:
        self.log = Path(log)
        if not self.log.is_file():
            raise FileNotFoundError(f"log file not found: {self.log}")
        self._feeder: threading.Thread | None = None
        compressed = self.log.suffix == ".gz"
        source: IO[bytes] | int
        source = subprocess.PIPE if compressed else self.log.open("rb")
        try:
            # Its own process group: Ctrl-C goes to the monitor, which then
            # stops the reader, not to both at once.
            self.process = subprocess.Popen(
                [str(binary)], stdin=source, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, process_group=0)
        finally:
            if not compressed:
                source.close()
        stdout = self.process.stdout
        with contextlib.suppress(AttributeError, OSError):
            import fcntl

            fcntl.fcntl(stdout.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        if compressed:
            self._feeder = threading.Thread(target=self._feed_gzip, daemon=True)
            self._feeder.start()

    def _feed_gzip(self) -> None:
        stdin = self.process.stdin
        try:
            with gzip.open(self.log, "rb") as text:
                shutil.copyfileobj(text, stdin, 1 << 20)
        except (OSError, EOFError, gzip.BadGzipFile) as error:
            logger.warning("%s: reading stopped early: %s", self.log, error)
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        """Blocks of records (``RECORD_DTYPE [records]``), in order."""
        stdout = self.process.stdout
        carry = b""
        while True:
            data = stdout.read(_BLOCK_BYTES)
            if not data:
                break
            if carry:
                data = carry + data
            whole = len(data) - len(data) % RECORD_BYTES
            carry = data[whole:]
            if whole:
                yield np.frombuffer(data, RECORD_DTYPE, whole // RECORD_BYTES)
        status = self.process.wait()
        if status != 0:
            message = self.process.stderr.read().decode(errors="replace").strip()
            logger.warning("native reader exited with status %d: %s", status,
                           message or "(no message)")

    def close(self) -> None:
        """Stops the reader (if still running) and reaps it."""
        process = self.process
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdout, process.stderr, process.stdin):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self._feeder is not None:
            self._feeder.join(timeout=5)

    def __enter__(self) -> NativeReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
