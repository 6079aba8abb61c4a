"""The Rust detector reads strace text as the Python reader does.

Golden tests: on real captures (``strace -f`` of a Python program that dups a
loopback socket onto stdout, maps RWX memory, reads files and runs ``sh``)
and on generated strace-like text, the binary's events (pid, channel, tag
mask) equal :class:`~sentinel_jax.data.strace.StraceParser`'s, and its
per-process window scores equal the Python equation's on the Python-encoded
traces. One crate is built per session (about 10 s).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentinel_jax.data.encode import encode_traces
from sentinel_jax.data.native.rust_tags import RuleTableError, render_tags
from sentinel_jax.data.strace import StraceParser, iter_strace_calls, read_strace_traces
from sentinel_jax.data.syscalls import Vocabulary
from sentinel_jax.data.tags import TAG_BIT, rules_as_json, tag_mask
from sentinel_jax.symbolic import rust
from sentinel_jax.symbolic.equation import Equation
from sentinel_jax.symbolic.simplify import SYMPY_PROTECTED

TIME, STRIDE, CHANNELS = 16, 5, 128
NAMES = ["read", "write", "openat", "close", "mmap", "fstat", "execve", "connect",
         "socket", "lseek", "stat", "clone", "dup2", "rt_sigaction"]
SCORED_TAGS = ("error_other", "exec_shell", "stdio_socket", "mem_wx", "recon_read",
               "socket_loopback", "cred_read")
needs_strace = pytest.mark.skipif(shutil.which("strace") is None,
                                  reason="strace is not installed")

PROGRAM = """
import mmap, os, socket, subprocess, tempfile
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
client = socket.create_connection(server.getsockname()); peer, _ = server.accept()
saved = os.dup(1); os.dup2(client.fileno(), 1); os.dup2(saved, 1)
memory = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
with tempfile.NamedTemporaryFile("w", delete=False) as handle:
    handle.write("a > b < c\\n")
with open(handle.name) as again:
    again.read()
open("/etc/passwd").read()
os.unlink(handle.name)
subprocess.run(["sh", "-c", "exit 3"])
"""


def _equation(vocabulary: Vocabulary) -> Equation:
    """Reads names and the tags the captures carry, so tags move scores."""
    index = vocabulary.index
    symbols = {name: sympy.Symbol(name, real=True)
               for name in ("read", "mmap", "openat")}
    tags = {name: sympy.Symbol(f"tag_{name}", real=True) for name in SCORED_TAGS}
    p = SYMPY_PROTECTED
    expr = (sympy.tanh(symbols["read"] - symbols["openat"])
            + sympy.Float(2.5) * tags["error_other"]
            + sympy.Float(3.25) * tags["exec_shell"]
            + p["pdiv"](symbols["mmap"], tags["stdio_socket"] + sympy.Float(0.25))
            + sympy.Float(1.5) * (tags["mem_wx"] + tags["recon_read"]
                                  + tags["socket_loopback"] + tags["cred_read"]))
    channel_of = {symbols[name]: index[name] for name in symbols}
    channel_of.update({tags[name]: len(vocabulary) + TAG_BIT[name]
                       for name in SCORED_TAGS})
    return Equation(expr, channel_of)


@pytest.fixture(scope="session")
def detector(tmp_path_factory):
    try:
        rust.cargo_path()
    except rust.RustUnavailableError:
        pytest.skip("cargo not installed")
    vocabulary = Vocabulary.build([NAMES * 2], name_channels=12)
    equation = _equation(vocabulary)
    spec = rust.DetectorSpec(vocabulary, CHANNELS, TIME, STRIDE, threshold=1.0)
    folder = rust.write_crate(equation, spec, tmp_path_factory.mktemp("crate"))
    return {"binary": rust.build_crate(folder), "folder": folder,
            "equation": equation, "vocabulary": vocabulary}


@pytest.fixture(scope="session")
def captures(tmp_path_factory):
    """Real strace logs of PROGRAM in several output forms."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    folder = tmp_path_factory.mktemp("captures")
    logs = {}
    for options in (("-yy",), ("-tt", "-T"), ("-ttt", "-n", "-y")):
        log = folder / f"capture{''.join(options)}.log"
        subprocess.run(["strace", "-f", *options, "-o", str(log), sys.executable,
                        "-c", PROGRAM], check=True, stdout=subprocess.DEVNULL,
                       timeout=60)
        logs[options] = log
    # Terminal form: [pid N] prefixes, "Process N attached" inside lines.
    log = folder / "terminal.log"
    with log.open("w") as handle:
        subprocess.run(["strace", "-f", "-y", sys.executable, "-c", PROGRAM],
                       check=True, stdout=subprocess.DEVNULL, stderr=handle, timeout=60)
    logs[("terminal",)] = log
    return logs


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def python_events(text: str, vocabulary: Vocabulary) -> list[tuple[int, int, int]]:
    calls = list(iter_strace_calls(_lines(text), StraceParser()))
    channels = vocabulary.lookup([call.name for call in calls]) if calls else []
    return [(call.pid, int(channel), call.tags)
            for call, channel in zip(calls, channels, strict=True)]


