"""KAN layers: the folded matmul equals the edge sum, regularisers, grids."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sentinel_jax.models.bspline import uniform_bspline_basis
from sentinel_jax.models.kan import (
    ACTIVATIONS,
    KAN,
    KANConfig,
    edge_functions,
    extend_kan_layer,
    init_kan_layer,
    kan_layer,
    kan_regularisers,
)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_layer_equals_the_explicit_sum_over_edges(activation):
    config = KANConfig(grid_size=4, spline_order=2, base_activation=activation)
    params = init_kan_layer(jax.random.key(0), 5, 3, config)
    params["bias"] = jnp.arange(3.0)
    x = jax.random.uniform(jax.random.key(1), (7, 5), minval=-1.5, maxval=1.5)
    basis = uniform_bspline_basis(x, 4, 2)  # [batch, in, coeff]
    act = ACTIVATIONS[activation](x)
    edges = (act[..., None] * params["base_weight"]
             + params["spline_weight"] * jnp.einsum("bik,iok->bio", basis,
                                                     params["coef"]))
    expected = edges.sum(1) + params["bias"]
    np.testing.assert_allclose(kan_layer(params, x, config), expected, atol=1e-5)


def test_edge_functions_match_the_layer_on_one_hot_inputs():
    config = KANConfig()
    params = init_kan_layer(jax.random.key(3), 2, 4, config)
    points = jnp.linspace(-1.0, 1.0, 11)
    values = edge_functions(params, points, config)  # [point, in, out]
    # Input 1 at zero contributes w_base * act(0) + spline(0), a constant.
    zero_input = edge_functions(params, jnp.zeros(1), config)[0, 1]
    batch = jnp.stack([points, jnp.zeros_like(points)], axis=1)
    np.testing.assert_allclose(kan_layer(params, batch, config),
                               values[:, 0] + zero_input, atol=1e-5)


def test_regularisers_reward_sparse_layers():
    params = init_kan_layer(jax.random.key(0), 4, 4)
    l1, entropy = kan_regularisers([params])
    sparse = jax.tree_util.tree_map(jnp.zeros_like, params)
    sparse["base_weight"] = sparse["base_weight"].at[0, 0].set(1.0)
    sparse_l1, sparse_entropy = kan_regularisers([sparse])
    assert float(sparse_l1) == pytest.approx(1.0)
    assert float(sparse_entropy) == pytest.approx(0.0, abs=1e-5)
    assert float(entropy) > 2.0 and float(l1) > 1.0
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(
        jax.grad(lambda p: sum(kan_regularisers([p])))(params)))


def test_extended_layer_computes_the_same_function_on_the_grid():
    config = KANConfig(grid_size=5)
    params = init_kan_layer(jax.random.key(4), 6, 3, config)
    params["coef"] = 3.0 * params["coef"]  # make the splines matter
    finer = extend_kan_layer(params, config, 10)
    x = jax.random.uniform(jax.random.key(5), (16, 6), minval=-1.0, maxval=1.0)
    np.testing.assert_allclose(kan_layer(finer, x, KANConfig(grid_size=10)),
                               kan_layer(params, x, config), atol=2e-3)


def test_reference_entry_point_shapes():
    kan = KAN(input_dim=12, hidden_dims=(8, 4))
    params = kan.init(jax.random.key(0))
    logits, features = kan(params, jnp.zeros((3, 12)))
    chex.assert_shape(logits, (3, 2))
    chex.assert_shape(features, (3, 4))


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="base_activation"):
        KANConfig(base_activation="relu6")
    with pytest.raises(ValueError, match="low < high"):
        KANConfig(grid_range=(1.0, -1.0))
