"""Running programs under strace: shared by record_profiles.py and
build_captures.py.

A :class:`Tracer` holds strace's flags and runs a command, or starts a
server, under them. Recipes that record a program call :func:`current_tracer`
so one recipe serves both scripts: record_profiles.py records with its own
flags, build_captures.py swaps in the live monitor's flags with
:func:`use_tracer`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import http.server
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sentinel_jax.monitor.strace_session import STRACE_FLAGS


@dataclass(frozen=True)
class Tracer:
    """strace with fixed flags.

    Attributes:
        flags: strace's flags, ``-o LOG`` excepted; ``-f`` is dropped for a
            run that must not follow children.
        env: variables added to every traced command's environment.
    """

    flags: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    def command(self, log: Path, argv: Sequence[str],
                follow: bool = True) -> list[str]:
        """The strace command line that records ``argv`` into ``log``."""
        flags = [flag for flag in self.flags if follow or flag != "-f"]
        return ["strace", *flags, "-o", str(log), "--", *argv]

    def _env(self, env: dict[str, str] | None) -> dict[str, str] | None:
        if not self.env:
            return env
        return {**(env if env is not None else os.environ), **dict(self.env)}

    def run(self, log: Path, argv: Sequence[str], cwd: Path, *,
            follow: bool = True, env: dict[str, str] | None = None,
            timeout: float = 60.0, stdin: str | None = None) -> int:
        """Runs ``argv`` under strace to the end; returns its exit status.

        Raises:
            RuntimeError: when strace wrote no log (it could not start).
        """
        log.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(self.command(log, argv, follow), cwd=cwd,
                                env=self._env(env), input=stdin, text=True,
                                capture_output=True, timeout=timeout, check=False)
        if not log.exists():
            raise RuntimeError(f"{' '.join(argv)} failed under strace: "
                               f"{result.stderr[-400:]}")
        return result.returncode

    def start(self, log: Path, argv: Sequence[str], cwd: Path,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        """Starts ``argv`` (a server) under strace in its own process group."""
        log.parent.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(self.command(log, argv), cwd=cwd,
                                env=self._env(env), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)


def stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Interrupts a process group started by :meth:`Tracer.start`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# record_profiles.py records with the live monitor's own flags (-f -q -ttt
# -yy -s 256): -yy names every descriptor's file or socket, which changes the
# tags of reads, writes and socket calls, so profiles fitted on anything else
# would describe events the monitor never sees.
PROFILE_TRACER = Tracer(STRACE_FLAGS)
_CURRENT: contextvars.ContextVar[Tracer] = contextvars.ContextVar(
    "tracer", default=PROFILE_TRACER)


def current_tracer() -> Tracer:
    """The tracer recipes record with (:data:`PROFILE_TRACER` by default)."""
    return _CURRENT.get()


@contextlib.contextmanager
def use_tracer(tracer: Tracer) -> Iterator[Tracer]:
    """Makes ``tracer`` the current one inside the ``with`` block."""
    token = _CURRENT.set(tracer)
    try:
        yield tracer
    finally:
        _CURRENT.reset(token)


def write_files(folder: Path, count: int, size: int) -> None:
    """``count`` text files of about ``size`` bytes (and a ``.tmp`` each)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(count * 7919 + size)
    for index in range(count):
        words = rng.choice(["alpha", "beta", "gamma", "delta", "error", "ok"],
                           size=max(size // 6, 1))
        (folder / f"file{index}.txt").write_text(" ".join(words) + "\n")
        (folder / f"junk{index}.tmp").write_text("x")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at ``host``."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _listen_once(host: str, port: int, reply: bytes,
                 ready: threading.Event) -> None:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, port))
        server.listen(1)
        server.settimeout(20)
        ready.set()
        try:
            connection, _ = server.accept()
        except TimeoutError:
            return
        with connection:
            connection.settimeout(5)
            try:
                connection.sendall(reply)
                while connection.recv(4096):
                    pass
            except OSError:
                pass


def with_listener(reply: bytes, run: Callable[[int], None],
                  host: str = "127.0.0.1") -> None:
    """Runs ``run(port)`` while a thread accepts one connection on ``port``,
    sends ``reply`` and reads until the peer closes."""
    port = free_port(host)
    ready = threading.Event()
    thread = threading.Thread(target=_listen_once,
                              args=(host, port, reply, ready), daemon=True)
    thread.start()
    ready.wait(5)
    try:
        run(port)
    finally:
        thread.join(30)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_http(handler: Callable[..., http.server.BaseHTTPRequestHandler],
               host: str = "127.0.0.1") -> Iterator[int]:
    """An untraced threaded HTTP server on ``host``; yields its port."""
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def serving(folder: Path, host: str = "127.0.0.1"
            ) -> contextlib.AbstractContextManager[int]:
    """An untraced HTTP server on ``host`` serving ``folder``; yields its port.

    For recordings of clients: only the client runs under strace.
    """
    return serve_http(functools.partial(_QuietHandler, directory=str(folder)), host)
