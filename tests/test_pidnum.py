"""Reader for 'PID SYSCALL_NUMBER' files."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentinel_jax.data.pidnum import (
    load_syscall_table,
    parse_pidnum_lines,
    read_pidnum_traces,
)
from sentinel_jax.data.syscalls import UNKNOWN


def test_one_trace_per_pid_with_the_arch_table(tmp_path):
    path = tmp_path / "calls.txt"
    # x86_64: 59 execve, 0 read, 1 write, 231 exit_group; 9999 is no call.
    path.write_text("# pid nr\n100 59\n200 0\n100 0\n\n100 1\n200 9999\n100 231\n")
    traces = read_pidnum_traces(path, label=1, family="probe")
    assert [(t.trace_id, t.names) for t in traces] == [
        ("calls.txt:100", ("execve", "read", "write", "exit_group")),
        ("calls.txt:200", ("read", UNKNOWN))]
    assert all(t.source == "pidnum" and t.group == "calls.txt" and t.label == 1
               and t.family == "probe" and not np.any(t.tags) for t in traces)
    # The same numbers on i386 are other calls: 0 restart_syscall, 1 exit.
    (i386,) = read_pidnum_traces(path, arch="i386", min_events=3)
    assert i386.names[1:3] == ("restart_syscall", "exit")


def test_user_table_names_and_malformed_lines(tmp_path):
    names, skipped = parse_pidnum_lines(
        ["7 1", "7 mmap2", "7", "x 1", "7 2 3", "8 2"], {1: "open", 2: "stat64"})
    assert names == {7: ["openat", "mmap"], 8: ["stat"]}
    assert skipped == {"malformed": 3}


def test_load_syscall_table_formats_and_errors(tmp_path):
    text = tmp_path / "table.txt"
    text.write_text("0 read  # comment\n1\twrite\n")
    assert load_syscall_table(text) == {0: "read", 1: "write"}
    as_json = tmp_path / "table.json"
    as_json.write_text(json.dumps({"0": "read", "60": "exit"}))
    assert load_syscall_table(as_json) == {0: "read", 60: "exit"}
    bad = tmp_path / "bad.txt"
    bad.write_text("0 read\nwrite 1\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected 'NUMBER NAME'"):
        load_syscall_table(bad)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_syscall_table(tmp_path / "missing.txt")


def test_gzip_and_unknown_arch(tmp_path):
    path = tmp_path / "calls.txt.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("1 60\n")
    (trace,) = read_pidnum_traces(path)
    assert trace.names == ("exit",)
    with pytest.raises(ValueError, match="unknown architecture"):
        read_pidnum_traces(path, arch="mips")


@given(st.lists(st.text(max_size=30), max_size=30))
def test_arbitrary_text_never_raises(lines):
    names, skipped = parse_pidnum_lines(lines, {})
    assert sum(len(v) for v in names.values()) + sum(skipped.values()) <= len(lines)
