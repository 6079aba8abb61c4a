"""A spiking next-call predictor: the normal-only mode of the spiking network.

The detector's spiking branch is a classifier and needs attacks to learn
from. This model needs none: it reads a trace one event at a time through the
same LIF layers (event encoding) and, before every event, predicts which call
comes next. A trace is then scored by its surprise, ``-log p(call | calls
before it)``: programs doing their usual work are predictable, injected
behaviour is not. It is the spiking counterpart of the n-gram language model
in :mod:`sentinel_jax.baselines.ngram`.

The prediction is a linear readout of the membrane potentials of every layer,
not of their spikes: a spike is one bit per neuron and step, while the
membrane holds the leaky sum of what the neuron has seen (``beta`` sets how
far back it reaches), which is the network's memory of the trace so far.
The readout sees the state *before* an event, so event 0 is predicted from
the network at rest (the readout's bias: a learned first-call distribution).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp

from sentinel_jax.data.syscalls import PAD_ID
from sentinel_jax.models.lif import LIFConfig
from sentinel_jax.models.snn import (
    init_snn,
    name_tag_currents,
    prepare_snn,
    rest_states,
    step_layers,
)

# Logit of the padding name: never a prediction (padding is not a call).
_NEVER = -1e9


def init_next_call(key: jax.Array, *, name_channels: int, tag_channels: int,
                   hidden: Sequence[int], threshold: float = 0.5,
                   decay: float = 0.9) -> dict:
    """Parameters of a spiking next-call predictor.

    Args:
        key: PRNG key.
        name_channels: vocabulary size (padding and OTHER included).
        tag_channels: tag bits the input reads (0 for name-only sources).
        hidden: units per LIF layer.
        threshold: initial firing threshold of every neuron.
        decay: initial membrane decay ``beta`` of every neuron.

    Returns:
        ``{"snn": ..., "readout": {"weight": [units, name], "bias": [name]}}``
        with ``units = sum(hidden)``.
    """
    snn_key, readout_key = jax.random.split(key)
    snn = init_snn(snn_key, encoding="event", input_dim=name_channels + tag_channels,
                   hidden=hidden, name_channels=name_channels,
                   threshold=threshold, decay=decay)
    units = sum(hidden)
    # Membranes hover around the threshold: scale the readout to O(1) logits.
    scale = 1.0 / (threshold * math.sqrt(units))
    return {"snn": snn, "readout": {
        "weight": scale * jax.random.normal(readout_key, (units, name_channels)),
        "bias": jnp.zeros((name_channels,), jnp.float32)}}


def membrane_trajectory(snn_params: dict, config: LIFConfig, ids: jax.Array,
                        tags: jax.Array) -> jax.Array:
    """Membrane potentials of every layer after every event.

    Args:
        snn_params: the ``snn`` part of :func:`init_next_call`'s parameters.
        config: static LIF settings.
        ids: ``int32 [batch, time]``, 0 for padding.
        tags: ``uint32 [batch, time]`` tag masks.

    Returns:
        ``float32 [time, batch, units]``, layers side by side.
    """
    chex.assert_rank([ids, tags], 2)
    prepared = prepare_snn(snn_params)
    names, tag_tables = prepared["input"]["name"], prepared["input"]["tag_tables"]

    def body(states, event):
        current = name_tag_currents(names, tag_tables, *event)
        states, _ = step_layers(prepared, config, states, current)
        return states, jnp.concatenate([state.membrane for state in states], -1)

    _, membranes = jax.lax.scan(body, rest_states(prepared, config, ids.shape[0]),
                                (ids.T, tags.T))
    return membranes


def next_call_logits(params: dict, config: LIFConfig, ids: jax.Array,
                     tags: jax.Array) -> jax.Array:
    """Logits of each event's name, predicted from the events before it.

    Args:
        params: from :func:`init_next_call`.
        config: static LIF settings.
        ids: ``int32 [batch, time]``.
        tags: ``uint32 [batch, time]``.

    Returns:
        ``float32 [batch, time, name]``; row ``t`` is the prediction of
        ``ids[:, t]`` from ``ids[:, :t]`` (row 0 from the network at rest).
    """
    membranes = membrane_trajectory(params["snn"], config, ids, tags)
    # the state before event t is the state after event t - 1
    before = jnp.concatenate([jnp.zeros_like(membranes[:1]), membranes[:-1]])
    readout = params["readout"]
    logits = jnp.einsum("tbu,un->btn", before, readout["weight"]) + readout["bias"]
    return logits.at[..., PAD_ID].set(_NEVER)


def next_call_surprise(params: dict, config: LIFConfig, ids: jax.Array,
                       tags: jax.Array) -> jax.Array:
    """``-log p(event t | events before t)`` per event; 0 at padding.

    Returns:
        ``float32 [batch, time]`` in nats.
    """
    log_probs = jax.nn.log_softmax(next_call_logits(params, config, ids, tags))
    picked = jnp.take_along_axis(log_probs, ids[..., None], axis=-1)[..., 0]
    return jnp.where(ids != PAD_ID, -picked, 0.0)
