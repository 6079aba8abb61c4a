"""``InferenceEngine``: score system-call sequences with a trained run.

The reference design's API, kept so its users feel at home::

    engine = InferenceEngine("runs/tiny")            # or RUN/checkpoints
    result = engine.detect(["openat", "read", ...], sequence_id="job-1")
    result.is_anomalous, result.confidence, result.anomaly_score
    results = engine.detect_batch([seq_a, seq_b])
    engine.get_performance_stats()["p99_latency_ms"]

A sequence is cut into windows exactly as training cut traces (the run's
``time`` and ``stride``, a tail window, a short sequence padded into one
window) and encoded by the same :func:`~sentinel_jax.data.encode.encode_traces`;
its score is the maximum window score. The network is compiled at load for a
few batch sizes (:class:`~sentinel_jax.scoring.NetworkScorer`), so no call
compiles; ``scorer="equation"`` runs the distilled equation instead.

The result names the events that drove the score: within the top window,
each event's attribution is the score lost when that event is deleted
(occlusion, :func:`~sentinel_jax.scoring.occlusion_attribution`). It costs one
extra batch of ``time`` windows per sequence and works for both scorers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sentinel_jax.data.encode import encode_traces
from sentinel_jax.data.syscalls import (
    ARCHES,
    canonical_name,
    names_from_numbers,
)
from sentinel_jax.data.traces import Trace
from sentinel_jax.errors import InputError
from sentinel_jax.inference_result import (
    DetectionResult,
    LatencyTracker,
    sigmoid,
    top_events,
)
from sentinel_jax.scoring import (
    DEFAULT_BUCKETS,
    EquationScorer,
    NetworkScorer,
    WindowScorer,
    occlusion_attribution,
)
from sentinel_jax.training.checkpoint import TrainedRun, load_run

logger = logging.getLogger(__name__)

SCORERS = ("network", "equation")


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def coerce_events(syscalls: Any, arch: str = "x86_64"
                  ) -> tuple[list[str], np.ndarray]:
    """Canonical names and tag masks of a sequence given in any accepted form.

    Accepted: a :class:`~sentinel_jax.data.traces.Trace`; a sequence of names
    (any spelling, folded by
    :func:`~sentinel_jax.data.syscalls.canonical_name`); a sequence or 1-D
    integer array of syscall numbers (read with ``arch``'s table); a sequence
    of objects with ``name`` and ``tags`` (``Event``, ``StraceCall``).

    Returns:
        ``(names, tags)``: canonical names ``[time]`` and ``uint32 [time]``.

    Raises:
        InputError: for an empty sequence, a string, a non-sequence, mixed
            kinds of items, or an unknown ``arch``.
    """
    if arch not in ARCHES:
        raise InputError(f"unknown architecture {arch!r}; expected one of {ARCHES}")
    if isinstance(syscalls, Trace):
        if not len(syscalls):
            raise InputError("empty sequence: nothing to score")
        return list(syscalls.names), syscalls.tags
    if isinstance(syscalls, str | bytes):
        raise InputError(
            "expected a sequence of system calls (names, numbers or events), got "
            "a string; pass a list such as ['openat', 'read'] (split the text)")
    if isinstance(syscalls, np.ndarray):
        if syscalls.ndim != 1:
            raise InputError(f"expected a 1-D array of system calls, got shape "
                             f"{syscalls.shape}")
        if np.issubdtype(syscalls.dtype, np.integer):
            if not syscalls.size:
                raise InputError("empty sequence: nothing to score")
            names = names_from_numbers(syscalls.tolist(), arch=arch)
            return names, np.zeros(len(names), np.uint32)
        syscalls = syscalls.tolist()
    if not isinstance(syscalls, Iterable):
        raise InputError(f"expected a sequence of system calls (names, numbers or "
                         f"events), got {_describe(syscalls)}")
    items = list(syscalls)
    if not items:
        raise InputError("empty sequence: nothing to score")
    kinds = {type(item) for item in items}
    if all(issubclass(kind, str) for kind in kinds):
        return [canonical_name(item) for item in items], np.zeros(len(items),
                                                                   np.uint32)
    if all(issubclass(kind, int | np.integer) and not issubclass(kind, bool | np.bool_)
           for kind in kinds):
        names = names_from_numbers([int(item) for item in items], arch=arch)
        return names, np.zeros(len(names), np.uint32)
    names, masks = [], np.zeros(len(items), np.uint32)
    for position, item in enumerate(items):
        name, mask = getattr(item, "name", None), getattr(item, "tags", None)
        if not isinstance(name, str) or not isinstance(mask, int | np.integer) or (
                isinstance(mask, bool)) or not 0 <= int(mask) < 1 << 32:
            raise InputError(
                f"item {position} of the sequence is {_describe(item)}; expected "
                f"all items to be syscall names (str), syscall numbers (int) or "
                f"events with a str name and an int tag mask, not a mix")
        names.append(canonical_name(name))
        masks[position] = int(mask)
    return names, masks


def _resolve_run_dir(path: str | Path) -> Path:
    """The run folder for a run folder or its ``checkpoints`` folder."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint or run folder not found: {path}")
    if path.name == "checkpoints" and (path / "spec.json").exists():
        return path.parent
    return path


