"""Window scorers for inference: the network, compiled once, or the equation.

A scorer maps encoded windows (``ids``, ``tags``, ``hist``) to anomaly scores,
``float32 [batch]``, on the scale the run's threshold was chosen on (the
attack log-odds ``logit[attack] - logit[normal]``). Two kinds share that
contract:

* :class:`NetworkScorer` runs the trained hybrid. It compiles ahead of time,
  at construction, one executable per *batch bucket* (1, 8, 64, 512 windows by
  default); a call cuts its windows into chunks of the largest bucket and pads
  the last chunk up to the smallest bucket that holds it. Ahead-of-time
  executables cannot retrace, so after construction no call ever compiles.
* :class:`EquationScorer` evaluates the distilled equation over the ``hist``
  rows with numpy, for hosts that should not run the network.

:func:`occlusion_windows` builds what :func:`occlusion_attribution` scores to
say which events of a window drove its score.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import chex
import jax
import jax.numpy as jnp
import numpy as np

from sentinel_jax.data.encode import histogram
from sentinel_jax.data.syscalls import PAD_ID
from sentinel_jax.models.hybrid import HybridSpec, prepare_hybrid, prepared_logits
from sentinel_jax.training.checkpoint import tree_digest

logger = logging.getLogger(__name__)

DEFAULT_BUCKETS = (1, 8, 64, 512)
# Buckets up to this many windows are compiled with the parameters baked in
# as constants. At batch 1 handing over the prepared parameters (24 arrays)
# cost about 40 us of a 0.1 ms call; larger batches take them as arguments.
BAKED_MAX_BATCH = 8
# (spec, batch) -> executable taking the parameters; (spec, batch, digest of
# the parameters) -> executable with them baked in. Either way every run of
# one architecture (and every engine of one run) shares its executables
# within a process.
_EXECUTABLES: dict[tuple, Any] = {}


class WindowScorer(Protocol):
    """Anything that scores encoded windows."""

    name: str

    def __call__(self, ids: np.ndarray, tags: np.ndarray,
                 hist: np.ndarray) -> np.ndarray:
        """Scores ``float32 [batch]`` of windows ``[batch, time]``."""
        ...

    def dispatch(self, ids: np.ndarray, tags: np.ndarray,
                 hist: np.ndarray) -> Callable[[], np.ndarray]:
        """Starts scoring; the returned function waits for the scores."""
        ...


def _check_windows(ids: np.ndarray, tags: np.ndarray, hist: np.ndarray,
                   time_steps: int, channels: int) -> None:
    batch = hist.shape[0]
    chex.assert_shape(ids, (batch, time_steps))
    chex.assert_shape(tags, (batch, time_steps))
    chex.assert_shape(hist, (batch, channels))


class NetworkScorer:
    """The trained hybrid, compiled once per batch bucket.

    Args:
        params: the hybrid's parameters.
        spec: the hybrid's static description.
        batch_sizes: the buckets; each is compiled at construction.

    Attributes:
        compilations: executables this scorer compiled (a bucket already
            compiled for the same spec in this process is reused).
        compile_seconds: time spent compiling them.
    """

    name = "network"

    def __init__(self, params: Any, spec: HybridSpec,
                 batch_sizes: Sequence[int] = DEFAULT_BUCKETS) -> None:
        buckets = sorted({int(size) for size in batch_sizes})
        if not buckets or buckets[0] < 1:
            raise ValueError(f"batch_sizes must be positive, got {batch_sizes}")
        self.spec = spec
        self.params = params
        # Parameter-only work (LIF constants, folded KAN weights) is done once
        # here, not on every call: at batch 1 it was most of the latency.
        self.prepared = jax.jit(prepare_hybrid, static_argnums=1)(params, spec)
        self.buckets = tuple(buckets)

        began = time.perf_counter()
        self._executables = {}
        self.compilations = 0
        for size in self.buckets:
            self._executables[size], compiled = compile_window_scores(
                self.prepared, spec, size, baked=size <= BAKED_MAX_BATCH)
            self.compilations += compiled
        self.compile_seconds = time.perf_counter() - began
        logger.info("compiled the network for batches %s in %.1fs",
                    self.buckets, self.compile_seconds)

    def bucket(self, windows: int) -> int:
        """The compiled batch size a chunk of ``windows`` windows runs at."""
        for size in self.buckets:
            if size >= windows:
                return size
        return self.buckets[-1]

    def __call__(self, ids: np.ndarray, tags: np.ndarray,
                 hist: np.ndarray) -> np.ndarray:
        """Scores ``float32 [batch]``.

        Args:
            ids: ``int32 [batch, time]``.
            tags: ``uint32 [batch, time]``.
            hist: ``float32 [batch, channels]``.
        """
        return self.dispatch(ids, tags, hist)()

    def dispatch(self, ids: np.ndarray, tags: np.ndarray,
                 hist: np.ndarray) -> Callable[[], np.ndarray]:
        """Starts scoring and returns at once; the returned function waits
        for the scores. The device computes while the host goes on (the live
        monitor parses the next lines meanwhile)."""
        _check_windows(ids, tags, hist, self.spec.time, self.spec.channels)
        total = hist.shape[0]
        largest = self.buckets[-1]
        pending = []
        for begin in range(0, total, largest):
            end = min(begin + largest, total)
            size = self.bucket(end - begin)
            chunk = [_pad_rows(np.asarray(array[begin:end], dtype), size)
                     for array, dtype in ((ids, np.int32), (tags, np.uint32),
                                          (hist, np.float32))]
            pending.append((begin, end, self._executables[size](*chunk)))

        def collect() -> np.ndarray:
            scores = np.empty(total, np.float32)
            for begin, end, result in pending:
                scores[begin:end] = np.asarray(result)[: end - begin]
            return scores

        return collect


def compile_window_scores(prepared: Any, spec: HybridSpec, batch: int, *,
                          baked: bool) -> tuple[Callable[..., jax.Array], bool]:
    """The hybrid's window scores, compiled ahead of time for one batch size.

    Args:
        prepared: from :func:`~sentinel_jax.models.hybrid.prepare_hybrid`.
        spec: the hybrid's static description.
        batch: windows per call.
        baked: compile the parameters in as constants (fastest for small
            batches) instead of passing them on every call.

    Returns:
        ``(scores, compiled)``: ``scores(ids, tags, hist)`` gives
        ``float32 [batch]`` from ``int32 [batch, time]``, ``uint32 [batch,
        time]`` and ``float32 [batch, channels]``; ``compiled`` is False when
        an executable of this process was reused.
    """
    def window_scores(prepared, ids, tags, hist):
        logits = prepared_logits(prepared, spec, ids, tags, hist)
        return logits[:, 1] - logits[:, 0]

    shapes = (jax.ShapeDtypeStruct((batch, spec.time), jnp.int32),
              jax.ShapeDtypeStruct((batch, spec.time), jnp.uint32),
              jax.ShapeDtypeStruct((batch, spec.channels), jnp.float32))
    key = (spec, batch, tree_digest(prepared)) if baked else (spec, batch)
    compiled = key not in _EXECUTABLES
    if compiled:
        if baked:
            lowered = jax.jit(functools.partial(window_scores, prepared)).lower(*shapes)
        else:
            lowered = jax.jit(window_scores).lower(prepared, *shapes)
        _EXECUTABLES[key] = lowered.compile()
    executable = _EXECUTABLES[key]
    return (executable if baked else functools.partial(executable, prepared)), compiled


def _pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    """``array`` with zero rows appended up to ``rows``."""
    missing = rows - array.shape[0]
    if missing <= 0:
        return array
    padding = np.zeros((missing, *array.shape[1:]), array.dtype)
    return np.concatenate([array, padding])


class EquationScorer:
    """The distilled equation over ``hist`` rows (numpy, float64 inside).

    Args:
        equation: anything with ``score(hist [batch, channels]) -> [batch]``,
            such as :class:`sentinel_jax.symbolic.equation.Equation`.
        time_steps: events per window of the run.
        channels: hist channels of the run.
    """

    name = "equation"

    def __init__(self, equation: Any, time_steps: int, channels: int) -> None:
        self.equation = equation
        self.time_steps = time_steps
        self.channels = channels
        self.compilations = 0

    def dispatch(self, ids: np.ndarray, tags: np.ndarray,
                 hist: np.ndarray) -> Callable[[], np.ndarray]:
        """Scores now (numpy is synchronous); returns them through a function
        as :meth:`NetworkScorer.dispatch` does."""
        scores = self(ids, tags, hist)
        return lambda: scores

    def __call__(self, ids: np.ndarray, tags: np.ndarray,
                 hist: np.ndarray) -> np.ndarray:
        """Scores ``float32 [batch]`` from ``hist`` alone."""
        _check_windows(ids, tags, hist, self.time_steps, self.channels)
        if hist.shape[0] == 0:
            return np.zeros(0, np.float32)
        scores = np.asarray(self.equation.score(hist), np.float64)
        # A protected operator can still overflow; never alert on NaN.
        scores = np.nan_to_num(scores, nan=-np.inf)
        return scores.astype(np.float32)


def occlusion_windows(ids: np.ndarray, tags: np.ndarray, lengths: np.ndarray,
                      name_channels: int, channels: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each window with each of its real events deleted in turn.

    Deleting event ``i`` shifts the later events left and pads the end, so
    the variant is the window the process would have produced without that
    call; its hist is recomputed over the remaining events.

    Args:
        ids: ``int32 [batch, time]``.
        tags: ``uint32 [batch, time]``.
        lengths: ``int32 [batch]`` real events per window.
        name_channels: name channels of the vocabulary.
        channels: all hist channels.

    Returns:
        ``(ids, tags, hist, source)``: the variants ``[variants, time]``,
        their hist ``[variants, channels]`` and, per variant, the row of the
        window it came from, ``int64 [variants]``; the variants of a window
        are in event order.
    """
    chex.assert_rank([ids, tags, lengths], [2, 2, 1])
    time_steps = ids.shape[1]
    source = np.repeat(np.arange(len(lengths)), lengths)
    # Position of the deleted event of each variant, 0..length-1 per window.
    offsets = np.concatenate([np.arange(n) for n in lengths]) if len(
        source) else np.zeros(0, np.int64)
    positions = np.arange(time_steps)
    # Column j of a variant reads column j (before the hole) or j + 1.
    columns = positions + (positions >= offsets[:, None])  # [variants, time]
    valid = columns < lengths[source][:, None]
    columns = np.minimum(columns, time_steps - 1)
    variant_ids = np.where(valid, ids[source[:, None], columns], PAD_ID)
    variant_tags = np.where(valid, tags[source[:, None], columns], 0)
    variant_ids = variant_ids.astype(np.int32)
    variant_tags = variant_tags.astype(np.uint32)
    variant_lengths = (lengths[source] - 1).astype(np.int32)
    hist = histogram(variant_ids, variant_tags, variant_lengths, name_channels,
                     channels)
    return variant_ids, variant_tags, hist, source


