"""``NeuralToSymbolic``: distil a scorer into one equation (the entry point).

The reference design's API, kept so its users feel at home::

    compressor = NeuralToSymbolic(max_complexity=20)
    compressed = compressor.compress_model(score_fn, hist_sample)
    compressor.export_rust_code(compressed, "run/rust", detector=spec)

Steps: sample -> drop constant channels and keep the ``max_features`` most
correlated with the target -> genetic program (:mod:`.gp`) on 80% of the
sample -> Pareto front -> sympy simplification of each front entry -> the
rule of :func:`.pareto.choose` on the other 20%.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import chex
import numpy as np
import sympy

from sentinel_jax.symbolic.equation import Equation
from sentinel_jax.symbolic.fitting import r2_score
from sentinel_jax.symbolic.gp import GPSettings, evolve
from sentinel_jax.symbolic.pareto import choose
from sentinel_jax.symbolic.simplify import simplify_expression, tree_to_sympy

logger = logging.getLogger(__name__)

ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class CompressedModel:
    """The chosen equation and the front it was chosen from.

    Attributes:
        equation: the chosen equation (simplified, affine wrapper included).
        front: per front entry: complexity, nodes, train_r2, heldout_r2, text.
        chosen: index of the chosen entry in ``front``.
        heldout_r2: R^2 of the chosen equation on the held-out samples.
        best_error: best training error per generation.
        evaluations: fitness evaluations spent.
    """

    equation: Equation
    front: list[dict[str, Any]]
    chosen: int
    heldout_r2: float
    best_error: list[float] = field(default_factory=list)
    evaluations: int = 0


def symbol_names(feature_names: Sequence[str]) -> list[str]:
    """Identifier-safe, unique symbol names for channels."""
    names, seen = [], set()
    for channel, raw in enumerate(feature_names):
        name = re.sub(r"\W", "_", raw).strip("_") or f"x{channel}"
        if name[0].isdigit() or name in seen:
            name = f"x{channel}_{name}"
        seen.add(name)
        names.append(name)
    return names


def select_features(hist: np.ndarray, target: np.ndarray,
                    max_features: int | None) -> np.ndarray:
    """Channels worth searching: non-constant, most correlated first.

    Returns:
        ``int64 [features]`` channel numbers, ascending.
    """
    spread = hist.std(axis=0)
    varying = np.flatnonzero(spread > 0)
    if max_features is None or len(varying) <= max_features:
        return varying
    centred = hist[:, varying] - hist[:, varying].mean(axis=0)
    target_centred = target - target.mean()
    correlation = np.abs(centred.T @ target_centred) / (
        spread[varying] * max(target_centred.std(), 1e-300) * len(target))
    keep = varying[np.argsort(-correlation, kind="stable")[:max_features]]
    return np.sort(keep)


class NeuralToSymbolic:
    """Distils a window scorer into an equation over hist channels.

    Args:
        max_complexity: node budget of the inner expression.
        population: individuals per generation.
        generations: generations.
        max_height: tree height limit.
        seed: search seed (also the fit/held-out split).
        processes: fitness worker processes.
        max_features: channels the search may use (most correlated with the
            target); ``None`` for every non-constant channel.
        tolerance: held-out R^2 the choice gives up for a simpler equation.
        progress: progress bar over generations.
    """

    def __init__(self, max_complexity: int = 20, *, population: int = 100,
                 generations: int = 50, max_height: int = 8, seed: int = 0,
                 processes: int = 1, max_features: int | None = 48,
                 tolerance: float = 0.01, progress: bool = False) -> None:
        self.settings = GPSettings(
            population=population, generations=generations,
            max_complexity=max_complexity, max_height=max_height, seed=seed,
            processes=processes, progress=progress)
        self.max_features = max_features
        self.tolerance = tolerance

    def compress_model(self, model: ScoreFn | None, X_sample: np.ndarray,
                       y_sample: np.ndarray | None = None, *,
                       feature_names: Sequence[str] | None = None
                       ) -> CompressedModel:
        """Fits an equation to ``model``'s scores on ``X_sample``.

        Args:
            model: ``score_fn(hist [batch, channels]) -> [batch]``; may be
                ``None`` when ``y_sample`` is given.
            X_sample: ``float [batch, channels]`` hist rows.
            y_sample: ``[batch]`` targets; computed with ``model`` if ``None``.
            feature_names: a name per channel (symbols of the equation).

        Raises:
            ValueError: on shapes that disagree, a missing target, too few
                samples or a constant target.
        """
        chex.assert_rank(X_sample, 2)
        hist = np.asarray(X_sample, dtype=np.float64)
        if y_sample is None:
            if model is None:
                raise ValueError("compress_model needs a model or y_sample")
            y_sample = model(np.asarray(X_sample))
        target = np.asarray(y_sample, dtype=np.float64).reshape(-1)
        if target.shape[0] != hist.shape[0]:
            raise ValueError(f"{hist.shape[0]} samples but {target.shape[0]} "
                             f"targets")
        if hist.shape[0] < 10 or not np.all(np.isfinite(target)):
            raise ValueError("need at least 10 samples with finite targets")
        if target.std() == 0:
            raise ValueError("the target is constant: nothing to distil")
        names = symbol_names(feature_names or [f"x{c}" for c in
                                               range(hist.shape[1])])

        order = np.random.default_rng(self.settings.seed).permutation(len(hist))
        split = max(int(0.8 * len(hist)), len(hist) - 2000, 5)
        fit_rows, heldout_rows = order[:split], order[split:]
        channels = select_features(hist[fit_rows], target[fit_rows],
                                   self.max_features)
        if len(channels) == 0:
            raise ValueError("every channel is constant on the sample")
        result = evolve(hist[fit_rows][:, channels], target[fit_rows],
                        [int(c) for c in channels], self.settings)

        symbols = {c: sympy.Symbol(names[c], real=True) for c in range(len(names))}
        by_arg = {f"x{c}": symbols[c] for c in channels}
        channel_of = {symbols[c]: c for c in range(len(names))}
        front, equations, heldout = [], [], []
        for entry in result.front:
            inner = tree_to_sympy(entry.expression, by_arg)
            expr = sympy.Float(entry.scale) * inner + sympy.Float(entry.offset)
            raw = Equation(expr, channel_of)
            simple = Equation(simplify_expression(expr), channel_of)
            # Keep the simplified form only if it computes the same scores.
            raw_scores = raw.score(hist[heldout_rows])
            if np.allclose(simple.score(hist[heldout_rows]), raw_scores,
                           rtol=1e-9, atol=1e-9):
                raw = simple
            equations.append(raw)
            r2 = r2_score(raw.score(hist[heldout_rows]), target[heldout_rows])
            heldout.append(r2)
            front.append({"complexity": entry.complexity, "nodes": raw.nodes,
                          "train_r2": 1.0 - entry.error, "heldout_r2": r2,
                          "text": raw.text()})
        chosen = choose(result.front, heldout, self.tolerance)
        logger.info("chose %s (held-out R^2 %.4f) from %d front entries",
                    equations[chosen].text(), heldout[chosen], len(front))
        return CompressedModel(
            equation=_used_symbols_only(equations[chosen]), front=front,
            chosen=chosen, heldout_r2=heldout[chosen],
            best_error=result.best_error, evaluations=result.evaluations)

    def export_rust_code(self, compressed: CompressedModel,
                         output_path: str | os.PathLike[str], *,
                         detector: Any = None) -> Path:
        """Writes Rust for ``compressed``.

        Args:
            compressed: from :meth:`compress_model`.
            output_path: a ``.rs`` file gets the equation as one module (the
                reference design's output); a folder gets the whole detector
                crate, which needs ``detector``.
            detector: a :class:`sentinel_jax.symbolic.rust.DetectorSpec`.
        """
        from sentinel_jax.symbolic import rust

        path = Path(output_path)
        if path.suffix == ".rs":
            return rust.write_equation_module(compressed.equation, path)
        if detector is None:
            raise ValueError("exporting a crate needs detector=DetectorSpec(...)")
        return rust.write_crate(compressed.equation, detector, path)


def _used_symbols_only(equation: Equation) -> Equation:
    used = equation.expression.free_symbols
    return Equation(equation.expression,
                    {s: c for s, c in equation.channel_of.items() if s in used})
