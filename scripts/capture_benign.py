"""Everyday programs for the benign half of the capture set.

These are programs the synthetic profiles were *not* fitted on (the fitted
ones come from record_profiles.py's recipes, reused as they are), so the
capture set measures how a model generalises to ordinary work it never saw:
perl and awk text processing, checksums, curl and urllib against a loopback
server, key generation, openssl, xz and bzip2, diff and patch, process and
account listings, unit tests, python's sqlite3, local git clones, multi-file
C builds, bash functions, parallel make and threaded hashing.

A recipe takes ``(log, work, k)``: the log to write, a scratch folder and a
repeat index that varies sizes.
"""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

from capture_attacks import PYTHON
from strace_tools import current_tracer, free_port, serving, stop, write_files

Recipe = Callable[[Path, Path, int], None]


def _trace(log: Path, work: Path, argv: list[str], **kwargs) -> None:
    current_tracer().run(log, argv, work, **kwargs)


def _sh(log: Path, work: Path, script: str) -> None:
    _trace(log, work, ["sh", "-c", script])


def _py(log: Path, work: Path, code: str, *args: str) -> None:
    (work / "job.py").write_text(textwrap.dedent(code))
    _trace(log, work, [PYTHON, "job.py", *args])


def perl_report(log: Path, work: Path, k: int) -> None:
    write_files(work / "in", 3 + k, 600)
    _trace(log, work, ["perl", "-e", textwrap.dedent("""\
        my %n; for my $f (glob "in/*.txt") { open my $h, "<", $f or die;
          while (<$h>) { $n{$_}++ for split } close $h }
        open my $o, ">", "report.txt" or die;
        printf $o "%s %d\\n", $_, $n{$_} for sort keys %n; close $o;""")])


def awk_sed(log: Path, work: Path, k: int) -> None:
    rows = "\n".join(f"{i},{i % 7},item{i % 13},{i * 1.5}"
                     for i in range(200 * (k + 1)))
    (work / "sales.csv").write_text("id,store,item,price\n" + rows + "\n")
    _sh(log, work, "sed 1d sales.csv | awk -F, '{s[$2]+=$4} END {for (k in s) "
                   "print k, s[k]}' | sort -n > totals.txt && sed -n '1,5p' "
                   "totals.txt && cut -d, -f3 sales.csv | sort | uniq -c | sort -rn "
                   "| head -3")


def checksums(log: Path, work: Path, k: int) -> None:
    write_files(work / "files", 5 + 2 * k, 900)
    _sh(log, work, "find files -type f | sort | xargs sha256sum > SUMS && "
                   "sha256sum -c --quiet SUMS && md5sum files/file0.txt")


def curl_client(log: Path, work: Path, k: int) -> None:
    write_files(work / "site", 3, 2000)
    with serving(work / "site") as port:
        _sh(log, work, f"for i in $(seq 0 {2 + k}); do curl -s -o page$i "
                       f"http://127.0.0.1:{port}/file$((i % 3)).txt; done; "
                       f"curl -s -I http://127.0.0.1:{port}/ | head -1; ls -l page*")


def urllib_client(log: Path, work: Path, k: int) -> None:
    write_files(work / "site", 3, 1500)
    with serving(work / "site") as port:
        _py(log, work, """\
            import sys, urllib.request
            for i in range(int(sys.argv[2])):
                url = f"http://127.0.0.1:{sys.argv[1]}/file{i % 3}.txt"
                with urllib.request.urlopen(url, timeout=5) as r:
                    open(f"copy{i}.txt", "wb").write(r.read())
            """, str(port), str(4 + 2 * k))


def ssh_keygen(log: Path, work: Path, k: int) -> None:
    kind = ("ed25519", "ecdsa", "rsa")[k % 3]
    _sh(log, work, f"ssh-keygen -q -t {kind} -N '' -C build@ci -f ./deploy_key "
                   f"{'-b 2048' if kind == 'rsa' else ''} && ssh-keygen -l -f "
                   f"deploy_key.pub")


