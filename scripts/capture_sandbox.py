"""A private mount and network namespace for recording attack demonstrations.

Real attacks write ``/etc/cron.d``, ``/usr/lib``, ``~/.ssh/authorized_keys``
and talk to other hosts; their traces carry tags (``persist_write``,
``sysbin_write``, ``socket_remote``) that a copy in a scratch folder talking
to 127.0.0.1 would not. build_captures.py therefore runs inside a namespace
(``unshare --mount --net``) where:

* ``/etc``, ``/usr``, ``/var`` and the home folder are overlay mounts: reads
  see the real files, every write lands in a temporary upper folder. The
  machine's own files are never written, and :meth:`Sandbox.reset` throws the
  writes away between recordings.
* ``/dev`` is an overlay too, holding a fake keyboard ``/dev/input/event0``
  (a regular file of key events, no device).
* the network has only its own loopback device, which also carries
  :data:`REMOTE_HOST`, a documentation address (TEST-NET-2): connections to
  it are "remote" to the tag rules yet never leave the namespace, and the
  namespace has no route anywhere else.
* ``/tmp/sentinel-capture-<pid>`` is a private tmpfs for dropped payloads.

Everything vanishes when the namespace's last process exits.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger("capture_sandbox")

REMOTE_HOST = "198.51.100.7"
INSIDE_ENV = "SENTINEL_CAPTURE_SANDBOX"
FAKE_KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\n"
            "c2VudGluZWwtanF4IGRlbW8ga2V5OiBub3QgYSByZWFsIGtleQ==\n"
            "-----END OPENSSH PRIVATE KEY-----\n")


def sandbox_available() -> bool:
    """Whether ``unshare --mount --net`` works here (root or user namespaces)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    for extra in ([], ["--map-root-user"]):
        probe = subprocess.run(["unshare", "--mount", "--net", *extra, "true"],
                               capture_output=True, check=False)
        if probe.returncode == 0:
            return True
    return False


def reexec_inside(argv: list[str]) -> int:
    """Runs this script again inside a fresh namespace; returns its status."""
    extra = [] if os.geteuid() == 0 else ["--map-root-user"]
    env = {**os.environ, INSIDE_ENV: "1"}
    command = ["unshare", "--mount", "--net", "--propagation", "private", *extra,
               sys.executable, *argv]
    return subprocess.run(command, env=env, check=False).returncode


def inside() -> bool:
    return os.environ.get(INSIDE_ENV) == "1"


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"sandbox: {' '.join(argv)} failed: {result.stderr}")


def key_events(text: str) -> bytes:
    """``struct input_event`` records (24 bytes each) typing ``text``."""
    codes = {c: 16 + i for i, c in enumerate("qwertyuiop")}
    codes.update({c: 30 + i for i, c in enumerate("asdfghjkl")})
    codes.update({c: 44 + i for i, c in enumerate("zxcvbnm")})
    records = []
    for second, char in enumerate(text):
        code = codes.get(char, 57)  # space for anything else
        for value in (1, 0):  # press, release
            records.append(struct.pack("llHHi", 1_700_000_000 + second, 0, 1,
                                       code, value))
            records.append(struct.pack("llHHi", 1_700_000_000 + second, 0, 0, 0, 0))
    return b"".join(records)


class Sandbox:
    """The overlays, the fake keyboard, the private tmp and the network.

    Call :meth:`setup` once inside the namespace, :meth:`reset` before each
    recording and :meth:`close` at the end.
    """

    def __init__(self) -> None:
        self.home = Path(os.environ.get("HOME", "/root")).resolve()
        self.overlays = [Path("/etc"), Path("/usr"), Path("/var"), self.home]
        self.scratch = Path(tempfile.mkdtemp(prefix="sentinel-sandbox-"))
        self.tmp = Path(f"/tmp/sentinel-capture-{os.getpid()}")
        self.generation = 0

    def _mount_overlay(self, target: Path) -> None:
        name = str(target).strip("/").replace("/", "_") or "root"
        upper = self.scratch / f"{name}.{self.generation}" / "upper"
        work = upper.parent / "work"
        upper.mkdir(parents=True)
        work.mkdir()
        _run("mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={target},upperdir={upper},workdir={work}", str(target))

    def setup(self) -> None:
        _run("ip", "link", "set", "lo", "up")
        _run("ip", "addr", "add", f"{REMOTE_HOST}/32", "dev", "lo")
        self._mount_overlay(Path("/dev"))
        Path("/dev/input").mkdir(exist_ok=True)
        self.tmp.mkdir(mode=0o700, exist_ok=True)
        _run("mount", "-t", "tmpfs", "-o", "mode=1777,size=256m", "tmpfs",
             str(self.tmp))
        for target in self.overlays:
            self._mount_overlay(target)
        self._seed()
        logger.info("sandbox ready: overlays on %s, remote host %s, tmp %s",
                    ", ".join(map(str, self.overlays)), REMOTE_HOST, self.tmp)

    def _seed(self) -> None:
        """Files the demonstrations find on a real host."""
        Path("/dev/input/event0").write_bytes(
            key_events("password hunter two sudo apt update") * 4)
        ssh = self.home / ".ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        (ssh / "id_ed25519").write_text(FAKE_KEY)
        (ssh / "id_ed25519").chmod(0o600)
        (self.home / ".bash_history").write_text("ls\nsudo -l\nssh admin@db\n")
        Path("/var/log/auth.log").write_text("sshd: Accepted publickey\n" * 20)
        Path("/var/log/kern.log").write_text("kernel: eth0 up\n" * 20)

    def reset(self) -> None:
        """Throws away every write to the overlaid folders since the last reset."""
        self.generation += 1
        for target in self.overlays:
            _run("umount", "-l", str(target))
            self._mount_overlay(target)
        for entry in self.tmp.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        self._seed()

    def close(self) -> None:
        for target in [*self.overlays, self.tmp, Path("/dev")]:
            subprocess.run(["umount", "-l", str(target)], capture_output=True,
                           check=False)
        shutil.rmtree(self.scratch, ignore_errors=True)
        try:
            self.tmp.rmdir()
        except OSError as error:
            logger.warning("could not remove %s: %s", self.tmp, error)
