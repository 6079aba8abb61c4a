"""Spike functions: exact step forward, named surrogate backward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sentinel_jax.models.surrogate import SURROGATE_GRADS, make_spike_fn


@pytest.mark.parametrize("name", sorted(SURROGATE_GRADS))
def test_forward_is_heaviside_and_gradient_is_surrogate(name):
    spike = make_spike_fn(name, 4.0)
    x = jnp.array([-1.0, -0.1, 0.0, 0.05, 2.0])
    np.testing.assert_array_equal(spike(x), [0.0, 0.0, 0.0, 1.0, 1.0])
    grads = jax.vmap(jax.grad(spike))(x)
    np.testing.assert_allclose(grads, SURROGATE_GRADS[name](x, 4.0), rtol=1e-6)
    assert grads[2] == pytest.approx(1.0)  # every surrogate peaks at 1
    assert grads[1] < 1.0 and grads[3] < 1.0


def test_slope_narrows_the_surrogate():
    wide, narrow = make_spike_fn("arctan", 1.0), make_spike_fn("arctan", 20.0)
    assert jax.grad(narrow)(0.3) < jax.grad(wide)(0.3)


def test_triangle_is_zero_outside_its_support():
    assert jax.grad(make_spike_fn("triangle", 2.0))(0.6) == 0.0


def test_bad_names_and_slopes_are_rejected():
    with pytest.raises(ValueError, match="unknown surrogate"):
        make_spike_fn("sigmoidish", 1.0)
    with pytest.raises(ValueError, match="positive"):
        make_spike_fn("arctan", 0.0)
