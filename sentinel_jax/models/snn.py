"""A feed-forward spiking network of LIF layers, and its two input encodings.

* ``event``: one step per event of the window. The first layer's current at
  step ``t`` is ``W_name[id_t] + sum of W_tag[b]`` over the tag bits ``b`` set
  on the event: row gathers (the tag rows summed per byte of the mask, see
  below), never a one-hot matmul. Padding (id 0, no tags) gives exactly zero
  current.
* ``rate``: the reference design's mode; a feature vector (the hist) is a
  constant current ``x @ W + b`` held for ``num_timesteps`` steps.

Two functions run the network, held to the same numbers and gradients by
the tests. :func:`snn_rates` is what the models use; it returns spike rates
only, on one of two schedules chosen by batch size (see
:func:`prepared_snn_rates`). In event encoding it always takes its gradient
from the layer-by-layer schedule, whose LIF layers have a hand-written
backward pass (:mod:`sentinel_jax.models.lif_layer`). :func:`snn_spikes`
returns the full rasters for plots and is the reference the tests hold the
others to: plain ``lif_scan`` layers differentiated by autodiff, tag
currents as unpacked bits times the tag rows.

Why two forward schedules: at large batches one scan over time stepping
every layer keeps each step's working set (``[batch, units]`` per layer) in
cache, while layer by layer every ``[time, batch, units]`` intermediate is a
buffer of tens of megabytes (at batch 1024, 46 against 30-36 ms per forward
on the 2-core CPU). At a few windows it is the other way round: a matmul per
step is a library call per step, so small batches run layer by layer (the
hybrid's batch-1 forward 0.149 -> 0.064 ms, measured with
``experiments/benchmark.py --batches 1 --phases forward``).

Why the event gradient comes from the layer-by-layer schedule: autodiff of
the one-scan schedule stacks a dozen residuals per step and runs a small
matmul per step for each weight gradient; layer by layer, the weight
gradients are single matmuls over ``time * batch`` rows and each LIF layer's
backward is one short recurrence. With the tag tables below, the real
training loop (``experiments/benchmark_training.py``, three interleaved runs
on the 2-core CPU) went from 4,189-4,712 to 4,939-6,451 event windows/s.
Rate encoding's few steps are unrolled into straight-line code, whose plain
autodiff stays (the hand-written backward was no faster there).

Tag currents are looked up, not multiplied: a tag mask's 32 bits are four
bytes, and for each byte a table of 256 rows holds the summed tag rows of
every value it can take (:func:`tag_byte_tables`, built once per call from
the tag weights, or once at load for inference). An event's current is then
five row gathers, where the unpacked bits times the ``[tag, units]`` weights
cost ``2 * 32 * units`` FLOPs per event and as many again for the weight
gradient, most of them on zero bits. For a batch of 256 windows, currents
and their weight gradients took 1.6 + 8.4 ms as bits times rows and 0.5 +
1.9 ms looked up (a one-off timing).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp

from sentinel_jax.data.syscalls import PAD_ID
from sentinel_jax.data.tags import NUM_TAGS
from sentinel_jax.models.lif import (
    LIFConfig,
    LIFState,
    init_lif,
    init_lif_state,
    lif_constants,
    lif_scan,
    lif_step_constants,
)
from sentinel_jax.models.lif_layer import lif_layer

ENCODINGS = ("event", "rate")

# Initial current scale, as a share of the threshold, and the spike rate a
# hidden layer is assumed to receive; together they put initial spike rates
# in a trainable range (neither silent nor saturated).
_CURRENT_STD = 0.6
_RATE_CURRENT_STD = 0.3
_ASSUMED_INPUT_RATE = 0.15
# Batches up to this size are bound by per-kernel overhead, not arithmetic,
# and run layer by layer (see :func:`prepared_snn_rates`).
_SMALL_BATCH = 8
# The one-scan schedule (larger batches) unrolls scans of up to this many
# steps (rate encoding) in full: straight-line code trained 1.6-1.8x faster
# at batch 256-1024 than a loop on the 2-core CPU. Event windows (64 steps)
# lose when unrolled: forward 5-8x slower, compiles 10-20 s.
FULL_UNROLL_STEPS = 16


def unpack_tags(tags: jax.Array, tag_channels: int) -> jax.Array:
    """Tag masks ``uint32 [...]`` -> float32 bits ``[..., tag]`` (first bits)."""
    bits = jnp.arange(tag_channels, dtype=jnp.uint32)
    return ((tags[..., None] >> bits) & 1).astype(jnp.float32)


def tag_byte_tables(tag_weights: jax.Array) -> jax.Array:
    """Summed tag rows for every value of every byte of a tag mask.

    Args:
        tag_weights: ``[tag, units]``, one row per tag bit.

    Returns:
        ``float32 [bytes, 256, units]`` with ``bytes = ceil(tag / 8)``; row
        ``v`` of table ``k`` is the sum of the rows of bits ``8k + b`` set in
        ``v`` (bits past ``tag`` count zero).
    """
    tag, units = tag_weights.shape
    num_bytes = -(-tag // 8)
    padded = jnp.zeros((8 * num_bytes, units), tag_weights.dtype).at[:tag].set(
        tag_weights)
    bits = unpack_tags(jnp.arange(256, dtype=jnp.uint32), 8)  # [256, 8]
    # A batched matmul, so each table comes out row-major: an einsum's
    # [bytes, units, 256] layout, transposed inside the gather's loop, made
    # the gathers of a window 10x slower.
    return bits @ padded.reshape(num_bytes, 8, units)


def init_snn(key: jax.Array, *, encoding: str, input_dim: int,
             hidden: Sequence[int], name_channels: int = 0,
             threshold: float = 0.5, decay: float = 0.9) -> dict:
    """Parameters of a spiking network.

    Args:
        key: PRNG key.
        encoding: ``event`` or ``rate``.
        input_dim: rate mode: features per sample; event mode: all channels
            (``name_channels`` names, the rest tags, at most 32 used).
        hidden: units per LIF layer.
        name_channels: event mode: vocabulary size (ids lie below it).
        threshold: initial firing threshold of every neuron.
        decay: initial membrane decay ``beta`` of every neuron.

    Returns:
        ``{"input": ..., "layers": [{"weight", "bias"}], "lif": [...]}``;
        event input holds ``name [name_channels, units]`` and ``tag [tag,
        units]``, rate input holds ``weight [in, units]`` and ``bias``.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    if not hidden:
        raise ValueError("a spiking network needs at least one hidden layer")
    keys = jax.random.split(key, len(hidden) + 1)
    first = hidden[0]
    scale = _CURRENT_STD * threshold
    if encoding == "event":
        if not 0 < name_channels <= input_dim:
            raise ValueError(f"event encoding needs 0 < name_channels <= input_dim, "
                             f"got {name_channels} and {input_dim}")
        tag_channels = min(input_dim - name_channels, NUM_TAGS)
        name_key, tag_key = jax.random.split(keys[0])
        inputs = {
            "name": scale * jax.random.normal(name_key, (name_channels, first)),
            "tag": scale * jax.random.normal(tag_key, (tag_channels, first)),
        }
    else:
        rate_scale = _RATE_CURRENT_STD * threshold
        inputs = {"weight": rate_scale * jax.random.normal(keys[0], (input_dim, first)),
                  "bias": jnp.zeros((first,), jnp.float32)}
    layers = []
    for layer_key, fan_in, units in zip(keys[1:], hidden[:-1], hidden[1:],
                                        strict=False):
        std = scale / math.sqrt(fan_in * _ASSUMED_INPUT_RATE)
        layers.append({"weight": std * jax.random.normal(layer_key, (fan_in, units)),
                       "bias": jnp.zeros((units,), jnp.float32)})
    return {"input": inputs, "layers": layers,
            "lif": [init_lif(units, threshold, decay) for units in hidden]}


