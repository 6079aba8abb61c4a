"""Syscall tables, aliases and the vocabulary."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sentinel_jax.data.syscalls import (
    OTHER,
    OTHER_ID,
    PAD,
    UNKNOWN,
    Vocabulary,
    canonical_name,
    names_from_numbers,
    syscall_name,
    syscall_number,
    syscall_table,
)


def test_tables_match_the_kernel_headers():
    x86_64, i386 = syscall_table("x86_64"), syscall_table("i386")
    assert (x86_64[0], x86_64[59], x86_64[231], x86_64[435]) == (
        "read",
        "execve",
        "exit_group",
        "clone3",
    )
    assert (i386[3], i386[11], i386[102], i386[192], i386[252]) == (
        "read",
        "execve",
        "socketcall",
        "mmap2",
        "exit_group",
    )
    assert syscall_number("execve", "x86_64") == 59


def test_adfa_table_agrees_with_the_dataset_copy(adfa_dir):
    shipped = syscall_table("i386")
    lines = (adfa_dir / "syscalls_i386.tsv").read_text().splitlines()[1:]
    for line in lines:
        number, name = line.split("\t")
        assert shipped[int(number)] == name


def test_aliases_fold_old_and_new_spellings():
    assert canonical_name("mmap2") == canonical_name("mmap") == "mmap"
    assert canonical_name("_llseek") == "lseek"
    assert canonical_name("stat64") == "stat"
    assert canonical_name("fstat64") == "fstat"
    assert canonical_name("open") == canonical_name("openat") == "openat"
    assert canonical_name("clone3") == canonical_name("fork") == "clone"
    assert canonical_name("fstatat64") == "newfstatat"
    assert canonical_name("getuid32") == "getuid"
    assert canonical_name("clock_gettime64") == "clock_gettime"
    assert canonical_name("futex_time64") == "futex"
    # socketcall carries its real operation in an argument ADFA-LD lacks.
    assert canonical_name("socketcall") == "socketcall"


def test_unknown_numbers_and_names_never_raise():
    assert syscall_name(99_999, "x86_64") == UNKNOWN
    assert names_from_numbers([3, 10_000, 192], "i386") == ["read", UNKNOWN, "mmap"]
    assert canonical_name("") == UNKNOWN
    assert canonical_name("12abc") == UNKNOWN
    assert canonical_name("syscall_0x1b4") == "syscall_0x1b4"


@given(st.text(max_size=40))
def test_canonical_name_is_total_and_idempotent(text):
    name = canonical_name(text)
    assert canonical_name(name) == name


def test_user_table_overrides_the_kernel_table():
    assert names_from_numbers([1, 2, 7], table={1: "open", 2: "fstat64"}) == [
        "openat",
        "fstat",
        UNKNOWN,
    ]


def test_vocabulary_keeps_the_most_frequent_names():
    traces = [
        ["read"] * 5 + ["write"] * 3 + ["close"] * 3 + ["execve"],
        ["read", UNKNOWN, UNKNOWN, UNKNOWN],
    ]
    vocabulary = Vocabulary.build(traces, name_channels=4)
    # ties (write/close at 3) break by name; UNKNOWN never gets a channel
    assert vocabulary.names == (PAD, OTHER, "read", "close")
    ids = vocabulary.lookup(["read", "write", "close", "never-seen"])
    assert ids.dtype == np.int32
    assert ids.tolist() == [2, OTHER_ID, 3, OTHER_ID]
    assert Vocabulary.from_json(vocabulary.to_json()) == vocabulary
