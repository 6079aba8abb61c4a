"""Constant fitting: the linear wrapper ``a * f(x) + b`` and inner constants.

Every candidate ``f`` is scored after its best affine rescaling, solved in
closed form (ordinary least squares in one variable), so the genetic program
searches for shapes, not scales. The constants inside ``f`` are refined by a
few Levenberg-Marquardt steps on the same objective with a finite-difference
Jacobian; this costs ``constants + 1`` evaluations per step, so it is spent on
the promising candidates only (see :mod:`sentinel_jax.symbolic.gp`).

Errors are normalised: ``error = mse / var(target) = 1 - R^2``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# An error given to candidates that are not finite or constant on the sample.
WORST_ERROR = 1.0


@dataclass(frozen=True)
class LinearFit:
    """``scale * f(x) + offset`` and its normalised error (``1 - R^2``)."""

    scale: float
    offset: float
    error: float


def fit_linear(prediction: np.ndarray, target: np.ndarray) -> LinearFit:
    """Least-squares ``scale`` and ``offset`` for ``prediction``.

    Args:
        prediction: ``float64 [batch]``, the candidate's output.
        target: ``float64 [batch]``, with nonzero variance.

    Returns:
        The fit; a constant or non-finite prediction gets ``scale = 0``,
        ``offset = mean(target)`` and error :data:`WORST_ERROR`.
    """
    target_mean = float(target.mean())
    target_var = float(target.var())
    if not np.all(np.isfinite(prediction)):
        return LinearFit(0.0, target_mean, WORST_ERROR)
    centred = prediction - prediction.mean()
    spread = float(centred @ centred)
    if spread <= 1e-12 * max(1.0, float(np.abs(prediction).max()) ** 2) * len(
            prediction):
        return LinearFit(0.0, target_mean, WORST_ERROR)
    scale = float(centred @ (target - target_mean)) / spread
    offset = target_mean - scale * float(prediction.mean())
    residual = scale * prediction + offset - target
    error = float(residual @ residual) / len(target) / max(target_var, 1e-300)
    if not np.isfinite(error):
        return LinearFit(0.0, target_mean, WORST_ERROR)
    return LinearFit(scale, offset, min(error, WORST_ERROR))


def r2_score(prediction: np.ndarray, target: np.ndarray) -> float:
    """Coefficient of determination of ``prediction`` against ``target``."""
    residual = np.asarray(prediction, np.float64) - target
    total = float(((target - target.mean()) ** 2).sum())
    return 1.0 - float(residual @ residual) / max(total, 1e-300)


def refine_constants(function: Callable[[np.ndarray], np.ndarray],
                     constants: np.ndarray, target: np.ndarray,
                     steps: int = 8, damping: float = 1e-3
                     ) -> tuple[np.ndarray, LinearFit]:
    """Levenberg-Marquardt on the inner constants of a candidate.

    The affine wrapper is re-solved in closed form at every trial point
    (variable projection), so only the inner constants are iterated.

    Args:
        function: constants ``[k]`` -> prediction ``[batch]``.
        constants: starting constants, ``[k]``.
        target: ``[batch]``.
        steps: accepted-or-rejected LM steps.
        damping: initial Marquardt damping.

    Returns:
        The best constants found and their linear fit (never worse than the
        start).
    """
    constants = np.asarray(constants, dtype=np.float64).copy()
    with np.errstate(all="ignore"):
        prediction = function(constants)
        best = fit_linear(prediction, target)
        if constants.size == 0 or best.error >= WORST_ERROR:
            return constants, best
        for _ in range(steps):
            residual = best.scale * prediction + best.offset - target
            # Columns: d prediction / d constant, by forward differences.
            jacobian = np.empty((len(target), constants.size + 2))
            for k in range(constants.size):
                step = 1e-6 * max(1.0, abs(constants[k]))
                shifted = constants.copy()
                shifted[k] += step
                jacobian[:, k] = best.scale * (function(shifted) - prediction) / step
            jacobian[:, -2] = prediction
            jacobian[:, -1] = 1.0
            if not np.all(np.isfinite(jacobian)):
                break
            normal = jacobian.T @ jacobian
            gradient = jacobian.T @ residual
            improved = False
            while damping < 1e8:
                system = normal + damping * np.diag(np.diag(normal) + 1e-12)
                try:
                    delta = np.linalg.solve(system, -gradient)
                except np.linalg.LinAlgError:
                    damping *= 10.0
                    continue
                trial = constants + delta[: constants.size]
                trial_prediction = function(trial)
                trial_fit = fit_linear(trial_prediction, target)
                if trial_fit.error < best.error:
                    constants, prediction, best = trial, trial_prediction, trial_fit
                    damping = max(damping / 10.0, 1e-9)
                    improved = True
                    break
                damping *= 10.0
            if not improved or best.error < 1e-14:
                break
    return constants, best