def openssl_crypt(log: Path, work: Path, k: int) -> None:
    write_files(work / "docs", 2 + k, 3000)
    _sh(log, work, "openssl dgst -sha256 docs/*.txt && openssl enc -aes-256-cbc "
                   "-pbkdf2 -pass pass:demo -in docs/file0.txt -out f.enc && "
                   "openssl enc -d -aes-256-cbc -pbkdf2 -pass pass:demo -in f.enc "
                   "| cmp - docs/file0.txt && openssl rand -hex 16")


def compressors(log: Path, work: Path, k: int) -> None:
    write_files(work / "data", 4 + k, 5000)
    _sh(log, work, "tar -cf d.tar data && xz -k -T1 d.tar && bzip2 -k d.tar && "
                   "xz -t d.tar.xz && bzip2 -t d.tar.bz2 && xz -dc d.tar.xz | "
                   "tar -t | wc -l && rm -f d.tar*")


def diff_patch(log: Path, work: Path, k: int) -> None:
    write_files(work / "a", 3 + k, 800)
    _sh(log, work, "cp -r a b && sed -i 's/gamma/GAMMA/g' b/file1.txt && "
                   "diff -ru a b > fix.patch; patch -p1 -d a < fix.patch && "
                   "diff -r a b && echo same")


def process_listing(log: Path, work: Path, k: int) -> None:
    _sh(log, work, ["ps aux | sort -nrk 3 | head -5", "ps -eo pid,comm,rss | wc -l",
                    "ps -ef | grep -c sh; uptime; free -m"][k % 3])


def account_info(log: Path, work: Path, k: int) -> None:
    _sh(log, work, "id; whoami; groups; getent passwd root | cut -d: -f7; "
                   "hostname; uname -a; cat /etc/os-release | head -2; df -h . "
                   "| tail -1")


def python_unittest(log: Path, work: Path, k: int) -> None:
    (work / "test_calc.py").write_text(textwrap.dedent(f"""\
        import unittest
        class Calc(unittest.TestCase):
            def test_sum(self):
                self.assertEqual(sum(range({100 + k})), {sum(range(100 + k))})
            def test_sort(self):
                self.assertEqual(sorted([3, 1, 2]), [1, 2, 3])
        """))
    _trace(log, work, [PYTHON, "-m", "unittest", "-q", "test_calc"])


def python_sqlite(log: Path, work: Path, k: int) -> None:
    _py(log, work, """\
        import sqlite3, sys
        db = sqlite3.connect("app.db")
        db.execute("create table if not exists t(k integer primary key, v text)")
        with db:
            db.executemany("insert into t(v) values (?)",
                           [(f"row{i}",) for i in range(int(sys.argv[1]))])
        print(db.execute("select count(*), max(k) from t").fetchone())
        db.close()
        """, str(100 * (k + 1)))


def git_clone(log: Path, work: Path, k: int) -> None:
    write_files(work / "origin", 3 + k, 300)
    env = "HOME=$PWD GIT_CONFIG_NOSYSTEM=1"
    subprocess.run(["sh", "-c", f"cd origin && {env} git init -q && git add -A && "
                    f"{env} git -c user.name=a -c user.email=a@b commit -qm init"],
                   cwd=work, check=True, capture_output=True)
    _sh(log, work, f"export {env}; git clone -q origin copy && cd copy && "
                   "git log --oneline && git grep -c alpha | head -3 && "
                   "git checkout -q -b topic && git branch")


def multi_file_cc(log: Path, work: Path, k: int) -> None:
    (work / "util.h").write_text("int square(int x);\nint cube(int x);\n")
    (work / "util.c").write_text("int square(int x) { return x * x; }\n"
                                 "int cube(int x) { return x * x * x; }\n")
    (work / "main.c").write_text('#include <stdio.h>\n#include "util.h"\n'
                                 "int main(void) { int s = 0;\n"
                                 f"  for (int i = 0; i < {10 + k}; i++) "
                                 "s += square(i) + cube(i);\n"
                                 '  printf("%d\\n", s); return 0; }\n')
    _sh(log, work, "cc -c -O2 util.c && cc -c -O2 main.c && cc -o app main.o "
                   "util.o && ./app && rm -f *.o")


