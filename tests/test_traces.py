"""Windows and group-aware splits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentinel_jax.data.tags import tag_mask
from sentinel_jax.data.traces import Trace, split_groups, window_starts


@given(length=st.integers(0, 500), time=st.integers(1, 80), stride=st.integers(1, 80))
def test_windows_cover_every_event_and_stay_inside(length, time, stride):
    starts = window_starts(length, time, stride)
    if length == 0:
        assert len(starts) == 0
        return
    assert starts[0] == 0
    assert np.all(np.diff(starts) > 0)
    assert np.all(np.diff(starts) <= stride)
    last = starts[-1]
    assert last == max(length - time, 0)
    covered = np.zeros(length, bool)
    for start in starts:
        covered[start : start + time] = True
    if stride <= time:
        assert covered.all()


def test_window_starts_examples():
    assert window_starts(10, 4, 3).tolist() == [0, 3, 6]
    assert window_starts(11, 4, 3).tolist() == [0, 3, 6, 7]
    assert window_starts(3, 4, 3).tolist() == [0]


def test_trace_checks_its_shapes_and_keeps_events():
    trace = Trace(
        names=("openat", "read"),
        tags=[tag_mask(["cred_read"]), 0],
        label=1,
        family="privilege_escalation",
        trace_id="t",
    )
    assert trace.group == "t"
    assert [event.tag_names for event in trace.events] == [["cred_read"], []]
    with pytest.raises(ValueError, match="does not match"):
        Trace(names=("read",), tags=[0, 0], label=0)


@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.sampled_from("abc")), min_size=1, max_size=200
    ),
    st.integers(0, 10_000),
)
def test_no_group_lands_on_two_sides(items, seed):
    groups = [f"{family}{group}" for group, family in items]
    strata = [family for _, family in items]
    splits = split_groups(groups, strata, 0.2, 0.2, seed)
    side_of: dict[str, int] = {}
    for group, side in zip(groups, splits, strict=True):
        assert side_of.setdefault(group, int(side)) == side


def test_split_shares_follow_the_fractions():
    groups = [f"g{i}" for i in range(1000)]
    splits = split_groups(groups, ["normal"] * 1000, 0.15, 0.15, seed=1)
    counts = np.bincount(splits, minlength=3)
    assert abs(counts[1] - 150) <= 2 and abs(counts[2] - 150) <= 2
    again = split_groups(groups, ["normal"] * 1000, 0.15, 0.15, seed=1)
    assert np.array_equal(splits, again)