def rust_run(detector, text: str, *arguments: str) -> tuple[list[str], dict]:
    output = rust.run_binary(detector["binary"], list(arguments), text.encode())
    lines = output.splitlines()
    summary = json.loads(lines[-1])
    assert summary["summary"] is True
    return lines[:-1], summary


def rust_events(detector, text: str) -> list[tuple[int, int, int]]:
    lines, summary = rust_run(detector, text, "--format", "strace", "--events")
    events = [tuple(map(int, line.split())) for line in lines
              if not line.startswith("{")]
    assert summary["events"] == len(events)
    return events


@needs_strace
@pytest.mark.parametrize("form", ["-yy", "-tt-T", "-ttt-n-y", "terminal"])
def test_real_capture_events_and_tags_equal_python(detector, captures, form):
    (log,) = [path for options, path in captures.items() if "".join(options) == form]
    text = log.read_text(errors="replace")
    expected = python_events(text, detector["vocabulary"])
    assert rust_events(detector, text) == expected
    # The capture exercises the argument rules, not only error tags.
    seen = 0
    for _, _, mask in expected:
        seen |= mask
    wanted = ("exec_shell", "stdio_socket", "mem_wx", "socket_loopback", "recon_read")
    if form != "-ttt-n-y":  # -n changes nothing, but keep one form minimal
        assert seen & tag_mask(wanted) == tag_mask(wanted)
    assert len({pid for pid, _, _ in expected}) >= 2


def _trace_key(trace_id: str) -> tuple[int, int]:
    match = re.fullmatch(r".*:(\d+)(?:#(\d+))?", trace_id)
    return int(match.group(1)), int(match.group(2) or 1)


@needs_strace
@pytest.mark.parametrize("form", ["-yy", "terminal"])
def test_real_capture_window_scores_equal_python(detector, captures, form):
    (log,) = [path for options, path in captures.items() if "".join(options) == form]
    traces = read_strace_traces(log)
    windows = encode_traces(traces, detector["vocabulary"], TIME, STRIDE, CHANNELS)
    scores = detector["equation"].score(windows.hist)
    expected = {(*_trace_key(traces[t].trace_id), int(start)): float(score)
                for t, start, score in zip(windows.trace_index, windows.starts, scores,
                                           strict=True)}
    lines, summary = rust_run(detector, log.read_text(errors="replace"), "--all")
    assert summary["format"] == "strace"  # detected from the text
    # Windows that end before strace first prints a pid (terminal output)
    # carry pid 0: the process that turns out to own those lines.
    parser = StraceParser()
    for _ in iter_strace_calls(_lines(log.read_text(errors="replace")), parser):
        pass
    anonymous = parser.anon_pid if parser.anon_pid is not None else 0
    actual = {(w["pid"] or anonymous, w["run"], w["start"]): w["score"]
              for w in map(json.loads, lines)}
    assert actual.keys() == expected.keys()
    np.testing.assert_allclose([actual[key] for key in expected],
                               list(expected.values()), rtol=0, atol=1e-9)
    assert summary["alerts"] == int((scores >= 1.0).sum())
    assert np.ptp(scores) > 0.5  # tags and names both move the scores


# -- generated strace-like text ------------------------------------------------

_PATHS = ["/etc/shadow", "/etc/passwd", "/tmp/.hidden", "/home/u/.bashrc",
          "rel/file", "/proc/101/mem", "/proc/102/environ", "/proc/self/maps",
          "/usr/bin/ls", "/bin/sh", "/tmp/payload", "../x/./y",
          "/home/u/.ssh/id_rsa", "/home/u/.ssh/id_rsa.pub", "/var/log/auth.log",
          "/dev/shm/x", "/etc/cron.d/job"]
_FDS = ["0", "1", "2", "3", "4", "5", "3</etc/shadow>",
        "4<TCP:[127.0.0.1:5->127.0.0.1:6]>", "5<TCP:[10.0.0.1:5->1.2.3.4:80]>",
        "3<pipe:[77]>", "AT_FDCWD</home/u>", "4<UNIX-STREAM:[9->10]>",
        "3</var/log/x<char 1:3>>"]
