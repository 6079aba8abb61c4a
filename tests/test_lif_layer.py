"""The hand-written backward pass of a LIF layer equals autodiff of lif_scan."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sentinel_jax.models.lif import LIFConfig, lif_constants, lif_scan
from sentinel_jax.models.lif_layer import lif_layer
from sentinel_jax.models.snn import name_tag_currents, tag_byte_tables, unpack_tags

STEPS, BATCH, UNITS = 12, 5, 7

# Every reset, refractory and detach setting, each twice: a current per step
# whose spikes feed a next layer (fast sigmoid), and a held current read
# through its counts only (triangle).
CASES = [
    (LIFConfig(reset=reset, refractory=refractory, detach_reset=detach,
               surrogate="triangle" if held else "fast_sigmoid",
               surrogate_slope=3.0), held)
    for reset, refractory, detach, held in itertools.product(
        ("subtract", "zero"), (0, 2), (True, False), (False, True))
]


def random_layer(seed: int, held: bool):
    rng = np.random.default_rng(seed)
    params = {"decay_logit": jnp.asarray(rng.normal(2.0, 0.5, UNITS), jnp.float32),
              "threshold_raw": jnp.asarray(rng.normal(0.0, 0.3, UNITS), jnp.float32)}
    shape = (BATCH, UNITS) if held else (STEPS, BATCH, UNITS)
    currents = jnp.asarray(rng.normal(0.3, 0.6, shape), jnp.float32)
    # Weights on the spikes and on their counts: a loss that reads both.
    spike_weights = jnp.asarray(rng.normal(size=(STEPS, BATCH, UNITS)), jnp.float32)
    count_weights = jnp.asarray(rng.normal(size=(BATCH, UNITS)), jnp.float32)
    return params, currents, spike_weights, count_weights


@pytest.mark.parametrize(("config", "held"), CASES, ids=lambda case: (
    f"{case.reset}-r{case.refractory}-"
    f"{'detach' if case.detach_reset else 'attach'}-{case.surrogate}"
    if isinstance(case, LIFConfig) else ("held" if case else "per-step")))
def test_values_and_gradients_equal_autodiff_of_the_scan(config, held):
    params, currents, spike_weights, count_weights = random_layer(
        CASES.index((config, held)), held)
    steps = STEPS if held else None
    keep_spikes = not held

    def reference(params, currents):
        _, spikes = lif_scan(params, currents, config, steps=steps)
        loss = jnp.sum(spikes.sum(0) * count_weights)
        return loss + (jnp.sum(spikes * spike_weights) if keep_spikes else 0.0)

    def hand_written(params, currents):
        beta, theta = lif_constants(params)
        counts, spikes = lif_layer(beta, theta, currents, config, steps=steps,
                                   keep_spikes=keep_spikes)
        assert (spikes is None) != keep_spikes
        loss = jnp.sum(counts * count_weights)
        return loss + (jnp.sum(spikes * spike_weights) if keep_spikes else 0.0)

    value, grads = jax.value_and_grad(reference, argnums=(0, 1))(params, currents)
    hand_value, hand_grads = jax.jit(jax.value_and_grad(hand_written, argnums=(0, 1)))(
        params, currents)
    np.testing.assert_allclose(hand_value, value, rtol=1e-5)  # summation order
    for leaf, hand_leaf in zip(jax.tree.leaves(grads), jax.tree.leaves(hand_grads),
                               strict=True):
        scale = float(jnp.max(jnp.abs(leaf)))
        assert scale > 0  # the test would be empty on silent neurons
        np.testing.assert_allclose(hand_leaf, leaf, atol=1e-5 * scale)


def test_spikes_and_counts_agree_with_lif_scan():
    params, currents, _, _ = random_layer(7, held=False)
    config = LIFConfig(refractory=1)
    beta, theta = lif_constants(params)
    counts, spikes = lif_layer(beta, theta, currents, config)
    _, expected = lif_scan(params, currents, config)
    np.testing.assert_array_equal(spikes, expected)
    np.testing.assert_array_equal(counts, expected.sum(0))
    assert 0 < float(spikes.mean()) < 1


def test_mismatched_current_and_steps_are_refused():
    beta = theta = jnp.ones((3,))
    with pytest.raises(ValueError, match="held"):
        lif_layer(beta, theta, jnp.ones((4, 2, 3)), LIFConfig(), steps=4)
    with pytest.raises(ValueError, match="held"):
        lif_layer(beta, theta, jnp.ones((2, 3)), LIFConfig())


@pytest.mark.parametrize("tag_channels", [32, 20, 3, 0])
def test_tag_byte_tables_give_the_sum_of_the_set_tag_rows(tag_channels):
    rng = np.random.default_rng(tag_channels)
    names = jnp.asarray(rng.normal(size=(10, 6)), jnp.float32)
    tag_rows = jnp.asarray(rng.normal(size=(tag_channels, 6)), jnp.float32)
    ids = jnp.asarray(rng.integers(0, 10, (4, 9)), jnp.int32)
    # Every bit pattern, the high bytes and the bits past tag_channels included.
    tags = jnp.asarray(rng.integers(0, 1 << 32, (4, 9), dtype=np.uint64), jnp.uint32)
    looked_up = name_tag_currents(names, tag_byte_tables(tag_rows), ids, tags)
    expected = names[ids] + unpack_tags(tags, tag_channels) @ tag_rows
    np.testing.assert_allclose(looked_up, expected, rtol=1e-5, atol=1e-5)
