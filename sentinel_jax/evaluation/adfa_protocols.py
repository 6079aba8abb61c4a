"""Leak-free evaluation protocols for ADFA-LD.

Published ADFA-LD numbers are often inflated by splits that leak: windows of
one trace on both sides, attack runs (one attacker session, many near-copies
of one trace) split across train and test, or classes balanced before the
split. Every protocol here assigns whole traces, and whole attack runs, to one
side only, and picks thresholds on a validation part that never overlaps test.

* :func:`supervised_folds`: attack runs dealt into folds (never split), normal
  traces dealt by file; fold k is the test set of round k.
* :func:`leave_one_family_out`: train without one family, test on it.
* :func:`anomaly_protocol`: fit on Training_Data_Master (normal only), tune on
  part of Validation_Data_Master, test on the rest plus every attack.

Each returns :class:`ProtocolSplit` objects: index arrays into the trace list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sentinel_jax.data.adfa import ATTACK, FAMILIES, TRAINING, VALIDATION, AdfaTrace


@dataclass(frozen=True)
class ProtocolSplit:
    """One round of a protocol: indices into the trace list.

    Attributes:
        name: e.g. ``supervised/fold2`` or ``lofo/Web_Shell``.
        train: traces to fit on.
        val: traces to choose thresholds and stop training on.
        test: traces to report on.
        held_out_family: for leave-one-family-out, the family not trained on.
    """

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    held_out_family: str = ""

    def check_disjoint(self, traces: Sequence[AdfaTrace]) -> None:
        """Raises ``AssertionError`` if a trace or an attack run is on two sides."""
        sides = {"train": self.train, "val": self.val, "test": self.test}
        seen: dict[str, str] = {}
        for side, indices in sides.items():
            for index in indices:
                group = traces[index].trace.group
                other = seen.setdefault(group, side)
                if other != side:
                    raise AssertionError(
                        f"{self.name}: group {group} is in {other} and {side}"
                    )


def _deal(items: Sequence[str], parts: int, rng: np.random.Generator) -> dict[str, int]:
    """Shuffles distinct items and deals them round-robin into ``parts``."""
    distinct = sorted(set(items))
    order = rng.permutation(len(distinct))
    return {distinct[position]: rank % parts for rank, position in enumerate(order)}


def supervised_folds(
    traces: Sequence[AdfaTrace],
    folds: int = 5,
    val_fraction: float = 0.15,
    seed: int = 0,
) -> list[ProtocolSplit]:
    """Protocol 1: k folds over attack runs and normal files.

    Runs are dealt per family so every fold tests every family. Within the
    training side, a share of groups (runs and files) is held out for
    validation.
    """
    rng = np.random.default_rng(seed)
    groups = [item.trace.group for item in traces]
    fold_of_group: dict[str, int] = {}
    normal_groups = [
        g for g, item in zip(groups, traces, strict=True) if item.part != ATTACK
    ]
    fold_of_group.update(_deal(normal_groups, folds, rng))
    for family in FAMILIES:
        runs = [
            g
            for g, item in zip(groups, traces, strict=True)
            if item.part == ATTACK and item.trace.family == family
        ]
        fold_of_group.update(_deal(runs, folds, rng))
    fold = np.array([fold_of_group[g] for g in groups])
    splits = []
    for k in range(folds):
        test = np.flatnonzero(fold == k)
        rest = np.flatnonzero(fold != k)
        train, val = _hold_out(traces, rest, val_fraction, rng)
        splits.append(ProtocolSplit(f"supervised/fold{k}", train, val, test))
    return splits


def _hold_out(
    traces: Sequence[AdfaTrace],
    indices: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Splits ``indices`` into (train, val) by group, stratified by family."""
    val_groups: set[str] = set()
    families = sorted({traces[i].trace.family for i in indices})
    for family in families:
        groups = sorted(
            {traces[i].trace.group for i in indices if traces[i].trace.family == family}
        )
        take = max(1, round(fraction * len(groups))) if len(groups) > 1 else 0
        chosen = rng.choice(len(groups), size=take, replace=False)
        val_groups.update(groups[c] for c in chosen)
    in_val = np.array(
        [traces[i].trace.group in val_groups for i in indices], dtype=bool
    )
    return indices[~in_val], indices[in_val]


def leave_one_family_out(
    traces: Sequence[AdfaTrace],
    test_fraction: float = 0.3,
    val_fraction: float = 0.15,
    seed: int = 0,
) -> list[ProtocolSplit]:
    """Protocol 2: for each family, train without it and test on it.

    Normal traces are split once (by file) into train, validation and test,
    the same for every round; the test side of round F is the normal test
    traces plus every trace of family F. Validation holds normal traces and
    runs of the families that are trained on, never of F.
    """
    rng = np.random.default_rng(seed)
    normal = np.array([i for i, item in enumerate(traces) if item.part != ATTACK])
    order = rng.permutation(len(normal))
    test_count = round(test_fraction * len(normal))
    val_count = round(val_fraction * len(normal))
    normal_test = np.sort(normal[order[:test_count]])
    normal_val = np.sort(normal[order[test_count : test_count + val_count]])
    normal_train = np.sort(normal[order[test_count + val_count :]])
    splits = []
    for family in FAMILIES:
        held = np.array(
            [
                i
                for i, item in enumerate(traces)
                if item.part == ATTACK and item.trace.family == family
            ]
        )
        others = np.array(
            [
                i
                for i, item in enumerate(traces)
                if item.part == ATTACK and item.trace.family != family
            ]
        )
        others_train, others_val = _hold_out(traces, others, val_fraction, rng)
        splits.append(
            ProtocolSplit(
                f"lofo/{family}",
                train=np.sort(np.concatenate([normal_train, others_train])),
                val=np.sort(np.concatenate([normal_val, others_val])),
                test=np.sort(np.concatenate([normal_test, held])),
                held_out_family=family,
            )
        )
    return splits


def anomaly_protocol(
    traces: Sequence[AdfaTrace], tune_fraction: float = 0.3, seed: int = 0
) -> ProtocolSplit:
    """Protocol 3: normal-only training, the classic ADFA-LD anomaly setup.

    Train on Training_Data_Master; tune thresholds on ``tune_fraction`` of
    Validation_Data_Master; test on the rest of it plus all attacks.
    """
    rng = np.random.default_rng(seed)
    train = np.array([i for i, item in enumerate(traces) if item.part == TRAINING])
    validation = np.array(
        [i for i, item in enumerate(traces) if item.part == VALIDATION]
    )
    order = rng.permutation(len(validation))
    tune_count = round(tune_fraction * len(validation))
    tune = np.sort(validation[order[:tune_count]])
    rest = np.sort(validation[order[tune_count:]])
    attacks = np.array([i for i, item in enumerate(traces) if item.part == ATTACK])
    return ProtocolSplit(
        "anomaly", train=train, val=tune, test=np.sort(np.concatenate([rest, attacks]))
    )