_ADDRESSES = ['{sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("1.2.3.4")}',
              '{sa_family=AF_INET, sin_port=htons(5), sin_addr=inet_addr("127.0.0.1")}',
              '{sa_family=AF_INET6, sin6_port=htons(1), inet_pton(AF_INET6, "::1", '
              '&sin6_addr)}', '{sa_family=AF_UNIX, sun_path="/run/x"}', "NULL"]
_OUTCOMES = ["0", "3", "4", "5", "-1 EPERM (Operation not permitted)",
             "-1 ENOENT (No such file or directory)", "?", "0x7f0000000000",
             "? ERESTARTSYS (To be restarted)", "1 <0.000012>", "3</etc/passwd>", "102"]


@st.composite
def _call(draw) -> tuple[str, str]:
    """A call line's name and arguments."""
    path = '"' + draw(st.sampled_from(_PATHS)) + '"'
    fd, fd2 = draw(st.sampled_from(_FDS)), draw(st.sampled_from(_FDS))
    flags = draw(st.sampled_from(["O_RDONLY", "O_WRONLY|O_CREAT|O_TRUNC", "O_RDWR",
                                  "O_RDONLY|O_CLOEXEC", "0101", "O_WRONLY|O_APPEND"]))
    prot = draw(st.sampled_from(["PROT_READ", "PROT_READ|PROT_WRITE|PROT_EXEC", "0x7",
                                 "PROT_WRITE|PROT_EXEC"]))
    small = draw(st.sampled_from(["0", "1", "2", "101", "102", "-1"]))
    return draw(st.sampled_from([
        ("openat", f"{fd}, {path}, {flags}"), ("open", f"{path}, {flags}, 0644"),
        ("read", f'{fd}, "ab>c", 4'), ("write", f'{fd}, "x", 1'), ("close", fd),
        ("socket", "AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP"),
        ("connect", f"{fd}, {draw(st.sampled_from(_ADDRESSES))}, 16"),
        ("accept4", f"{fd}, {draw(st.sampled_from(_ADDRESSES))}, [16], SOCK_CLOEXEC"),
        ("dup2", f"{fd}, {small}"), ("dup", fd), ("dup3", f"{fd}, {small}, O_CLOEXEC"),
        ("fcntl", f"{fd}, F_DUPFD, 0"), ("fcntl", f"{fd}, F_SETFD, FD_CLOEXEC"),
        ("mmap", f"NULL, 4096, {prot}, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0"),
        ("mprotect", f"0x7f00, 4096, {prot}"),
        ("execve", f'{path}, ["x"], 0x7ffe /* 3 vars */'), ("chdir", path),
        ("fchdir", fd), ("kill", f"{small}, SIGTERM"), ("setuid", small),
        ("setresuid", f"-1, {small}, -1"), ("chmod", f"{path}, 04755"),
        ("unlink", path), ("unlinkat", f"{fd}, {path}, 0"),
        ("renameat2", f"{fd}, {path}, {fd2}, {path}, 0"),
        ("clone", "child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD"),
        ("clone", "child_stack=NULL, flags=CLONE_VM|CLONE_FILES|CLONE_THREAD"),
        ("ptrace", f"PTRACE_ATTACH, {small}"), ("pipe2", "[3, 4], O_CLOEXEC"),
        ("memfd_create", '"x", MFD_CLOEXEC'), ("utimensat", f"{fd}, {path}, NULL, 0"),
        ("utimensat", f"{fd}, {path}, [{{tv_sec=0, tv_nsec=0}}, {{tv_sec=1}}], 0"),
        ("getpid", ""), ("close_range", "3, 4294967295, 0"),
        ("sendto", f'{fd}, "x", 1, 0, {draw(st.sampled_from(_ADDRESSES))}, 16'),
        ("mount", '"none", "/mnt", "tmpfs", 0, NULL'),
    ]))


@st.composite
def _line_group(draw) -> list[str]:
    """One to three lines: a call (whole, or split unfinished/resumed), a
    signal or an exit, with any prefix form."""
    pid = draw(st.sampled_from([101, 102, 103]))
    prefix = draw(st.sampled_from([
        "{pid} ", "{pid}  ", "[pid {pid}] ", "{pid} 12:00:01.5 ",
        "{pid} 1700000000.123 [ 59] ", "{pid} [00007f12] "]))
    prefix = prefix.format(pid=pid)
    kind = draw(st.sampled_from(["call", "call", "call", "split", "signal", "exit"]))
    if kind == "signal":
        return [prefix + "--- SIGCHLD {si_signo=SIGCHLD, si_pid=5} ---"]
    if kind == "exit":
        return [prefix + draw(st.sampled_from(["+++ exited with 0 +++",
                                               "+++ killed by SIGKILL +++"]))]
    name, args = draw(_call())
    outcome = draw(st.sampled_from(_OUTCOMES))
    if kind == "call":
        return [f"{prefix}{name}({args}) = {outcome}"]
    cut = draw(st.integers(0, len(args)))
    head, tail = args[:cut], args[cut:]
    return [f"{prefix}{name}({head} <unfinished ...>",
            f"{prefix}<... {name} resumed>{tail}) = {outcome}"]


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_line_group(), min_size=1, max_size=25))
def test_generated_text_events_equal_python(detector, groups):
    text = "\n".join(line for group in groups for line in group) + "\n"
    assert rust_events(detector, text) == python_events(text, detector["vocabulary"])