def name_tag_currents(name_weights: jax.Array, tag_tables: jax.Array,
                      ids: jax.Array, tags: jax.Array) -> jax.Array:
    """First-layer currents of events: a name row plus the rows of their tags.

    Args:
        name_weights: ``[name_channels, units]``, padding row already zero.
        tag_tables: ``[bytes, 256, units]`` from :func:`tag_byte_tables`.
        ids: ``int32 [...]`` of any shape (one step ``[batch]`` or a whole
            window ``[time, batch]``).
        tags: ``uint32 [...]``, the same shape.

    Returns:
        ``float32 [..., units]``.
    """
    # Unsigned indices: a signed one costs a wrap-around test for negative
    # values, which XLA fuses into the gather's loop and redoes for every
    # unit (with the wrong layouts, 10x slower; see tag_byte_tables). Ids
    # past the table are clipped to its last row; a byte is always in range.
    currents = name_weights.at[ids.astype(jnp.uint32)].get(mode="clip")
    for index, table in enumerate(tag_tables):
        byte = (tags >> (8 * index)) & 0xFF
        currents = currents + table.at[byte].get(mode="promise_in_bounds")
    return currents


def event_currents(input_params: dict, ids: jax.Array, tags: jax.Array
                   ) -> jax.Array:
    """First-layer currents of every event, time-major, from the raw weights.

    The reference form: the name row plus the unpacked tag bits times the
    tag rows (:func:`name_tag_currents` looks the same sums up in tables).

    Args:
        input_params: ``{"name": [name_channels, units], "tag": [tag, units]}``.
        ids: ``int32 [batch, time]``, 0 for padding.
        tags: ``uint32 [batch, time]`` tag masks.

    Returns:
        ``float32 [time, batch, units]``.
    """
    names = input_params["name"].at[PAD_ID].set(0.0)
    tag_weights = input_params["tag"]
    currents = jnp.take(names, ids.T, axis=0)
    if tag_weights.shape[0]:
        currents = currents + unpack_tags(tags.T, tag_weights.shape[0]) @ tag_weights
    return currents


