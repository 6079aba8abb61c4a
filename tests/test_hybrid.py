"""The hybrid: shapes and dtypes, both encodings, ablations, learning."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sentinel_jax.config import DataConfig, ModelConfig
from sentinel_jax.models import (
    HybridSNNKAN,
    HybridSpec,
    SpikingNeuralNetwork,
    apply_hybrid,
    count_parameters,
    extend_hybrid_grid,
    forward_flops,
    init_hybrid,
    kan_inputs,
    kan_spline_functions,
    parameter_bytes,
    prepare_hybrid,
    prepared_logits,
    snn_spike_trains,
)
from sentinel_jax.models import snn as snn_module
from sentinel_jax.models.dense import mlp
from sentinel_jax.models.kan import apply_kan
from sentinel_jax.models.lif import LIFConfig
from sentinel_jax.models.snn import init_snn, snn_rates, snn_spikes

SMALL = HybridSpec(channels=24, name_channels=16, time=12, snn_hidden=(16, 8),
                   kan_hidden=(8, 4), fusion_hidden=(8,))


def windows(spec, batch, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, spec.name_channels, (batch, spec.time)).astype(np.int32)
    ids[:, -3:] = 0  # padding at the end of short windows
    tags = (rng.integers(0, 1 << 8, (batch, spec.time)) * (ids > 0)).astype(np.uint32)
    hist = rng.dirichlet(np.ones(spec.channels), batch).astype(np.float32)
    return jnp.asarray(ids), jnp.asarray(tags), jnp.asarray(hist)


@pytest.mark.parametrize("encoding", ["event", "rate"])
@pytest.mark.parametrize("branches", [("snn", "kan"), ("snn",), ("kan",)])
def test_output_shapes_and_dtypes(encoding, branches):
    spec = dataclasses.replace(SMALL, encoding=encoding, branches=branches)
    params = init_hybrid(jax.random.key(0), spec)
    out = jax.jit(apply_hybrid, static_argnums=1)(params, spec, *windows(spec, 5))
    chex.assert_shape(out.logits, (5, 2))
    chex.assert_type(out.logits, jnp.float32)
    chex.assert_tree_all_finite(out.logits)
    assert (out.snn_logits is not None) == ("snn" in branches)
    assert (out.kan_logits is not None) == ("kan" in branches)
    if "snn" in branches:
        chex.assert_shape(out.spike_rates, [(5, 16), (5, 8)])
        assert all(float(r.min()) >= 0.0 and float(r.max()) <= 1.0
                   for r in out.spike_rates)
    else:
        assert out.spike_rates == () and float(out.kan_l1) > 0


@pytest.mark.parametrize("encoding", ["event", "rate"])
@pytest.mark.parametrize("branches", [("snn", "kan"), ("snn",), ("kan",)])
def test_prepared_parameters_give_the_same_logits(encoding, branches):
    # Inference prepares parameters once and, up to _SMALL_BATCH windows,
    # runs the spiking branch layer by layer. Its logits must equal those
    # built from the unprepared reference pieces: the rasters of snn_spikes,
    # the per-layer KAN (folding its weights on every call), the fusion MLP.
    spec = dataclasses.replace(SMALL, encoding=encoding, branches=branches)
    params = init_hybrid(jax.random.key(3), spec)
    prepared = jax.jit(prepare_hybrid, static_argnums=1)(params, spec)
    assert "lif" not in prepared.get("snn", {})
    logits = jax.jit(prepared_logits, static_argnums=1)

    def reference(ids, tags, hist):
        features = []
        if "snn" in branches:
            trains = snn_spike_trains(params, spec, ids, tags, hist)
            features.append(trains[-1].mean(axis=0))
        if "kan" in branches:
            features.append(apply_kan(params["kan"], kan_inputs(hist, spec),
                                      spec.kan_config))
        return mlp(params["fusion"], jnp.concatenate(features, axis=-1))

    for batch in (1, 7, 33):
        inputs = windows(spec, batch, seed=batch)
        expected = reference(*inputs)
        np.testing.assert_allclose(logits(prepared, spec, *inputs), expected,
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(apply_hybrid(params, spec, *inputs).logits,
                                   expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("encoding", ["event", "rate"])
def test_rasters_match_rates_and_init_rates_are_trainable(encoding):
    spec = dataclasses.replace(SMALL, encoding=encoding, refractory=1)
    params = init_hybrid(jax.random.key(1), spec)
    inputs = windows(spec, 4)
    out = apply_hybrid(params, spec, *inputs)
    trains = snn_spike_trains(params, spec, *inputs)
    chex.assert_shape(trains[0], (spec.snn_steps, 4, 16))
    for train, rates in zip(trains, out.spike_rates, strict=True):
        np.testing.assert_allclose(train.mean(0), rates, atol=1e-6)
    assert 0.0 < float(out.spike_rates[0].mean()) < 0.6  # neither dead nor saturated


def test_padding_events_give_no_input_current():
    spec = dataclasses.replace(SMALL, branches=("snn",))
    params = init_hybrid(jax.random.key(2), spec)
    ids, tags, hist = windows(spec, 2)
    silent = jax.tree_util.tree_map(jnp.zeros_like, params)
    silent["snn"]["input"] = params["snn"]["input"]  # only the input current
    trains = snn_spike_trains(silent, spec, jnp.zeros_like(ids), jnp.zeros_like(tags),
                              hist)
    assert float(trains[0].sum()) == 0.0
    assert float(snn_spike_trains(silent, spec, ids, tags, hist)[0].sum()) > 0.0


def test_a_few_adamw_steps_reduce_the_loss():
    spec = SMALL
    params = init_hybrid(jax.random.key(3), spec)
    ids, tags, hist = windows(spec, 32, seed=4)
    labels = jnp.asarray(np.arange(32) % 2)
    hist = hist.at[:, 3].set(0.3 * labels)  # a learnable signal in the hist
    ids = ids.at[:, 0].set(jnp.where(labels == 1, 5, 6))  # and in the events
    optimiser = optax.adamw(1e-2)

    def loss_fn(params):
        out = apply_hybrid(params, spec, ids, tags, hist)
        return sum(optax.softmax_cross_entropy_with_integer_labels(logits, labels)
                   .mean() for logits in (out.logits, out.snn_logits, out.kan_logits))

    @jax.jit
    def train_step(params, opt_state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimiser.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = optimiser.init(params)
    losses = []
    for _ in range(15):
        params, opt_state, loss = train_step(params, opt_state)
        losses.append(float(loss))
    assert losses[-1] < 0.7 * losses[0], losses


def test_parameter_counts_and_hand_flops_are_exact():
    spec = HybridSpec(encoding="rate")
    # Shapes suffice to count; eval_shape builds no arrays (fast).
    params = jax.eval_shape(lambda key: init_hybrid(key, spec), jax.random.key(0))
    count = count_parameters(params)
    # SNN: input 128*128+128, hidden 128*64+64 + 64*32+32, LIF 2*(224),
    # head 32*2+2; KAN: 128*64*(2+8)+64 + 64*32*(2+8)+32, head 32*2+2;
    # fusion 64*32+32 + 32*2+2.
    expected = (128 * 128 + 128 + 128 * 64 + 64 + 64 * 32 + 32 + 2 * 224 + 66
                + 128 * 64 * 10 + 64 + 64 * 32 * 10 + 32 + 66 + 64 * 32 + 32 + 66)
    assert count == expected
    assert parameter_bytes(params) == 4 * expected
    assert forward_flops(spec) > 2 * (128 * 64 * 9 + 10 * (128 * 64 + 64 * 32))


def test_spec_from_config_and_bad_specs():
    spec = HybridSpec.from_config(ModelConfig(encoding="rate", snn_hidden=[8]),
                                  DataConfig(sequence_length=32))
    assert (spec.encoding, spec.snn_hidden, spec.time, spec.channels) == (
        "rate", (8,), 32, 128)
    hash(spec)
    with pytest.raises(ValueError, match="branches"):
        HybridSpec(branches=("snn", "gp"))
    with pytest.raises(ValueError, match="encoding"):
        HybridSpec(encoding="spikes")
    with pytest.raises(AssertionError):
        apply_hybrid(init_hybrid(jax.random.key(0), SMALL), SMALL,
                     *windows(dataclasses.replace(SMALL, time=13), 2))


def test_plot_helpers_and_grid_extension():
    spec = dataclasses.replace(SMALL, branches=("kan",))
    params = init_hybrid(jax.random.key(5), spec)
    points, values = kan_spline_functions(params, spec, layer=0, num_points=9)
    chex.assert_shape(values, (9, 24, 8))
    finer_params, finer = extend_hybrid_grid(params, spec, 10)
    assert finer.grid_size == 10
    inputs = windows(spec, 3)
    before = apply_hybrid(params, spec, *inputs).kan_logits
    after = apply_hybrid(finer_params, finer, *inputs).kan_logits
    np.testing.assert_allclose(after, before, atol=1e-3)


def test_reference_entry_points():
    model = HybridSNNKAN(SMALL)
    params = model.init(jax.random.key(0))
    chex.assert_shape(model(params, *windows(SMALL, 2)).logits, (2, 2))
    snn = SpikingNeuralNetwork(input_dim=24, hidden_dims=(16, 8), num_timesteps=5)
    logits, rates = snn.apply(snn.init(jax.random.key(1)), jnp.ones((3, 24)))
    chex.assert_shape([logits, rates], [(3, 2), (3, 8)])


@pytest.mark.parametrize(("encoding", "lif"), [
    ("event", LIFConfig(refractory=2, reset="zero")),
    ("rate", LIFConfig(detach_reset=False, surrogate="triangle", surrogate_slope=3.0)),
])
@pytest.mark.parametrize("batch", [1, snn_module._SMALL_BATCH + 3])
def test_fast_rates_equal_reference_rasters_in_values_and_gradients(encoding, lif,
                                                                    batch):
    # snn_rates against snn_spikes (the reference rasters): same numbers and
    # the same gradients for every parameter, in both of snn_rates'
    # schedules (layer by layer up to _SMALL_BATCH windows, one scan above).
    params = init_snn(jax.random.key(6), encoding=encoding, input_dim=14,
                      hidden=(6, 5, 4), name_channels=10, threshold=0.3)
    rng = np.random.default_rng(7)
    if encoding == "event":
        inputs = {"ids": jnp.asarray(rng.integers(0, 10, (batch, 9)), jnp.int32),
                  "tags": jnp.asarray(rng.integers(0, 16, (batch, 9)), jnp.uint32)}
    else:
        inputs = {"rates_in": jnp.asarray(rng.random((batch, 14)), jnp.float32),
                  "num_timesteps": 7}
    readout = [jnp.asarray(rng.normal(size=(batch, units)), jnp.float32)
               for units in (6, 5, 4)]

    def fast(params):
        rates = snn_rates(params, lif, **inputs)
        return sum(jnp.sum(r * w) for r, w in zip(rates, readout, strict=True))

    def reference(params):
        trains = snn_spikes(params, lif, **inputs)
        return sum(jnp.sum(t.mean(0) * w) for t, w in zip(trains, readout,
                                                          strict=True))

    fast_value, fast_grads = jax.value_and_grad(fast)(params)
    value, grads = jax.value_and_grad(reference)(params)
    np.testing.assert_allclose(fast_value, value, rtol=1e-6)
    chex.assert_trees_all_close(fast_grads, grads, rtol=1e-5, atol=1e-7)
    assert sum(float(jnp.abs(g).sum()) for g in jax.tree_util.tree_leaves(grads)) > 0
