"""Traces, windows and group-aware splits.

A :class:`Trace` is the events of one process (or process tree) in order: the
canonical syscall names and, per event, a ``uint32`` tag mask. Every source
(synthetic, ADFA-LD, strace, pid-number files) yields traces; everything after
works on them alone.

Splits are by *group*, never by window: the group of an ADFA-LD attack trace
is its attack run, of a strace process its log file, of anything else the
trace itself. No group lands on two sides.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from sentinel_jax.data.tags import tag_names

NORMAL = "normal"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Event:
    """One system call: its canonical name and its tag mask."""

    name: str
    tags: int = 0

    @property
    def tag_names(self) -> list[str]:
        return tag_names(self.tags)


@dataclass(frozen=True, eq=False)
class Trace:
    """The events of one process or process tree, with its label.

    Attributes:
        names: canonical syscall names, ``[time]``.
        tags: tag mask of each event, ``uint32 [time]``.
        label: 0 for benign, 1 for attack.
        family: attack family, or ``normal``.
        trace_id: unique id within its source (file name, ``log:pid``...).
        group: the unit a split keeps together (attack run, log file).
        source: ``synthetic``, ``adfa``, ``strace`` or ``pidnum``.
        attack_mask: optional ``bool [time]``, True for events an attack
            injected (synthetic traces); ``None`` when unknown.
    """

    names: tuple[str, ...]
    tags: np.ndarray
    label: int
    family: str = NORMAL
    trace_id: str = ""
    group: str = ""
    source: str = ""
    attack_mask: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        tags = np.asarray(self.tags, dtype=np.uint32)
        if tags.shape != (len(self.names),):
            raise ValueError(
                f"trace {self.trace_id!r}: tags shape {tags.shape} does not match "
                f"{len(self.names)} names"
            )
        object.__setattr__(self, "tags", tags)
        if not self.group:
            object.__setattr__(self, "group", self.trace_id)
        if self.label not in (0, 1):
            raise ValueError(f"trace {self.trace_id!r}: label must be 0 or 1")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def events(self) -> Iterator[Event]:
        for name, mask in zip(self.names, self.tags, strict=True):
            yield Event(name, int(mask))

    @classmethod
    def from_names(cls, names: Sequence[str], label: int = 0, **kwargs) -> Trace:
        """A trace without tags (sources that carry no arguments)."""
        return cls(
            names=tuple(names),
            tags=np.zeros(len(names), np.uint32),
            label=label,
            **kwargs,
        )


def window_starts(length: int, time: int, stride: int) -> np.ndarray:
    """Start offsets of the windows of a trace, ``int64 [windows]``.

    Windows of ``time`` events every ``stride`` events; when the stride does not
    land on the end, one more window ends at the last event so no tail goes
    unseen. A trace shorter than ``time`` gives one (padded) window at 0; an
    empty trace gives none.
    """
    if time < 1 or stride < 1:
        raise ValueError(f"time and stride must be >= 1, got {time}, {stride}")
    if length <= 0:
        return np.zeros(0, dtype=np.int64)
    if length <= time:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, length - time + 1, stride, dtype=np.int64)
    if starts[-1] != length - time:
        starts = np.append(starts, length - time)
    return starts


def split_groups(
    groups: Sequence[str],
    strata: Sequence[str],
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> np.ndarray:
    """Assigns each item to a split so that no group is on two sides.

    Groups are shuffled within each stratum (a family, say) and dealt out to
    test, validation and training by their share of items, so every family is
    represented on each side when it has enough groups.

    Args:
        groups: group of each item, ``[items]``.
        strata: stratum of each item (all items of a group share one).
        val_fraction: share of each stratum for validation.
        test_fraction: share of each stratum for test.
        seed: shuffling seed.

    Returns:
        ``int8 [items]``: 0 train, 1 val, 2 test (indices into :data:`SPLITS`).
    """
    if len(groups) != len(strata):
        raise ValueError("groups and strata must have the same length")
    rng = np.random.default_rng(seed)
    group_size: dict[str, int] = {}
    group_stratum: dict[str, str] = {}
    for group, stratum in zip(groups, strata, strict=True):
        group_size[group] = group_size.get(group, 0) + 1
        if group_stratum.setdefault(group, stratum) != stratum:
            raise ValueError(
                f"group {group!r} spans strata {group_stratum[group]!r} and {stratum!r}"
            )
    assignment: dict[str, int] = {}
    for stratum in sorted(set(group_stratum.values())):
        members = sorted(g for g, s in group_stratum.items() if s == stratum)
        order = rng.permutation(len(members))
        total = sum(group_size[g] for g in members)
        test_target, val_target = test_fraction * total, val_fraction * total
        taken_test = taken_val = 0
        for position in order:
            group = members[position]
            size = group_size[group]
            if len(members) < 3:
                # Too few groups to put one on each side: keep them for training.
                assignment[group] = 0
            elif taken_test < test_target:
                assignment[group], taken_test = 2, taken_test + size
            elif taken_val < val_target:
                assignment[group], taken_val = 1, taken_val + size
            else:
                assignment[group] = 0
    return np.array([assignment[g] for g in groups], dtype=np.int8)


def split_traces(
    traces: Sequence[Trace], val_fraction: float, test_fraction: float, seed: int
) -> np.ndarray:
    """Split of each trace (see :func:`split_groups`), stratified by family."""
    return split_groups(
        [t.group for t in traces],
        [t.family for t in traces],
        val_fraction,
        test_fraction,
        seed,
    )