def load_equation(folder: Path) -> Any:
    """The distilled equation of ``folder/equation.json`` (written by
    ``experiments/distill.py``).

    The expression is rebuilt from its ``srepr`` with sympy, the protected
    operators bound to their sympy functions.

    Raises:
        FileNotFoundError: when there is no ``equation.json``.
        InputError: when it cannot be read back as an equation.
    """
    import json

    import sympy

    from sentinel_jax.symbolic.equation import Equation
    from sentinel_jax.symbolic.simplify import SYMPY_PROTECTED

    path = folder / "equation.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        expression = sympy.sympify(record["srepr"], locals=dict(SYMPY_PROTECTED))
        channels = {str(name): int(channel)
                    for name, channel in record["channels"].items()}
        channel_of = {symbol: channels[symbol.name]
                      for symbol in expression.free_symbols}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError,
            sympy.SympifyError) as error:
        raise InputError(f"{path}: not a readable equation ({error})") from None
    return Equation(expression, channel_of)


def load_equation_scorer(run_dir: Path, time_steps: int,
                         channels: int) -> EquationScorer:
    """The distilled equation of a run (``RUN/symbolic/``) as a scorer.

    Raises:
        InputError: when the run has no distilled equation.
    """
    folder = run_dir / "symbolic"
    try:
        equation = load_equation(folder)
    except FileNotFoundError:
        raise InputError(f"{folder}/equation.json: missing; distil the run "
                         f"first (experiments/distill.py --run {run_dir})"
                         ) from None
    return EquationScorer(equation, time_steps, channels)


