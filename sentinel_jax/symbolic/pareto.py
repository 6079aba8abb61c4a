"""The Pareto front of complexity against error, and the rule that picks one.

The genetic program keeps, for every complexity (node count) it has seen, the
candidate with the lowest error. The front is the subset where each entry is
strictly better than every simpler one.

Selection rule (:func:`choose`): re-score the front on held-out samples, then
take the *simplest* entry whose held-out R^2 is within ``tolerance`` of the
best held-out R^2 on the front. A small loss of fidelity buys a shorter
equation; scoring on held-out samples keeps an over-fitted long equation
from winning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FrontEntry:
    """One equation of the front.

    Attributes:
        complexity: nodes of the inner expression ``f``.
        error: normalised training error, ``1 - R^2``.
        expression: the candidate (a DEAP tree, constants already fitted).
        scale: ``a`` of the affine wrapper ``a * f + b``.
        offset: ``b``.
    """

    complexity: int
    error: float
    expression: Any
    scale: float
    offset: float


class ParetoArchive:
    """Best candidate per complexity over a whole run."""

    def __init__(self) -> None:
        self._best: dict[int, FrontEntry] = {}

    def offer(self, entry: FrontEntry) -> bool:
        """Keeps ``entry`` if it beats the archived one of its complexity."""
        current = self._best.get(entry.complexity)
        if current is None or entry.error < current.error:
            self._best[entry.complexity] = entry
            return True
        return False

    def front(self) -> list[FrontEntry]:
        """Entries each strictly better than all simpler ones, simplest first."""
        result: list[FrontEntry] = []
        for complexity in sorted(self._best):
            entry = self._best[complexity]
            if not result or entry.error < result[-1].error:
                result.append(entry)
        return result


def choose(front: Sequence[FrontEntry], heldout_r2: Sequence[float],
           tolerance: float = 0.01) -> int:
    """Index of the simplest entry within ``tolerance`` R^2 of the best.

    Args:
        front: the front, simplest first.
        heldout_r2: R^2 of each entry on held-out samples.
        tolerance: R^2 the choice may give up for simplicity.

    Raises:
        ValueError: if the front is empty or the lengths differ.
    """
    if not front or len(front) != len(heldout_r2):
        raise ValueError(f"front of {len(front)} entries with "
                         f"{len(heldout_r2)} held-out scores")
    best = max(heldout_r2)
    for index, r2 in enumerate(heldout_r2):
        if r2 >= best - tolerance:
            return index
    raise AssertionError("unreachable: the best entry qualifies")