def bash_functions(log: Path, work: Path, k: int) -> None:
    _trace(log, work, ["bash", "-c", textwrap.dedent(f"""\
        set -eu
        trap 'rm -f "$tmp"' EXIT
        tmp=$(mktemp -p .)
        count() {{ local n=0; for w in "$@"; do n=$((n + ${{#w}})); done; echo $n; }}
        words=(alpha beta gamma delta)
        for i in $(seq 1 {6 + 2 * k}); do
            echo "$i $(count "${{words[@]}}")" >> "$tmp"
            ( cd /; pwd > /dev/null )
        done
        wc -l < "$tmp"; [[ -s $tmp ]] && echo ok
        """)])


def make_parallel(log: Path, work: Path, k: int) -> None:
    for name in "abcd":
        (work / f"{name}.c").write_text(f"int {name}(void) {{ return {ord(name)}; }}\n")
    (work / "Makefile").write_text(
        "OBJS = a.o b.o c.o d.o\nlib.a: $(OBJS)\n\tar rcs $@ $^\n"
        "%.o: %.c\n\tcc -O1 -c $< -o $@\nclean:\n\trm -f *.o lib.a\n")
    _sh(log, work, "make -s -j2 && ar t lib.a && make -s clean")


def threaded_hashing(log: Path, work: Path, k: int) -> None:
    write_files(work / "blobs", 6 + 2 * k, 4000)
    _py(log, work, """\
        import concurrent.futures, hashlib, pathlib
        files = sorted(pathlib.Path("blobs").glob("*.txt"))
        def digest(path):
            return path.name, hashlib.sha256(path.read_bytes()).hexdigest()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for name, value in pool.map(digest, files):
                print(name, value[:12])
        """)


def doc_backup(log: Path, work: Path, k: int) -> None:
    _sh(log, work, f"tar -czf docs.tgz -C /usr/share/doc $(ls /usr/share/doc | "
                   f"head -n {5 + 5 * k}) && tar -tzf docs.tgz | wc -l && "
                   f"rm docs.tgz")


def http_server_curl(log: Path, work: Path, k: int) -> None:
    write_files(work / "site", 3 + k, 2500)
    port = free_port()
    server = current_tracer().start(
        log, [PYTHON, "-m", "http.server", str(port), "--bind", "127.0.0.1",
              "--directory", "site"], work)
    try:
        subprocess.run(["sh", "-c", f"for t in $(seq 50); do curl -s -o /dev/null "
                        f"http://127.0.0.1:{port}/ && break; sleep 0.1; done; "
                        f"for i in $(seq 0 {3 + k}); do curl -s -o /dev/null "
                        f"http://127.0.0.1:{port}/file$((i % 3)).txt; done"],
                       cwd=work, timeout=60, check=False)
    finally:
        stop(server)


BENIGN: dict[str, tuple[str, Recipe]] = {
    "perl_report": ("perl counting words into a report", perl_report),
    "awk_sed": ("sed, awk, cut, sort, uniq over a CSV", awk_sed),
    "checksums": ("find | xargs sha256sum and a check", checksums),
    "curl_client": ("curl fetching pages from a loopback server", curl_client),
    "urllib_client": ("python urllib fetching from a loopback server",
                      urllib_client),
    "ssh_keygen": ("ssh-keygen making a deploy key", ssh_keygen),
    "openssl": ("openssl digests, encryption round trip, random", openssl_crypt),
    "compressors": ("tar with xz and bzip2, tests and listing", compressors),
    "diff_patch": ("diff -ru and patch", diff_patch),
    "process_listing": ("ps, uptime and free", process_listing),
    "account_info": ("id, whoami, getent, uname, os-release, df", account_info),
    "python_unittest": ("python -m unittest on a small module", python_unittest),
    "python_sqlite": ("python's sqlite3 inserting and querying", python_sqlite),
    "git_clone": ("git clone of a local repository, log, grep, branch",
                  git_clone),
    "multi_file_cc": ("cc compiling and linking three files", multi_file_cc),
    "bash_functions": ("a bash script with functions, arrays, traps",
                       bash_functions),
    "make_parallel": ("make -j2 building a static library", make_parallel),
    "threaded_hashing": ("python threads hashing files", threaded_hashing),
    "doc_backup": ("tar -z of part of /usr/share/doc", doc_backup),
    "http_server_curl": ("python http.server serving curl (server side)",
                         http_server_curl),
}
