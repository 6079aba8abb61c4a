"""strace reader: every output form, real captures, streaming, robustness."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentinel_jax.data.strace import (
    StraceParser,
    iter_strace_calls,
    iter_strace_traces,
    read_strace_traces,
)
from sentinel_jax.data.straceargs import decode_string, parse_flags, split_args

needs_strace = pytest.mark.skipif(shutil.which("strace") is None,
                                  reason="strace is not installed")


def parse(*lines: str) -> tuple[list, StraceParser]:
    parser = StraceParser()
    return list(iter_strace_calls(lines, parser)), parser


def only(*lines: str):
    calls, _ = parse(*lines)
    assert len(calls) == 1, calls
    return calls[0]


# -- one line, each form -----------------------------------------------------

@pytest.mark.parametrize("line, pid, timestamp, duration, number", [
    ('4242  openat(AT_FDCWD, "/etc/hosts", O_RDONLY|O_CLOEXEC) = 3',
     4242, None, None, None),
    ('[pid  4242] openat(AT_FDCWD, "/etc/hosts", O_RDONLY|O_CLOEXEC) = 3',
     4242, None, None, None),
    ('openat(AT_FDCWD, "/etc/hosts", O_RDONLY|O_CLOEXEC) = 3', 0, None, None, None),
    ('4242  17:31:03 openat(AT_FDCWD, "/etc/hosts", O_RDONLY|O_CLOEXEC) = 3',
     4242, 17 * 3600 + 31 * 60 + 3.0, None, None),
    ('4242  17:31:03.647734 openat(AT_FDCWD, "/etc/hosts", O_RDONLY|O_CLOEXEC) = 3',
     4242, 17 * 3600 + 31 * 60 + 3.647734, None, None),
    ('1796319135.189616 openat(AT_FDCWD, "/etc/hosts", O_RDONLY|O_CLOEXEC) = 3',
     0, 1796319135.189616, None, None),
    ('4242       0.000520 openat(AT_FDCWD, "/etc/hosts", O_RDONLY|O_CLOEXEC) = 3',
     4242, 0.00052, None, None),
    ('4242  openat(AT_FDCWD, "/etc/hosts", O_RDONLY|O_CLOEXEC) = 3 <0.000305>',
     4242, None, 0.000305, None),
    ('4242  [ 257] openat(AT_FDCWD, "/etc/hosts", O_RDONLY|O_CLOEXEC) = 3',
     4242, None, None, 257),
    ('4242       0.003168 [ 257] [00007f9712145ca3] openat(AT_FDCWD, "/etc/hosts", '
     'O_RDONLY|O_CLOEXEC) = 3 <0.000012>', 4242, 0.003168, 0.000012, 257),
    ('[pid 4242] 17:31:03.5 [ 257] openat(AT_FDCWD, "/etc/hosts", O_RDONLY) = 3',
     4242, 17 * 3600 + 31 * 60 + 3.5, None, 257),
])
def test_prefix_forms(line, pid, timestamp, duration, number):
    call = only(line)
    assert (call.pid, call.name, call.raw_name, call.result) == (
        pid, "openat", "openat", 3)
    assert call.args.startswith('AT_FDCWD, "/etc/hosts", O_RDONLY')
    assert call.timestamp == pytest.approx(timestamp) if timestamp else (
        call.timestamp is None)
    assert call.duration == duration and call.number == number
    assert call.errno is None


@pytest.mark.parametrize("line, result, errno", [
    ('9  access("/etc/ld.so.preload", R_OK) = -1 ENOENT (No such file or directory)',
     -1, "ENOENT"),
    ("9  exit_group(0)                     = ?", None, None),
    ("9  select(4, [3], NULL, NULL, NULL) = ? ERESTARTNOHAND (To be restarted if no "
     "handler)", None, "ERESTARTNOHAND"),
    ("9  wait4(-1, 0x7ffc, 0, NULL) = -1 ERESTARTSYS (To be restarted if SA_RESTART "
     "is set) <0.5>", -1, "ERESTARTSYS"),
    ("9  mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, -1, 0) = 0x7f57c966b000",
     0x7F57C966B000, None),
    ("9  fcntl(3, F_GETFL) = 0x8002 (flags O_RDWR|O_LARGEFILE)", 0x8002, None),
    ("9  poll([{fd=3, events=POLLIN}], 1, 0) = 1 ([{fd=3, revents=POLLIN}])", 1,
     None),
    ('9  openat(AT_FDCWD</tmp>, "/etc/passwd", O_RDONLY) = 3</etc/passwd>', 3, None),
    ("9  socket(AF_INET, SOCK_STREAM, IPPROTO_TCP) = 4<TCP:[1.2.3.4:5->6.7.8.9:10]>",
     4, None),
    ('9  memfd_create("x", MFD_CLOEXEC)    = 3</memfd:x>(deleted)', 3, None),
])
def test_results(line, result, errno):
    call = only(line)
    assert (call.result, call.errno) == (result, errno)


def test_strings_with_escapes_and_fake_results_stay_in_the_arguments():
    line = r'7  write(1, "f() = 5 (x)\"\n", 13) = 13'
    call = only(line)
    assert call.result == 13
    assert split_args(call.args) == ["1", r'"f() = 5 (x)\"\n"', "13"]
    assert decode_string(split_args(call.args)[1]) == 'f() = 5 (x)"\n'
    assert decode_string(r'"\303\251t\x41"') == "étA"


def test_nested_arguments_split_at_top_level_only():
    args = ('3, {st_mode=S_IFREG|0644, st_size=27002, ...}, [{fd=1, events=POLLIN}, '
            '{fd=2}], 4</a, b>, 5<TCP:[1.2.3.4:5->6.7.8.9:10]>, "x, y"')
    assert split_args(args) == [
        "3", "{st_mode=S_IFREG|0644, st_size=27002, ...}",
        "[{fd=1, events=POLLIN}, {fd=2}]", "4</a, b>",
        "5<TCP:[1.2.3.4:5->6.7.8.9:10]>", '"x, y"']
    assert parse_flags("S_ISUID|0755") == (frozenset({"S_ISUID"}), 0o755)
    assert parse_flags("{flags=CLONE_VM|CLONE_VFORK, stack=0x10}")[0] == {
        "CLONE_VM", "CLONE_VFORK"}


def test_unfinished_and_resumed_pair_across_interleaved_pids():
    calls, parser = parse(
        "10  wait4(-1,  <unfinished ...>",
        '11  write(1, "hi\\n", 3)            = 3',
        "11  +++ exited with 0 +++",
        "10  <... wait4 resumed>[{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) "
        "= 11",
        "10  --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=11} ---",
    )
    assert [(c.pid, c.name, c.result) for c in calls] == [
        (11, "write", 3), (10, "wait4", 11)]
    assert calls[1].args == "-1, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL"
    assert (parser.stats.signals, parser.stats.exits) == (1, 1)


def test_resumed_then_killed_and_never_resumed_calls_complete_with_no_result():
    calls, parser = parse(
        "20  clock_nanosleep(CLOCK_MONOTONIC, 0, {tv_sec=5, tv_nsec=0},  "
        "<unfinished ...>",
        "20  <... clock_nanosleep resumed> <unfinished ...>) = ?",
        "20  +++ killed by SIGKILL +++",
        "21  read(0,  <unfinished ...>",
        "21  +++ killed by SIGKILL (core dumped) +++",
        "22  read(0,  <unfinished ...>",
    )
    assert [(c.pid, c.name, c.result) for c in calls] == [
        (20, "clock_nanosleep", None), (21, "read", None), (22, "read", None)]
    assert parser.stats.never_resumed == 2 and parser.stats.exits == 2


def test_truncated_and_foreign_lines_are_skipped_and_counted():
    calls, parser = parse(
        "strace: Process 123 attached",
        '123  read(3, "abc',
        "",
        "garbage ### (",
        "123  <... nosuch resumed>) = 0",
        '123  close(3) = 0',
    )
    assert [c.name for c in calls] == ["nosuch", "close"]
    assert parser.stats.skipped == {"strace_message": 1, "no_result": 1,
                                    "empty": 1, "unrecognised": 1}
    assert parser.stats.orphan_resumed == 1


def test_unprefixed_lines_join_the_process_that_later_shows_its_pid():
    # strace -f to a terminal: no pid until a second process exists.
    text = [
        'execve("/bin/sh", ["sh", "-c", "ls"], 0x7ffe /* 3 vars */) = 0',
        "vfork(strace: Process 31 attached",
        " <unfinished ...>",
        '[pid  31] execve("/usr/bin/ls", ["ls"], 0x55 /* 3 vars */) = 0',
        "[pid  30] <... vfork resumed>)        = 31",
        "[pid  31] exit_group(0)               = ?",
        "[pid  31] +++ exited with 0 +++",
        "exit_group(0)                          = ?",
        "+++ exited with 0 +++",
    ]
    parser = StraceParser(keep_events=True)
    for line in text:
        parser.feed(line)
    parser.finish()
    finished = {state.pid: state.names for state in parser.pop_finished()}
    # vfork is folded onto clone (syscalls.canonical_name), as posix_spawn.
    assert finished == {31: ["execve", "exit_group"],
                        30: ["execve", "clone", "exit_group"]}


@given(st.lists(st.text(max_size=80), max_size=20))
def test_arbitrary_text_never_raises(lines):
    calls, parser = parse(*lines)
    assert parser.stats.lines == len(lines)
    assert all(isinstance(call.tags, int) for call in calls)


_PIECES = st.sampled_from([
    "[pid 12] ", "12  ", "17:31:03.1 ", "[ 59] ", "<... read resumed>",
    "<unfinished ...>", "read(", "dup2(", "openat(", "connect(", ")", " = ", "= ?",
    "-1 EPERM (x)", "3</etc/shadow>", '"\\x41\\"', "{", "}", "[", "]", ",", "<", ">",
    "+++ exited with 0 +++", "--- SIGCHLD {} ---", "AT_FDCWD", "O_WRONLY|O_CREAT",
    "sa_family=AF_INET", 'inet_addr("127.0.0.1")', "0x10", " <0.1>", "\\"])


@given(st.lists(st.lists(_PIECES, max_size=10).map("".join), max_size=30))
def test_strace_like_fragments_never_raise(lines):
    calls, parser = parse(*lines)
    assert parser.stats.calls == len(calls)


def test_pid_reuse_starts_a_new_trace(tmp_path):
    log = tmp_path / "reuse.log"
    log.write_text("5  getpid() = 5\n5  +++ exited with 0 +++\n"
                   "5  getuid() = 0\n5  getgid() = 0\n")
    traces = read_strace_traces(log, label=1, family="demo")
    assert [(t.trace_id, t.names) for t in traces] == [
        ("reuse.log:5", ("getpid",)), ("reuse.log:5#2", ("getuid", "getgid"))]
    assert {(t.label, t.family, t.group, t.source) for t in traces} == {
        (1, "demo", "reuse.log", "strace")}
    assert [t.trace_id for t in read_strace_traces(log, min_events=2)] == [
        "reuse.log:5#2"]


def test_gzip_logs_and_missing_files(tmp_path):
    log = tmp_path / "x.log.gz"
    with gzip.open(log, "wt") as handle:
        handle.write('3  openat(AT_FDCWD, "/etc/shadow", O_RDONLY) = 4\n')
    (trace,) = read_strace_traces(log)
    assert trace.names == ("openat",) and trace.tags[0] != 0
    with pytest.raises(FileNotFoundError, match="nope.log"):
        read_strace_traces(tmp_path / "nope.log")


# -- real captures -------------------------------------------------------------

def strace_run(tmp_path: Path, command: list[str], *options: str,
               to_stderr: bool = False) -> Path:
    log = tmp_path / "trace.log"
    if to_stderr:
        with log.open("w") as handle:
            subprocess.run(["strace", "-f", *options, *command], check=True,
                           stdout=subprocess.DEVNULL, stderr=handle, timeout=60)
    else:
        subprocess.run(["strace", "-f", *options, "-o", str(log), *command],
                       check=True, stdout=subprocess.DEVNULL, timeout=60)
    return log


# After an optional pid, time stamp and call number (-n): a signal (---
# SIGCHLD ... ---), an exit (+++ exited with 0 +++) or the second half of an
# interrupted call.
_NOT_A_CALL = re.compile(r"^(?:\[pid\s+\d+\]\s*|\d+\s+)?(?:[\d.:]+\s+)?"
                         r"(?:\[\s*\d+\]\s*)?"
                         r"(?:--- |\+\+\+ |<\.\.\. \w+ resumed>)")


def expected_calls(log: Path) -> int:
    """Calls by an independent count: lines minus signals, exits and the
    second half of each unfinished/resumed pair (matched at the start of the
    line: a call's data, a listing of ``-rw-r-----`` files say, may hold the
    same characters)."""
    lines = log.read_text().splitlines()
    return sum(1 for line in lines if line.strip() and not _NOT_A_CALL.match(line))


@needs_strace
@pytest.mark.parametrize("options", [(), ("-tt", "-T"), ("-ttt", "-n", "-yy")])
def test_real_shell_capture_parses_per_pid(tmp_path, options):
    log = strace_run(tmp_path, ["sh", "-c", "echo hi; ls / >/dev/null"], *options)
    parser = StraceParser()
    calls = list(iter_strace_calls(log.read_text().splitlines(), parser))
    assert not parser.stats.skipped
    assert len(calls) == expected_calls(log)
    by_pid: dict[int, list] = {}
    for call in calls:
        by_pid.setdefault(call.pid, []).append(call)
    assert len(by_pid) == 2 and parser.stats.exits == 2
    shell_pid = calls[0].pid
    (ls_pid,) = set(by_pid) - {shell_pid}
    shell, ls = by_pid[shell_pid], by_pid[ls_pid]
    assert shell[0].name == "execve" and '"sh", "-c"' in shell[0].args
    (ls_exec,) = [c for c in ls if c.name == "execve"]
    assert '["ls", "/"]' in ls_exec.args and ls_exec.result == 0
    assert any(c.name in ("clone", "vfork") and c.result == ls_pid for c in shell)
    assert any(c.name == "getdents64" for c in ls)
    assert shell[-1].name == ls[-1].name == "exit_group"
    if "-tt" in options:
        assert all(c.timestamp is not None and c.duration is not None
                   for c in calls if c.result is not None)
    if "-n" in options:
        assert {c.number for c in calls if c.name == "execve"} == {59}


@needs_strace
def test_real_terminal_format_capture_gets_real_pids(tmp_path):
    log = strace_run(tmp_path, ["sh", "-c", "ls / >/dev/null; true"],
                     to_stderr=True)
    traces = read_strace_traces(log)
    assert len(traces) == 2
    assert not any(trace.trace_id.endswith(":0") for trace in traces)
    assert all(trace.names[-1] == "exit_group" for trace in traces)


@needs_strace
def test_real_python_threads_and_forks(tmp_path):
    program = (
        "import os, threading\n"
        "t = threading.Thread(target=lambda: os.getpid()); t.start(); t.join()\n"
        "pid = os.fork()\n"
        "if pid == 0: os._exit(0)\n"
        "os.waitpid(pid, 0)\n")
    log = strace_run(tmp_path, [sys.executable, "-c", program])
    parser = StraceParser(keep_events=True)
    traces = list(iter_strace_traces(log, parser=parser))
    assert len(traces) == 3  # main, thread, forked child
    assert not parser.stats.skipped
    main = max(traces, key=len)
    assert main.names[0] == "execve" and main.names.count("clone") >= 2


# -- the fast route against the reference route --------------------------------

def both_routes(lines: list[str]) -> tuple[tuple, tuple]:
    """Calls, stats, descriptor tables and finished traces from the fast route
    and from the reference route (``shortcuts=False``) over ``lines``."""
    results = []
    for shortcuts in (True, False):
        parser = StraceParser(keep_events=True, shortcuts=shortcuts)
        calls = list(iter_strace_calls(lines, parser))
        finished = sorted((state.pid, tuple(state.names), tuple(state.tags))
                          for state in parser.pop_finished())
        tables = {pid: dict(state.fds) for pid, state in parser.processes.items()}
        results.append((calls, parser.stats, tables, finished, parser.anon_pid))
    return results[0], results[1]


_WORKLOAD = ("cat /etc/hosts /etc/passwd | wc -l; ls -la / /etc >/dev/null; "
             "exec 3<>/dev/null; python3 -c 'import json, socket' 2>/dev/null; "
             "echo done >&3")


@needs_strace
@pytest.mark.parametrize("options", [(), ("-ttt", "-yy", "-s", "256"),
                                     ("-tt", "-T", "-y"), ("-r", "-n")])
def test_fast_route_matches_reference_on_real_captures(tmp_path, options):
    log = strace_run(tmp_path, ["sh", "-c", _WORKLOAD], *options)
    text = log.read_text()
    assert "resumed>" in text or not options  # pipes interleave the two halves
    for lines in (text.splitlines(keepends=True), text.splitlines()):
        fast, reference = both_routes(lines)
        assert fast == reference
        calls, stats = fast[0], fast[1]
        assert not stats.skipped and len(calls) == expected_calls(log)
        assert any(call.tags for call in calls)


_ROUTE_PIECES = st.sampled_from([
    "12  ", "12 ", "[pid 12] ", "13  ", "1796319135.189616 ", "17:31:03.5 ",
    "0.000520 ", "[ 59] ", "read(", "write(", "openat(", "dup2(", "close(",
    "clone(", "fcntl(", "mmap(", "execve(", "<... read resumed>",
    "<... clone resumed>", "<unfinished ...>", " <unfinished ...>", ")", " = ",
    "      = ", "= ?", "3", "0", "-1 EPERM (x)", "-1 ENOENT (No such file)",
    "0x7f00", " <0.1>", "3</etc/shadow>", "1<TCP:[1.2.3.4:5->6.7.8.9:10]>",
    "<pipe:[7]>", '"/etc/shadow"', '"a<b>c"', '"x, y"', '"\\"', "\\", ", ",
    "AT_FDCWD", "O_WRONLY|O_CREAT", "PROT_WRITE|PROT_EXEC", "{", "}", "[", "]",
    "<", ">", "=", "+++ exited with 0 +++", "--- SIGCHLD {} ---", "\n", "\t",
    "strace: Process 12 attached", "²"])


@given(st.lists(st.lists(_ROUTE_PIECES, max_size=12).map("".join), max_size=40))
def test_fast_route_matches_reference_on_generated_text(lines):
    fast, reference = both_routes(lines)
    assert fast == reference


_ARG = st.sampled_from([
    "3", "AT_FDCWD", '"/etc/shadow"', '"x) = 5"', '"a=b"', '"a, b"', '"q\\"',
    "3</etc/shadow>", "4</a, b>", "5<TCP:[1.2.3.4:5->6.7.8.9:10]>", "{a=1, b=[2]}",
    "O_RDONLY|O_CLOEXEC", "PROT_READ|PROT_WRITE|PROT_EXEC", "NULL", "0x10",
    "<unfinished ...>", "-1", "2", "F_DUPFD", "CLONE_VM|CLONE_FILES", "=", " "])
_RESULT_TAIL = st.sampled_from([
    "3", "0", "12", "?", "-1 ENOENT (No such file)", "-1 EACCES (Permission)",
    "3</etc/passwd>", "4<TCP:[1.2.3.4:5->6.7.8.9:10]>", "0x10", "0x8002 (flags x)",
    "1 ([{fd=3}])", "5<unfinished ...>", "5<x=y> <unfinished ...>", "3 <0.1>",
    "? ERESTARTSYS (x)", "4 = 5", "0 (a)= 5 (b)", "3 junk", " 3", "3\t"])


@st.composite
def strace_lines(draw) -> str:
    """Lines in the shapes the fast route reads, and near misses of them."""
    prefix = draw(st.sampled_from([
        "", "12 ", "12  ", "13 ", "12 1796319135.189616 ", "13 17:31:03.5 ",
        "12 0.000520 ", "[pid 12] ", " 12 ", "12\t", "1.5 ", "12 [ 59] "]))
    name = draw(st.sampled_from(["read", "write", "openat", "dup2", "close",
                                 "clone", "fcntl", "mmap", "wait4", "x1"]))
    args = ", ".join(draw(st.lists(_ARG, max_size=4)))
    pad = draw(st.sampled_from(["", " ", "      ", "\t"]))
    tail = draw(_RESULT_TAIL)
    end = draw(st.sampled_from(["", "\n", " \n"]))
    shape = draw(st.sampled_from(["complete", "unfinished", "resumed"]))
    if shape == "complete":
        body = f"{name}({args}){pad} = {tail}"
    elif shape == "unfinished":
        body = f"{name}({args}{draw(st.sampled_from(['', ' ', ', ']))}<unfinished ...>"
    else:
        gap = draw(st.sampled_from(["", " ", "  ", " <unfinished ...>",
                                    "  <unfinished ...>", "\t"]))
        body = f"<... {name} resumed>{gap}{args}){pad} = {tail}"
    return prefix + body + end


@given(st.lists(strace_lines(), max_size=30))
def test_fast_route_matches_reference_on_strace_shaped_lines(lines):
    fast, reference = both_routes(lines)
    assert fast == reference


@pytest.mark.parametrize("lines", [
    # A later ")= " whose tail also reads as a result wins.
    ["12  read(3) = 0 (a)= 5 (b)"],
    # A result annotation that swallows the unfinished mark.
    ["12  read(3) = 5<x=y> <unfinished ...>"],
    ["12  read(3,  <unfinished ...>",
     "12  <... read resumed>  <unfinished ...>\"ab\", 4) = 2"],
    ["12  read(3,  <unfinished ...>", "12  <... read resumed>\t\"ab\", 4) = 2"],
    ["12  read(3,  <unfinished ...>", "12  <... read resumed> = 2"],
    ["12  write(1, \"strace: Process 9 attached\", 26) = 26"],
    ["12  read(3,  <unfinished ...>",
     "12  <... read resumed>\"strace: Process 9\", 9) = 9"],
    ["12  read(3, \"strace: Process 9\" <unfinished ...>"],
    ["12  wait4(-1,  <unfinished ...>", "13  exit_group(0) = ?",
     "13  +++ exited with 0 +++", "12  <... wait4 resumed>NULL, 0, NULL) = 13"],
])
def test_fast_route_matches_reference_on_awkward_lines(lines):
    for text in (lines, [line + "\n" for line in lines]):
        fast, reference = both_routes(text)
        assert fast == reference


def test_annotated_descriptor_is_read_from_its_own_argument_only():
    # The data after the descriptor holds "<...>"; it is no part of fd 3's
    # annotation, and fd 3 stays /etc/shadow.
    calls, parser = parse(
        '5  openat(AT_FDCWD, "/etc/shadow", O_RDONLY) = 3</etc/shadow>',
        '5  read(3</etc/shadow>, "a<b>c", 10) = 5',
        '5  read(3</etc/shadow>, "root:x", 10) = 6')
    assert all(call.tags == calls[0].tags != 0 for call in calls)
    assert parser.processes[5].fds[3].path == "/etc/shadow"


@pytest.mark.parametrize("line", ['5  read(², "x", 3) = 3',
                                  '5  openat(AT_FDCWD, "\\) = 3'])
def test_odd_digits_and_dangling_backslashes_never_raise(line):
    calls, parser = parse(line)
    assert parser.stats.lines == 1 and len(calls) <= 1