@settings(max_examples=40)
@given(st.lists(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126,
                                              blacklist_characters="\\"),
                        max_size=60), max_size=12))
def test_arbitrary_printable_lines_never_break_the_reader(detector, lines):
    # Python raises on a string ending in a lone backslash (reported); the
    # reader's agreement is only asked of text both can read.
    text = "".join(line + "\n" for line in lines)
    expected = python_events(text, detector["vocabulary"])
    assert rust_events(detector, text) == expected


@pytest.mark.parametrize("text", [
    # The data holds '>': the descriptor's annotation still ends at its own.
    '5 openat(AT_FDCWD, "/etc/shadow", O_RDONLY) = 3\n'
    '5 read(3</etc/shadow>, "a>b", 3) = 3\n5 read(3) = 3\n',
    # -yy names the process's own /proc/self/maps by its pid; another's stays.
    '5 openat(AT_FDCWD, "/proc/self/maps", O_RDONLY) = 3</proc/5/maps>\n'
    '5 read(3</proc/5/maps>, "x", 1) = 1\n5 read(3, "x", 1) = 1\n'
    '5 openat(AT_FDCWD, "/proc/9/environ", O_RDONLY) = 4</proc/9/environ>\n'
    '5 read(4, "x", 1) = 1\n',
    # A child speaks before its parent's clone returns; a shared table.
    "7 clone(child_stack=NULL, flags=CLONE_VM|CLONE_FILES|SIGCHLD <unfinished ...>\n"
    '8 openat(AT_FDCWD</root>, ".ssh/id_rsa", O_RDONLY) = 4\n'
    "7 <... clone resumed>) = 8\n7 read(4, \"k\", 1) = 1\n8 +++ exited with 0 +++\n",
    # Terminal output: no pid until a second process, a message mid-line.
    'execve("/bin/sh", ["sh"], 0x7ffe /* 3 vars */) = 0\n'
    "vfork(strace: Process 31 attached\n <unfinished ...>\n"
    '[pid    31] execve("/tmp/x", ["x"], 0x55 /* 3 vars */) = 0\n'
    "[pid    30] <... vfork resumed>)        = 31\n+++ exited with 0 +++\n",
])
def test_tricky_lines_equal_python(detector, text):
    expected = python_events(text, detector["vocabulary"])
    assert any(mask for _, _, mask in expected)
    assert rust_events(detector, text) == expected


def test_pid_reuse_and_per_process_windows(detector):
    text = ("5 getpid() = 5\n5 +++ exited with 0 +++\n"
            + "".join(f'5 openat(AT_FDCWD, "/etc/shadow", O_RDONLY) = {3 + i % 5}\n'
                      for i in range(20))
            + "6 read(0, \"\", 1) = 0\n")
    lines, summary = rust_run(detector, text, "--all")
    windows = [json.loads(line) for line in lines]
    assert summary["format"] == "strace" and summary["events"] == 22
    assert {(w["pid"], w["run"]) for w in windows} == {(5, 1), (5, 2), (6, 1)}
    events = rust_events(detector, text)
    cred = tag_mask(["cred_read"])
    assert [mask & cred for pid, _, mask in events if pid == 5][1:] == [cred] * 20


def test_tags_rs_follows_the_python_table():
    table = rules_as_json()
    source = render_tags(table)
    assert '"/etc/shadow"' in source and "Rule::Dup" in source
    assert source.count("\n    Rule::") == len(table["rules"])
    table["rules"].append({"kind": "path", "tag": "cred_read", "access": ["read"],
                           "include": ["/srv/secret*"], "exclude": []})
    assert '"/srv/secret*"' in render_tags(table)
    table["rules"].append({"kind": "path", "tag": "cred_read", "access": ["sniff"],
                           "include": [], "exclude": []})
    with pytest.raises(RuleTableError, match="sniff"):
        render_tags(table)
    table["rules"][-1] = {"kind": "oracle", "tag": "cred_read"}
    with pytest.raises(RuleTableError, match="oracle"):
        render_tags(table)


def test_generated_crate_holds_the_rule_table(detector):
    tags_rs = (Path(detector["folder"]) / "src" / "tags.rs").read_text()
    assert tags_rs == render_tags()