def snn_spikes(params: dict, config: LIFConfig, *, ids: jax.Array | None = None,
               tags: jax.Array | None = None, rates_in: jax.Array | None = None,
               num_timesteps: int = 10) -> tuple[jax.Array, ...]:
    """Spikes of every layer.

    Give ``ids`` and ``tags`` (``[batch, time]``) for the event encoding, or
    ``rates_in`` (``float32 [batch, in]``) for the rate encoding.

    Returns:
        One ``float32 [time, batch, units]`` array of 0/1 spikes per layer.
    """
    if rates_in is None:
        chex.assert_rank([ids, tags], 2)
        currents = event_currents(params["input"], ids, tags)
        _, spikes = lif_scan(params["lif"][0], currents, config)
    else:
        chex.assert_rank(rates_in, 2)
        current = rates_in @ params["input"]["weight"] + params["input"]["bias"]
        _, spikes = lif_scan(params["lif"][0], current, config, steps=num_timesteps)
    trains = [spikes]
    for layer, lif in zip(params["layers"], params["lif"][1:], strict=True):
        currents = spikes @ layer["weight"] + layer["bias"]  # [time, batch, units]
        _, spikes = lif_scan(lif, currents, config)
        trains.append(spikes)
    return tuple(trains)


def prepare_snn(params: dict) -> dict:
    """The parameters in the form the forward pass reads them.

    Everything that depends on the parameters alone is computed here once:
    ``beta`` and ``theta`` of every layer and, in event mode, the name table
    with its padding row zeroed and the tag byte tables. Training calls this
    inside the jitted step (gradients flow through it); inference calls it
    once at load, so a batch-1 forward pays for none of it.

    Returns:
        ``{"input": ..., "layers": [...], "beta": [[units]...],
        "theta": [[units]...]}``; event input holds ``name`` and
        ``tag_tables`` (:func:`name_tag_currents`' arguments).
    """
    inputs = params["input"]
    if "name" in inputs:
        inputs = {"name": inputs["name"].at[PAD_ID].set(0.0),
                  "tag_tables": tag_byte_tables(inputs["tag"])}
    constants = [lif_constants(lif) for lif in params["lif"]]
    return {"input": inputs, "layers": params["layers"],
            "beta": [beta for beta, _ in constants],
            "theta": [theta for _, theta in constants]}


def snn_rates(params: dict, config: LIFConfig, *, ids: jax.Array | None = None,
              tags: jax.Array | None = None, rates_in: jax.Array | None = None,
              num_timesteps: int = 10) -> tuple[jax.Array, ...]:
    """Mean spikes per step of every layer, ``[batch, units]`` each.

    Same inputs, numbers and gradients as :func:`snn_spikes`, on the
    schedule :func:`prepared_snn_rates` picks for the batch size.
    """
    return prepared_snn_rates(prepare_snn(params), config, ids=ids, tags=tags,
                              rates_in=rates_in, num_timesteps=num_timesteps)