class InferenceEngine:
    """Scores system-call sequences with a trained run.

    Args:
        checkpoint_dir: a run folder (or its ``checkpoints`` folder), or an
            already loaded :class:`~sentinel_jax.training.checkpoint.TrainedRun`.
        scorer: ``network`` (the trained hybrid) or ``equation`` (the
            distilled equation in ``RUN/symbolic``).
        batch_sizes: batch buckets the network is compiled for at load.
        arch: syscall table for numeric input (``x86_64``, or ``i386`` for
            ADFA-LD-style sequences); ``detect`` can override it.
        top_k: how many driving events each result names.
        threshold: overrides the run's decision threshold.

    Raises:
        CheckpointError: the run folder or its checkpoint is missing or
            corrupt.
        InputError: a bad ``scorer`` or ``arch``, or no equation.
    """

    def __init__(self, checkpoint_dir: str | Path | TrainedRun, *,
                 scorer: str = "network",
                 batch_sizes: Sequence[int] = DEFAULT_BUCKETS,
                 arch: str = "x86_64", top_k: int = 5,
                 threshold: float | None = None) -> None:
        if scorer not in SCORERS:
            raise InputError(f"scorer must be one of {SCORERS}, got {scorer!r}")
        if arch not in ARCHES:
            raise InputError(f"arch must be one of {ARCHES}, got {arch!r}")
        began = time.perf_counter()
        run = (checkpoint_dir if isinstance(checkpoint_dir, TrainedRun)
               else load_run(_resolve_run_dir(checkpoint_dir)))
        self.run = run
        self.vocabulary = run.vocabulary
        self.config = run.config
        self.time_steps = run.spec.time
        self.stride = run.config.data.stride
        self.channels = run.spec.channels
        self.arch = arch
        self.top_k = top_k
        self.threshold = float(run.threshold)
        self.scorer: WindowScorer
        if scorer == "network":
            self.scorer = NetworkScorer(run.params, run.spec, batch_sizes)
        else:
            # The equation is fitted to the network's scores, so the run's
            # threshold applies to it as it is.
            self.scorer = load_equation_scorer(Path(run.run_dir),
                                               self.time_steps, self.channels)
        if threshold is not None:
            self.threshold = float(threshold)
        self.load_seconds = time.perf_counter() - began
        self._latency = LatencyTracker()
        logger.info("loaded %s (%s scorer, threshold %.4f) in %.1fs",
                    run.run_dir, scorer, self.threshold, self.load_seconds)

    @property
    def compilations(self) -> int:
        """Executables compiled at load (none are compiled afterwards)."""
        return int(getattr(self.scorer, "compilations", 0))

    def score_windows(self, ids: np.ndarray, tags: np.ndarray,
                      hist: np.ndarray) -> np.ndarray:
        """Window scores ``float32 [batch]`` of already encoded windows."""
        return self.scorer(ids, tags, hist)

    def detect(self, syscalls: Any, sequence_id: str | None = None, *,
               arch: str | None = None, explain: bool = True) -> DetectionResult:
        """The verdict on one sequence of any length.

        Args:
            syscalls: names, numbers, events or a trace (see
                :func:`coerce_events`).
            sequence_id: a name carried into the result.
            arch: syscall table for numbers; the engine's by default.
            explain: find the events that drove the score (occlusion).

        Raises:
            InputError: on an empty sequence or input of the wrong type.
        """
        return self.detect_batch([syscalls], [sequence_id], arch=arch,
                                 explain=explain)[0]

    def detect_batch(self, sequences: Sequence[Any],
                     sequence_ids: Sequence[str | None] | None = None, *,
                     arch: str | None = None, explain: bool = True
                     ) -> list[DetectionResult]:
        """Verdicts on many sequences, scored together in large batches.

        Equals calling :meth:`detect` on each. Raises :class:`InputError`
        naming the first bad sequence by its position.
        """
        began = time.perf_counter()
        if isinstance(sequences, str | bytes | np.ndarray) or not isinstance(
                sequences, Sequence):
            raise InputError(f"detect_batch expects a list of sequences, got "
                             f"{_describe(sequences)}")
        if sequence_ids is None:
            sequence_ids = [None] * len(sequences)
        if len(sequence_ids) != len(sequences):
            raise InputError(f"{len(sequences)} sequences but "
                             f"{len(sequence_ids)} sequence ids")
        traces = []
        for position, syscalls in enumerate(sequences):
            try:
                names, masks = coerce_events(syscalls, arch or self.arch)
            except InputError as error:
                prefix = f"sequence {position}: " if len(sequences) > 1 else ""
                raise InputError(f"{prefix}{error}") from None
            traces.append(Trace(names=tuple(names), tags=masks, label=0))
        if not traces:
            return []

        windows = encode_traces(traces, self.vocabulary, self.time_steps,
                                self.stride, self.channels)
        scores = self.scorer(windows.ids, windows.tags, windows.hist)
        bounds = np.searchsorted(windows.trace_index, np.arange(len(traces) + 1))
        top_rows = np.array([bounds[i] + int(np.argmax(scores[bounds[i]:bounds[i + 1]]))
                             for i in range(len(traces))])
        attributions = (occlusion_attribution(
            self.scorer, windows.ids[top_rows], windows.tags[top_rows],
            windows.lengths[top_rows], scores[top_rows], len(self.vocabulary),
            self.channels) if explain else [None] * len(traces))
        latency = time.perf_counter() - began
        self._latency.record(latency, len(traces), len(windows))

        results = []
        for index, trace in enumerate(traces):
            rows = slice(bounds[index], bounds[index + 1])
            window_scores = scores[rows]
            top = int(top_rows[index] - bounds[index])
            start = int(windows.starts[top_rows[index]])
            score = float(window_scores[top])
            length = int(windows.lengths[top_rows[index]])
            drivers = () if attributions[index] is None else top_events(
                trace.names[start:start + length], trace.tags[start:start + length],
                start, attributions[index], self.top_k)
            results.append(DetectionResult(
                sequence_id=sequence_ids[index],
                is_anomalous=bool(score >= self.threshold),
                confidence=sigmoid(abs(score - self.threshold)),
                anomaly_score=score, threshold=self.threshold,
                window_scores=window_scores.copy(),
                window_starts=windows.starts[rows].copy(), top_window=top,
                top_events=drivers, num_events=len(trace),
                unknown_events=sum(name not in self.vocabulary
                                   for name in trace.names),
                scorer=self.scorer.name, latency_ms=latency * 1e3))
        return results

    def get_performance_stats(self) -> dict[str, float]:
        """Latency (avg, p50, p99, max in ms) and throughput of detect calls.

        ``throughput`` is sequences per second of detect time, ``windows_per_s``
        windows per second; ``compilations`` counts executables compiled at
        load.
        """
        stats = self._latency.stats()
        stats.update(compilations=self.compilations,
                     load_seconds=round(self.load_seconds, 3))
        return stats
