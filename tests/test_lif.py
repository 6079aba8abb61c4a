"""LIF neurons: step order, resets, refractory window, gradients, jit."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sentinel_jax.models.lif import (
    LIFConfig,
    init_lif,
    lif_constants,
    lif_scan,
    lif_step,
)


def python_lif(currents, beta, theta, reset, refractory):
    """The documented step order as a plain loop over numpy floats."""
    time, batch, units = currents.shape
    v = np.zeros((batch, units))
    left = np.zeros((batch, units), int)
    spikes = np.zeros_like(currents)
    for t in range(time):
        for b in range(batch):
            for u in range(units):
                if left[b, u] > 0:
                    left[b, u] -= 1
                    continue
                v[b, u] = beta[u] * v[b, u] + currents[t, b, u]
                if v[b, u] - theta[u] > 0:
                    spikes[t, b, u] = 1.0
                    v[b, u] = v[b, u] - theta[u] if reset == "subtract" else 0.0
                    left[b, u] = refractory
    return spikes, v


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("refractory", [0, 2])
def test_scan_matches_python_loop(reset, refractory):
    rng = np.random.default_rng(0)
    currents = rng.normal(0.2, 0.4, (12, 3, 5)).astype(np.float32)
    params = init_lif(5, threshold=0.5, decay=0.8)
    params["threshold_raw"] = params["threshold_raw"] + jnp.linspace(-0.3, 0.3, 5)
    config = LIFConfig(reset=reset, refractory=refractory)
    state, spikes = lif_scan(params, jnp.asarray(currents), config)
    beta, theta = map(np.asarray, lif_constants(params))
    expected_spikes, expected_v = python_lif(currents, beta, theta, reset, refractory)
    np.testing.assert_array_equal(spikes, expected_spikes)
    np.testing.assert_allclose(state.membrane, expected_v, atol=1e-5)
    assert spikes.sum() > 3


def test_init_gives_requested_decay_and_threshold():
    beta, theta = lif_constants(init_lif(4, threshold=0.7, decay=0.95))
    np.testing.assert_allclose(beta, 0.95, rtol=1e-6)
    np.testing.assert_allclose(theta, 0.7, rtol=1e-6)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_constant_current_membrane_trace_is_analytic(reset):
    # With beta = 0.5, theta = 1, I = 0.6 the membrane climbs 0.6, 0.9, 1.05:
    # a spike at step 3, then the reset leaves 0.05 (subtract) or 0 (zero).
    params = init_lif(1, threshold=1.0, decay=0.5)
    config = LIFConfig(reset=reset)
    state = None
    trace = []
    for _ in range(4):
        state, spikes = lif_scan(params, jnp.full((1, 1, 1), 0.6), config, state)
        trace.append((float(state.membrane[0, 0]), float(spikes[0, 0, 0])))
    after = 0.05 if reset == "subtract" else 0.0
    expected = [(0.6, 0.0), (0.9, 0.0), (after, 1.0), (0.5 * after + 0.6, 0.0)]
    np.testing.assert_allclose(trace, expected, atol=1e-6)


def test_refractory_window_holds_membrane_and_masks_spikes():
    params = init_lif(1, threshold=0.5, decay=0.9)
    currents = jnp.full((9, 1, 1), 2.0)  # strong enough to fire every step
    state, spikes = lif_scan(params, currents, LIFConfig(refractory=3), steps=None)
    np.testing.assert_array_equal(spikes[:, 0, 0], [1, 0, 0, 0, 1, 0, 0, 0, 1])
    _, free = lif_scan(params, currents, LIFConfig(refractory=0))
    assert free.sum() == 9


def test_constant_current_mode_equals_repeated_currents():
    params = init_lif(6)
    current = jax.random.normal(jax.random.key(1), (4, 6))
    _, held = lif_scan(params, current, LIFConfig(), steps=7)
    _, repeated = lif_scan(params, jnp.broadcast_to(current, (7, 4, 6)), LIFConfig())
    np.testing.assert_array_equal(held, repeated)


@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "arctan", "triangle"])
def test_gradients_are_finite_and_nonzero(surrogate):
    config = LIFConfig(surrogate=surrogate, surrogate_slope=5.0, refractory=1)
    currents = 0.3 * jax.random.normal(jax.random.key(0), (10, 4, 8)) + 0.15

    def loss(params, currents):
        _, spikes = lif_scan(params, currents, config)
        return jnp.mean(spikes)

    grads = jax.grad(loss, argnums=(0, 1))(init_lif(8), currents)
    for leaf in jax.tree_util.tree_leaves(grads):
        assert np.all(np.isfinite(leaf))
        assert np.abs(leaf).sum() > 0


class JitAgreementTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_step_and_scan_agree_jitted_or_not(self):
        params = init_lif(5)
        currents = jax.random.uniform(jax.random.key(2), (6, 2, 5))
        config = LIFConfig(refractory=1)
        scan = self.variant(lambda p, c: lif_scan(p, c, config))
        step = self.variant(lambda p, s, c: lif_step(p, s, c, config))
        final, spikes = scan(params, currents)
        chex.assert_shape(spikes, (6, 2, 5))
        state = jax.tree_util.tree_map(jnp.zeros_like, final)
        for t in range(6):
            state, step_spikes = step(params, state, currents[t])
            np.testing.assert_array_equal(step_spikes, spikes[t])
        chex.assert_trees_all_close(state, final)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="reset"):
        LIFConfig(reset="soft")
    with pytest.raises(ValueError, match="decay"):
        init_lif(3, decay=1.0)