def occlusion_attribution(scorer: WindowScorer, ids: np.ndarray,
                          tags: np.ndarray, lengths: np.ndarray,
                          scores: np.ndarray, name_channels: int,
                          channels: int) -> list[np.ndarray]:
    """How much each event raised its window's score, by deletion.

    ``attribution[i] = score(window) - score(window without event i)``: a
    positive value means the event pushed the window towards "attack". One
    batch of ``sum(lengths)`` windows, so about ``time`` forward passes per
    explained window; it works alike for the network and the equation.

    Args:
        scorer: the scorer that gave ``scores``.
        ids: ``int32 [batch, time]``.
        tags: ``uint32 [batch, time]``.
        lengths: ``int32 [batch]``.
        scores: ``float32 [batch]`` of the windows themselves.
        name_channels: name channels of the vocabulary.
        channels: all hist channels.

    Returns:
        Per window, ``float32 [length]`` attributions of its events.
    """
    lengths = np.asarray(lengths, np.int64)
    variant_ids, variant_tags, hist, source = occlusion_windows(
        ids, tags, lengths, name_channels, channels)
    variant_scores = scorer(variant_ids, variant_tags, hist)
    drops = np.asarray(scores, np.float32)[source] - variant_scores
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [drops[bounds[row]:bounds[row + 1]] for row in range(len(lengths))]
