"""The ADFA-LD reader on the real files."""

from __future__ import annotations

from collections import Counter

import pytest

from sentinel_jax.data.adfa import (
    ATTACK,
    FAMILIES,
    TRAINING,
    VALIDATION,
    AdfaError,
    drop_duplicates,
    load_adfa,
)
from sentinel_jax.data.syscalls import UNKNOWN


@pytest.fixture(scope="module")
def adfa(adfa_dir):
    return load_adfa(adfa_dir)


def test_counts_families_and_runs(adfa):
    parts = Counter(item.part for item in adfa)
    assert parts == {TRAINING: 833, VALIDATION: 4372, ATTACK: 746}
    attacks = [item for item in adfa if item.part == ATTACK]
    assert {item.trace.family for item in attacks} == set(FAMILIES)
    assert len({item.run for item in attacks}) == 60
    assert Counter(item.trace.family for item in attacks) == {
        "Adduser": 91,
        "Hydra_FTP": 162,
        "Hydra_SSH": 176,
        "Java_Meterpreter": 124,
        "Meterpreter": 75,
        "Web_Shell": 118,
    }
    assert all(item.trace.label == 1 for item in attacks)
    assert all(item.trace.group == f"{ATTACK}/{item.run}" for item in attacks)


def test_traces_are_i386_names_without_tags(adfa):
    first = next(item for item in adfa if item.trace.trace_id.endswith("UTD-0001.txt"))
    assert len(first.trace) > 70
    names = {name for item in adfa for name in item.trace.names}
    assert UNKNOWN not in names  # every number in ADFA-LD is in the i386 table
    assert {"mmap", "openat", "execve", "exit_group"} <= names
    assert "mmap2" not in names  # folded by alias
    assert all(int(item.trace.tags.max(initial=0)) == 0 for item in adfa[:50])


def test_duplicates_are_found(adfa):
    distinct = drop_duplicates(adfa)
    assert len(distinct) == 3852
    kept_attacks = [item for item in distinct if item.part == ATTACK]
    # attack files byte-identical to a normal validation trace go
    assert not any(
        item.trace.trace_id.endswith("UAD-WS10-1083.txt") for item in kept_attacks
    )


def test_a_folder_that_is_not_adfa_is_a_clear_error(tmp_path):
    with pytest.raises(AdfaError, match="missing Training_Data_Master"):
        load_adfa(tmp_path)
    for part in (TRAINING, VALIDATION, ATTACK):
        (tmp_path / part).mkdir()
    (tmp_path / TRAINING / "UTD-0001.txt").write_text("6 6 x")
    with pytest.raises(AdfaError, match="UTD-0001.txt: expected space-separated"):
        load_adfa(tmp_path)
