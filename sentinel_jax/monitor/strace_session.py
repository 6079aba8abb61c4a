"""Running strace: launch a command under it or attach to a pid, read its lines.

strace writes its trace into a FIFO in a private temporary folder, never into
a file that grows for as long as the run lasts, and never into the traced
command's own stdout or stderr (which the command inherits). strace opens the
FIFO close-on-exec, so the traced processes do not hold it open.

Opening a FIFO blocks until both ends are open, and strace may die before it
opens its end (a bad command line). So the reader opens its end without
blocking and keeps a writer end of its own until strace has written, or
exited; from then on, end of file means strace closed the trace.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from sentinel_jax.errors import InputError

logger = logging.getLogger(__name__)

# -f children, -q no attach/detach notes (keeps "+++ exited" lines, which tell
# the monitor a process ended), -ttt epoch timestamps, -yy what descriptors
# are (paths, socket peers) for the tags, -s 256 long enough for most paths.
STRACE_FLAGS = ("-f", "-q", "-ttt", "-yy", "-s", "256")
INSTALL_HINT = "install it with `apt-get install strace` (or your distribution's " \
    "package manager)"
_READ_SIZE = 1 << 16


class StraceUnavailableError(InputError):
    """strace is not installed or cannot be run."""


def strace_path(strace: str = "strace") -> str:
    """The full path of the strace binary.

    Raises:
        StraceUnavailableError: with the install hint, when it is not found.
    """
    found = shutil.which(strace)
    if found is None:
        raise StraceUnavailableError(f"{strace!r} not found on PATH; {INSTALL_HINT}")
    return found


def strace_command(fifo: str, *, command: Sequence[str] | None = None,
                   pid: int | None = None, strace: str = "strace",
                   extra_flags: Sequence[str] = ()) -> list[str]:
    """The strace command line that traces ``command`` or attaches to ``pid``."""
    if (command is None) == (pid is None):
        raise InputError("give either a command to run or a pid to attach to")
    argv = [strace_path(strace), *STRACE_FLAGS, *extra_flags, "-o", fifo]
    if pid is not None:
        if pid <= 0:
            raise InputError(f"--pid must be a positive process id, got {pid}")
        return [*argv, "-p", str(pid)]
    if not command:
        raise InputError("no command to run; put it after --, e.g. "
                         "monitor.py --checkpoint RUN -- tar -cf x.tar dir")
    return [*argv, "--", *command]


class StraceSession:
    """One strace process and the lines it writes.

    Use as a context manager; leaving it stops strace (and reaps it).

    Args:
        command: the command to run under strace, or
        pid: a running process to attach to (with its future children).
        strace: the strace binary.
        extra_flags: more strace flags (e.g. ``-e trace=...``).
    """

    def __init__(self, command: Sequence[str] | None = None, *,
                 pid: int | None = None, strace: str = "strace",
                 extra_flags: Sequence[str] = ()) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="sentinel-strace-"))
        self._fifo = self._folder / "trace.fifo"
        self.argv = strace_command(str(self._fifo), command=command, pid=pid,
                                   strace=strace, extra_flags=extra_flags)
        self.launches = command is not None
        self.process: subprocess.Popen | None = None
        self._reader: int | None = None
        self._keeper: int | None = None
        self._pending = b""

    def __enter__(self) -> StraceSession:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        """Creates the FIFO and starts strace."""
        os.mkfifo(self._fifo, 0o600)
        self._reader = os.open(self._fifo, os.O_RDONLY | os.O_NONBLOCK)
        self._keeper = os.open(self._fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            # strace stays in our process group: a Ctrl-C at the terminal
            # reaches it and the traced command, as with a plain strace.
            self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL)
        except OSError as error:
            self.stop()
            raise StraceUnavailableError(
                f"cannot run {self.argv[0]}: {error.strerror}; {INSTALL_HINT}"
            ) from None
        logger.info("started %s", " ".join(self.argv))

    @property
    def returncode(self) -> int | None:
        """strace's exit status once it ended (the traced command's, or
        ``-signal`` when strace was killed)."""
        return None if self.process is None else self.process.poll()

    def lines(self, idle_seconds: float = 0.2) -> Iterator[str | None]:
        """strace's lines as they come, until it closes the trace.

        Yields ``None`` whenever ``idle_seconds`` pass without a complete
        line, so the caller can do periodic work (score pending windows,
        check for Ctrl-C) while the traced program is quiet.
        """
        if self._reader is None or self.process is None:
            raise RuntimeError("start() the session first")
        while True:
            try:
                ready, _, _ = select.select([self._reader], [], [], idle_seconds)
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                ready = []
            if not ready:
                if self._keeper is not None and self.process.poll() is not None:
                    self._release_keeper()
                yield None
                continue
            try:
                chunk = os.read(self._reader, _READ_SIZE)
            except BlockingIOError:
                continue
            if not chunk:
                if self._keeper is None:
                    break
                # Nobody but our keeper holds the FIFO yet; wait for strace.
                if self.process.poll() is not None:
                    self._release_keeper()
                yield None
                continue
            if self._keeper is not None:
                self._release_keeper()
            *complete, self._pending = (self._pending + chunk).split(b"\n")
            for line in complete:
                yield line.decode("utf-8", errors="replace")
        if self._pending:
            # strace killed in the middle of a line: hand over what there is.
            pending, self._pending = self._pending, b""
            yield pending.decode("utf-8", errors="replace")

    def _release_keeper(self) -> None:
        if self._keeper is not None:
            os.close(self._keeper)
            self._keeper = None

    def stop(self, timeout: float = 5.0) -> int | None:
        """Stops strace if it still runs, reaps it, removes the FIFO.

        strace detaches from the processes it traces. A command it started
        would live on untraced, so it is sent SIGTERM too (its children are
        left to it); a process attached to with ``pid`` is left running.

        Returns:
            strace's exit status (negative: the signal that ended it).
        """
        process = self.process
        if process is not None and process.poll() is None:
            launched = _children(process.pid) if self.launches else []
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("strace ignored SIGTERM for %.0fs; killing it",
                               timeout)
                process.kill()
                process.wait()
            for child in launched:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGTERM)
        self._release_keeper()
        if self._reader is not None:
            os.close(self._reader)
            self._reader = None
        try:
            self._fifo.unlink(missing_ok=True)
            self._folder.rmdir()
        except OSError as error:
            if error.errno != errno.ENOENT:
                logger.warning("cannot remove %s: %s", self._folder, error)
        return None if process is None else process.returncode


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux ``/proc``); empty if unknown."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]