def prepared_snn_rates(prepared: dict, config: LIFConfig, *,
                       ids: jax.Array | None = None, tags: jax.Array | None = None,
                       rates_in: jax.Array | None = None,
                       num_timesteps: int = 10) -> tuple[jax.Array, ...]:
    """:func:`snn_rates` on parameters from :func:`prepare_snn`.

    Two forward schedules of the same arithmetic, chosen by batch size (the
    module docstring gives the measurements):

    * up to ``_SMALL_BATCH`` windows (live scoring, batch-1 latency): layer
      by layer, each layer one LIF scan (:func:`~sentinel_jax.models.
      lif_layer.lif_layer`) and one matmul over all ``time`` steps between
      layers;
    * larger batches: one scan over time stepping every layer, so a step's
      working set stays in cache and nothing of size ``[time, batch, units]``
      is built. In event encoding, under differentiation this schedule hands
      over to the layer-by-layer one, which computes the same values and the
      gradient. Rate encoding's few steps are unrolled into straight-line
      code, whose plain autodiff was as fast at batch 256 and 10-15% faster
      at 1024.
    """
    # TODO: event-mode training runs 5-7k windows/s in the real loop on the
    # 2-core AVX2 CPU (matmul peak 83-178 GFLOP/s), against the ~28k/s that
    # a 3-minute reference run needs; at ~4.9 MFLOP per window and step that
    # is ~85% of this CPU's peak. What is left per step is mostly XLA:CPU's
    # per-iteration cost: 6 scans x 64 iterations of small elementwise
    # kernels (measured with jax.profiler and
    # --xla_cpu_enable_xprof_traceme). Unrolling them ran 1.3-3x slower.
    event = rates_in is None
    if event:
        chex.assert_rank([ids, tags], 2)
        batch = ids.shape[0]
    else:
        chex.assert_rank(rates_in, 2)
        batch = rates_in.shape[0]
    inputs = {"ids": ids, "tags": tags} if event else {"rates_in": rates_in}
    if batch <= _SMALL_BATCH:
        return _layerwise_rates(config, num_timesteps, prepared, inputs)
    if event:
        return _one_scan_layerwise_grad(config, num_timesteps, prepared, inputs)
    return _one_scan_rates(config, num_timesteps, prepared, inputs)


def _first_layer_input(prepared: dict, inputs: dict) -> jax.Array:
    """Event mode: ``[time, batch, units]`` currents; rate: ``[batch, units]``."""
    weights = prepared["input"]
    if "rates_in" in inputs:
        return inputs["rates_in"] @ weights["weight"] + weights["bias"]
    # Gathered batch-major and transposed once: indices transposed inside the
    # gather's loop are recomputed for every unit.
    currents = name_tag_currents(weights["name"], weights["tag_tables"],
                                 inputs["ids"], inputs["tags"])
    return jnp.transpose(currents, (1, 0, 2))  # [time, batch, units]


def rest_states(prepared: dict, config: LIFConfig, batch: int) -> list[LIFState]:
    """Every layer of a prepared network at rest, ``[batch, units]`` each."""
    return [init_lif_state(batch, beta.shape[0], config) for beta in prepared["beta"]]


def step_layers(prepared: dict, config: LIFConfig, states: Sequence[LIFState],
                current: jax.Array) -> tuple[list[LIFState], list[jax.Array]]:
    """Advances every layer one step, the first driven by ``current``.

    Args:
        prepared: from :func:`prepare_snn`.
        config: static LIF settings.
        states: one state per layer, ``[batch, units]``.
        current: the first layer's input current ``[batch, units]``.

    Returns:
        ``(new_states, spikes)``, one ``[batch, units]`` spike array per layer.
    """
    layers = [None, *prepared["layers"]]
    new_states, trains, spikes = [], [], None
    for beta, theta, state, layer in zip(prepared["beta"], prepared["theta"],
                                         states, layers, strict=True):
        if layer is not None:  # current from the previous layer's spikes
            current = spikes @ layer["weight"] + layer["bias"]
        state, spikes = lif_step_constants(beta, theta, state, current, config)
        new_states.append(state)
        trains.append(spikes)
    return new_states, trains


def _layerwise_rates(config: LIFConfig, num_timesteps: int, prepared: dict,
                     inputs: dict) -> tuple[jax.Array, ...]:
    """Spike rates, one layer at a time; ``inputs`` holds ``ids`` and
    ``tags``, or ``rates_in``."""
    currents = _first_layer_input(prepared, inputs)
    held = "rates_in" in inputs
    steps = num_timesteps if held else inputs["ids"].shape[1]
    last = len(prepared["beta"]) - 1
    rates, spikes = [], None
    for index, (beta, theta) in enumerate(zip(prepared["beta"], prepared["theta"],
                                              strict=True)):
        if index:  # [time, batch, in] -> [time, batch, units]
            layer = prepared["layers"][index - 1]
            currents = spikes @ layer["weight"] + layer["bias"]
        counts, spikes = lif_layer(beta, theta, currents, config,
                                   steps=steps if held and not index else None,
                                   keep_spikes=index < last)
        rates.append(counts / steps)
    return tuple(rates)


