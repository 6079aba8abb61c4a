"""B-spline bases: partition of unity, the two paths agree, grid extension."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentinel_jax.models.bspline import (
    bspline_basis,
    extend_grid,
    fit_coefficients,
    uniform_bspline_basis,
    uniform_grid,
)

GRIDS = [(5, 3, (-1.0, 1.0)), (8, 2, (0.0, 1.0)), (3, 1, (-2.0, 4.0))]


@pytest.mark.parametrize(("grid_size", "order", "grid_range"), GRIDS)
def test_partition_of_unity_and_non_negative_inside_grid(grid_size, order, grid_range):
    x = jnp.linspace(*grid_range, 301)
    for basis in (bspline_basis(x, uniform_grid(grid_size, order, grid_range), order),
                  uniform_bspline_basis(x, grid_size, order, grid_range)):
        assert basis.shape == (301, grid_size + order)
        assert float(basis.min()) >= -1e-6
        np.testing.assert_allclose(basis.sum(-1), 1.0, atol=1e-5)


@functools.cache
def _both_paths(grid_size, order, grid_range):
    knots = uniform_grid(grid_size, order, grid_range)
    return (jax.jit(lambda x: bspline_basis(x, knots, order)),
            jax.jit(lambda x: uniform_bspline_basis(x, grid_size, order, grid_range)))


# A fixed length keeps one compiled function per grid across examples.
@given(x=st.lists(st.floats(-4.0, 4.0, width=32), min_size=16, max_size=16),
       grid=st.sampled_from(GRIDS))
def test_fast_uniform_path_agrees_with_cox_de_boor(x, grid):
    general, fast = _both_paths(*grid)
    x = jnp.asarray(x, jnp.float32)
    np.testing.assert_allclose(fast(x), general(x), atol=2e-5)


def test_outside_the_extended_grid_every_basis_is_zero():
    x = jnp.array([-5.0, -2.21, 2.21, 9.0])  # extended knots span +-2.2
    np.testing.assert_array_equal(uniform_bspline_basis(x, 5, 3), 0.0)
    between = uniform_bspline_basis(jnp.array([1.5]), 5, 3)
    assert 0.0 < float(between.sum()) < 1.0  # partial coverage, smooth decay


def test_cox_de_boor_handles_repeated_knots():
    knots = jnp.array([0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 1.0])  # clamped quadratic
    basis = bspline_basis(jnp.linspace(0.0, 0.999, 50), knots, 2)
    assert np.all(np.isfinite(basis))
    np.testing.assert_allclose(basis.sum(-1), 1.0, atol=1e-5)
    assert float(basis[0, 0]) == pytest.approx(1.0)  # clamped end


def test_fit_recovers_a_spline_from_its_samples():
    knots = uniform_grid(6, 3)
    coef = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 9)), jnp.float32)
    x = jnp.linspace(-1.0, 1.0, 200)
    values = jnp.einsum("sk,iok->sio", bspline_basis(x, knots, 3), coef)
    fitted = fit_coefficients(x, values, knots, 3, ridge=1e-9)
    refit_values = jnp.einsum("sk,iok->sio", bspline_basis(x, knots, 3), fitted)
    np.testing.assert_allclose(refit_values, values, atol=1e-3)


@pytest.mark.parametrize("per_input_samples", [False, True])
def test_grid_extension_preserves_the_function(per_input_samples):
    rng = np.random.default_rng(1)
    coef = jnp.asarray(rng.normal(size=(3, 2, 8)), jnp.float32)
    old, new = uniform_grid(5, 3), uniform_grid(10, 3)
    samples = None
    if per_input_samples:  # data-driven samples, one column per input
        samples = jnp.asarray(rng.uniform(-1, 1, (400, 3)), jnp.float32)
    new_coef = extend_grid(coef, old, new, 3, samples)
    assert new_coef.shape == (3, 2, 13)
    x = jnp.linspace(-1.0, 1.0, 97)
    before = jnp.einsum("sk,iok->sio", bspline_basis(x, old, 3), coef)
    after = jnp.einsum("sk,iok->sio", bspline_basis(x, new, 3), new_coef)
    np.testing.assert_allclose(after, before, atol=2e-3)
