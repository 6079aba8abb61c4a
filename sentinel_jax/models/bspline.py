"""B-spline bases, and grid extension that refits coefficients.

A grid of ``grid_size`` intervals over ``[low, high]`` is extended by
``order`` knots on each side, giving ``grid_size + 2 * order + 1`` knots and
``coeff = grid_size + order`` basis functions of degree ``order``.

Behaviour by region of ``x``:

* inside ``[low, high]`` the bases are non-negative and sum to 1 (partition
  of unity), so a spline there is a weighted average of its coefficients;
* in the ``order`` extra intervals on each side only some bases reach, so
  the sum falls smoothly towards 0;
* beyond the extended knots every basis is exactly 0. A KAN layer's base
  activation still carries such inputs.

Two evaluators agree to float32 rounding: :func:`bspline_basis` runs the
Cox-de Boor recursion on any non-decreasing knot vector (repeated knots
included); :func:`uniform_bspline_basis` is the fast path for uniform grids,
which evaluates only the ``order + 1`` local polynomials of the interval that
holds ``x`` and places them in their slots.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np


def check_grid(grid_size: int, order: int, grid_range: tuple[float, float]) -> None:
    """Raises ``ValueError`` unless ``grid_size >= 1``, ``order >= 0`` and
    ``low < high`` (plain Python: runs no JAX operation)."""
    low, high = grid_range
    if grid_size < 1 or order < 0 or not low < high:
        raise ValueError(f"need grid_size >= 1, order >= 0 and low < high, got "
                         f"{grid_size}, {order}, {grid_range}")


def uniform_grid(grid_size: int, order: int,
                 grid_range: tuple[float, float] = (-1.0, 1.0)) -> jax.Array:
    """Extended uniform knots, ``float32 [grid_size + 2 * order + 1]``."""
    check_grid(grid_size, order, grid_range)
    low, high = grid_range
    step = (high - low) / grid_size
    positions = np.arange(-order, grid_size + order + 1, dtype=np.float64)
    return jnp.asarray(low + positions * step, jnp.float32)


def bspline_basis(x: jax.Array, knots: jax.Array, order: int) -> jax.Array:
    """B-spline bases by the Cox-de Boor recursion, for any knot vector.

    Intervals are half-open, ``[t_j, t_j+1)``; terms over repeated knots
    (zero-width intervals) are taken as 0.

    Args:
        x: points, any shape ``[...]``.
        knots: non-decreasing ``[knot]``.
        order: polynomial degree (3 for cubic).

    Returns:
        ``float32 [..., knot - order - 1]``.
    """
    chex.assert_rank(knots, 1)
    x = jnp.asarray(x, jnp.float32)[..., None]
    knots = jnp.asarray(knots, jnp.float32)
    basis = ((x >= knots[:-1]) & (x < knots[1:])).astype(jnp.float32)
    for degree in range(1, order + 1):
        left_width = knots[degree:-1] - knots[:-degree - 1]
        right_width = knots[degree + 1:] - knots[1:-degree]
        left = (x - knots[:-degree - 1]) * _safe_reciprocal(left_width)
        right = (knots[degree + 1:] - x) * _safe_reciprocal(right_width)
        basis = left * basis[..., :-1] + right * basis[..., 1:]
    return basis


def _safe_reciprocal(width: jax.Array) -> jax.Array:
    safe = jnp.where(width > 0, width, 1.0)
    return jnp.where(width > 0, 1.0 / safe, 0.0)


def uniform_bspline_basis(x: jax.Array, grid_size: int, order: int,
                          grid_range: tuple[float, float] = (-1.0, 1.0)
                          ) -> jax.Array:
    """B-spline bases on the uniform grid of :func:`uniform_grid`, fast.

    Args:
        x: points, any shape ``[...]``.
        grid_size: intervals over ``grid_range``.
        order: polynomial degree.
        grid_range: ``(low, high)``.

    Returns:
        ``float32 [..., grid_size + order]``; equal to :func:`bspline_basis`
        on ``uniform_grid(grid_size, order, grid_range)``.
    """
    low, high = grid_range
    step = (high - low) / grid_size
    coeff = grid_size + order
    position = (jnp.asarray(x, jnp.float32) - (low - order * step)) / step
    interval = jnp.floor(position)
    frac = position - interval

    # local[r] = value of the basis whose support starts r intervals to the
    # left, i.e. the cardinal B-spline N_p at frac + r (de Boor's triangle).
    local = [jnp.ones_like(frac)]
    for degree in range(1, order + 1):
        previous = local + [jnp.zeros_like(frac)]
        local = [((frac + r) * previous[r]
                  + (degree + 1 - frac - r) * (previous[r - 1] if r else 0.0))
                 / degree for r in range(degree + 1)]

    # Basis j is nonzero on intervals j .. j + order: offset r = interval - j.
    offset = interval.astype(jnp.int32)[..., None] - jnp.arange(coeff)
    basis = jnp.zeros(offset.shape, jnp.float32)
    for r, value in enumerate(local):
        basis = jnp.where(offset == r, value[..., None], basis)
    return basis


def fit_coefficients(samples: jax.Array, values: jax.Array, knots: jax.Array,
                     order: int, ridge: float = 1e-6) -> jax.Array:
    """Least-squares spline coefficients reproducing ``values`` at ``samples``.

    Args:
        samples: ``[sample]`` points shared by all inputs, or ``[sample, in]``.
        values: ``[sample, in, out]`` targets.
        knots: ``[knot]`` of the spline to fit.
        order: its degree.
        ridge: Tikhonov term that keeps unreached bases at 0, not arbitrary.

    Returns:
        ``[in, out, coeff]`` coefficients.
    """
    chex.assert_rank(values, 3)
    num_samples, inputs, _ = values.shape
    if samples.ndim == 1:
        samples = jnp.broadcast_to(samples[:, None], (num_samples, inputs))
    basis = bspline_basis(samples.T, knots, order)  # [in, sample, coeff]
    gram = jnp.einsum("isk,isl->ikl", basis, basis)
    gram = gram + ridge * jnp.eye(basis.shape[-1])
    moments = jnp.einsum("isk,sio->iko", basis, values)
    solution = jnp.linalg.solve(gram, moments)  # [in, coeff, out]
    return jnp.transpose(solution, (0, 2, 1))


def extend_grid(coef: jax.Array, old_knots: jax.Array, new_knots: jax.Array,
                order: int, samples: jax.Array | None = None) -> jax.Array:
    """Refits spline coefficients onto a new (usually finer) grid.

    The new coefficients reproduce the old splines at ``samples`` by least
    squares. When the new knots include the old ones inside the sampled range
    (e.g. ``grid_size`` doubled over the same range) the function there is
    preserved exactly, up to rounding.

    Args:
        coef: ``[in, out, coeff_old]``.
        old_knots: ``[coeff_old + order + 1]``.
        new_knots: ``[coeff_new + order + 1]``.
        order: degree of both splines.
        samples: ``[sample]`` or ``[sample, in]``; by default, 8 points per
            new basis spread evenly over the old grid's inner range.

    Returns:
        ``[in, out, coeff_new]``.
    """
    chex.assert_rank(coef, 3)
    if samples is None:
        low, high = old_knots[order], old_knots[-order - 1]
        count = 8 * (new_knots.shape[0] - order - 1)
        samples = jnp.linspace(low, high, count)
    samples = jnp.asarray(samples, jnp.float32)
    if samples.ndim == 1:
        old_basis = bspline_basis(samples, old_knots, order)  # [sample, coeff]
        values = jnp.einsum("sk,iok->sio", old_basis, coef)
    else:
        old_basis = bspline_basis(samples, old_knots, order)  # [sample, in, coeff]
        values = jnp.einsum("sik,iok->sio", old_basis, coef)
    with jax.default_matmul_precision("highest"):
        return fit_coefficients(samples, values, new_knots, order)