def _one_scan_rates(config: LIFConfig, num_timesteps: int, prepared: dict,
                    inputs: dict) -> tuple[jax.Array, ...]:
    """Spike rates, every layer stepped in one scan (the large-batch forward)."""
    event = "rates_in" not in inputs
    if event:
        name_weights = prepared["input"]["name"]
        tag_tables = prepared["input"]["tag_tables"]
        xs = (inputs["ids"].T, inputs["tags"].T)
        steps, batch = inputs["ids"].shape[1], inputs["ids"].shape[0]
    else:
        constant = _first_layer_input(prepared, inputs)
        xs, steps, batch = None, num_timesteps, inputs["rates_in"].shape[0]

    def body(carry, step_inputs):
        states, counts = carry
        if event:
            current = name_tag_currents(name_weights, tag_tables, *step_inputs)
        else:
            current = constant
        states, spikes = step_layers(prepared, config, states, current)
        counts = [count + layer_spikes
                  for count, layer_spikes in zip(counts, spikes, strict=True)]
        return (states, counts), None

    states = rest_states(prepared, config, batch)
    zeros = [state.membrane for state in states]
    unroll = steps if not event and steps <= FULL_UNROLL_STEPS else 1
    (_, counts), _ = jax.lax.scan(body, (states, zeros), xs, length=steps,
                                  unroll=unroll)
    return tuple(count / steps for count in counts)


# :func:`_one_scan_rates` forward, :func:`_layerwise_rates` differentiated.
_one_scan_layerwise_grad = jax.custom_vjp(_one_scan_rates, nondiff_argnums=(0, 1))


def _layerwise_forward(config, num_timesteps, prepared, inputs):
    # jax.vjp's pullback is a pytree of the residuals, so it is the residual.
    return jax.vjp(functools.partial(_layerwise_rates, config, num_timesteps),
                   prepared, inputs)


def _layerwise_backward(config, num_timesteps, pullback, rates_grads):
    return pullback(rates_grads)


_one_scan_layerwise_grad.defvjp(_layerwise_forward, _layerwise_backward)


@dataclasses.dataclass(frozen=True)
class SpikingNeuralNetwork:
    """The reference design's SNN entry point: LIF layers, a rate readout head.

    A thin holder over :func:`init_snn` and :func:`snn_spikes`; the logits
    are a linear head on the last layer's spike rates.

    Example::

        snn = SpikingNeuralNetwork(input_dim=128, hidden_dims=(128, 64, 32))
        params = snn.init(jax.random.key(0))
        logits, rates = snn.apply(params, features)  # rate encoding
    """

    input_dim: int = 128
    hidden_dims: Sequence[int] = (128, 64, 32)
    num_classes: int = 2
    threshold: float = 0.5
    membrane_decay: float = 0.9
    num_timesteps: int = 10
    encoding: str = "rate"
    name_channels: int = 96
    lif: LIFConfig = LIFConfig()

    def init(self, key: jax.Array) -> dict:
        """Parameters: ``{"snn": ..., "head": {"weight", "bias"}}``."""
        snn_key, head_key = jax.random.split(key)
        hidden = tuple(self.hidden_dims)
        head_std = 1.0 / math.sqrt(hidden[-1])
        return {
            "snn": init_snn(snn_key, encoding=self.encoding, input_dim=self.input_dim,
                            hidden=hidden, name_channels=self.name_channels,
                            threshold=self.threshold, decay=self.membrane_decay),
            "head": {"weight": head_std * jax.random.normal(
                         head_key, (hidden[-1], self.num_classes)),
                     "bias": jnp.zeros((self.num_classes,), jnp.float32)},
        }

    def apply(self, params: dict, features: jax.Array | None = None, *,
              ids: jax.Array | None = None, tags: jax.Array | None = None
              ) -> tuple[jax.Array, jax.Array]:
        """``(logits [batch, classes], last-layer spike rates [batch, units])``."""
        trains = snn_spikes(params["snn"], self.lif, ids=ids, tags=tags,
                            rates_in=features, num_timesteps=self.num_timesteps)
        rates = trains[-1].mean(axis=0)
        logits = rates @ params["head"]["weight"] + params["head"]["bias"]
        return logits, rates

    __call__ = apply
