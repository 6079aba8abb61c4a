"""STIDE: the classic n-gram lookup detector (Forrest et al. style).

Training records every n-gram of name channels seen in *normal* training
windows. A window's score is the share of its n-grams never seen in normal
behaviour (0: all known, 1: all novel). It uses no labels beyond "normal",
no tags and no learning, which makes it the reference point every learned
detector must beat.

n-grams are packed into one ``int64`` each (``bits`` per name channel), so
the database is a sorted array and lookup is a binary search.
"""

from __future__ import annotations

from dataclasses import dataclass

import chex
import numpy as np

from sentinel_jax.data.syscalls import PAD_ID


def _bits_for(name_channels: int) -> int:
    return max(1, int(np.ceil(np.log2(max(name_channels, 2)))))


def window_ngrams(ids: np.ndarray, n: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Packed n-grams of windows and which of them are real.

    Args:
        ids: ``int32 [batch, time]`` name channels, ``PAD_ID`` for padding.
        n: n-gram length.
        bits: bits per name channel in the packed code.

    Returns:
        ``(codes int64 [batch, time - n + 1], valid bool [batch, time - n + 1])``;
        an n-gram is valid when it holds no padding.
    """
    batch, time = ids.shape
    if time < n:
        raise ValueError(f"windows of {time} events are shorter than n={n}")
    positions = time - n + 1
    codes = np.zeros((batch, positions), dtype=np.int64)
    valid = np.ones((batch, positions), dtype=bool)
    for offset in range(n):
        part = ids[:, offset:offset + positions].astype(np.int64)
        codes = (codes << bits) | part
        valid &= part != PAD_ID
    return codes, valid


@dataclass(frozen=True)
class Stide:
    """A fitted STIDE model.

    Attributes:
        n: n-gram length.
        bits: bits per name channel in a packed n-gram.
        known: sorted unique packed n-grams of normal training windows.
    """

    n: int
    bits: int
    known: np.ndarray

    @classmethod
    def fit(cls, ids: np.ndarray, labels: np.ndarray, name_channels: int,
            n: int = 6) -> Stide:
        """Builds the n-gram database from the normal windows of ``ids``.

        Args:
            ids: ``int32 [batch, time]`` training windows.
            labels: ``int [batch]``; only rows labelled 0 are used.
            name_channels: size of the vocabulary.
            n: n-gram length.

        Raises:
            ValueError: when ``n`` n-grams do not fit in 63 bits, or no window
                is normal.
        """
        chex.assert_rank(ids, 2)
        bits = _bits_for(name_channels)
        if n < 1 or n * bits > 63:
            raise ValueError(f"n={n} with {name_channels} name channels needs "
                             f"{n * bits} bits; at most 63 fit in a code")
        normal = np.asarray(ids)[np.asarray(labels) == 0]
        if not len(normal):
            raise ValueError("STIDE needs normal training windows")
        codes, valid = window_ngrams(normal, n, bits)
        return cls(n=n, bits=bits, known=np.unique(codes[valid]))

    def score(self, ids: np.ndarray) -> np.ndarray:
        """Share of each window's n-grams unseen in training, ``float64 [batch]``."""
        chex.assert_rank(ids, 2)
        codes, valid = window_ngrams(np.asarray(ids), self.n, self.bits)
        slots = np.searchsorted(self.known, codes)
        found = self.known[np.minimum(slots, self.known.size - 1)] == codes
        novel = (~found & valid).sum(axis=1)
        return novel / np.maximum(valid.sum(axis=1), 1)
