"""Leaky integrate-and-fire neurons as pure functions, stepped by ``lax.scan``.

One step, in this order, for every neuron:

1. integrate: ``v = beta * v + I_t``;
2. spike: ``s = H(v - theta)``, with a surrogate gradient
   (:mod:`sentinel_jax.models.surrogate`);
3. reset: ``v = v - s * theta`` (``subtract``) or ``v = v * (1 - s)``
   (``zero``);
4. refractory: a neuron that spiked holds its (reset) membrane and cannot
   spike for the next ``refractory`` steps; its input is ignored meanwhile.

``beta = sigmoid(decay_logit)`` and ``theta = softplus(threshold_raw)`` are
learnable per neuron; both maps are smooth and never clipped, so their
gradients never vanish at a bound. The reset is detached from the gradient by
default (``detach_reset``): the surrogate then shapes only when a neuron fires,
not the reset's echo of it, which trains more stably.

Time is the leading axis (``[time, batch, units]``) so the scan walks it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from sentinel_jax.models.surrogate import make_spike_fn

RESETS = ("subtract", "zero")


@dataclasses.dataclass(frozen=True)
class LIFConfig:
    """Static settings of a LIF layer (hashable, a jit static argument).

    Attributes:
        reset: ``subtract`` (keep the excess over threshold) or ``zero``.
        refractory: steps a neuron stays silent and holds ``v`` after a spike.
        surrogate: name of the surrogate gradient.
        surrogate_slope: its sharpness.
        detach_reset: stop gradients through the reset term.

    Scans are never unrolled: on XLA:CPU an unrolled LIF scan writes its
    stacked outputs by copying, and measured 2-5x slower than one step per
    iteration (``experiments/benchmark.py``).
    """

    reset: str = "subtract"
    refractory: int = 0
    surrogate: str = "fast_sigmoid"
    surrogate_slope: float = 10.0
    detach_reset: bool = True

    def __post_init__(self) -> None:
        if self.reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {self.reset!r}")
        if self.refractory < 0:
            raise ValueError(f"refractory must be >= 0, got {self.refractory}")
        make_spike_fn(self.surrogate, self.surrogate_slope)  # validates both


class LIFState(NamedTuple):
    """Membrane potential and refractory steps left, each ``[batch, units]``."""

    membrane: jax.Array
    refractory_left: jax.Array


def init_lif(units: int, threshold: float = 0.5, decay: float = 0.9) -> dict:
    """LIF parameters whose ``beta`` is ``decay`` and ``theta`` is ``threshold``.

    Returns:
        ``{"decay_logit": [units], "threshold_raw": [units]}``, float32.
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"membrane decay must be in (0, 1), got {decay}")
    if not threshold > 0.0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    decay_logit = math.log(decay / (1.0 - decay))
    threshold_raw = threshold + math.log(-math.expm1(-threshold))  # softplus^-1
    return {
        "decay_logit": jnp.full((units,), decay_logit, jnp.float32),
        "threshold_raw": jnp.full((units,), threshold_raw, jnp.float32),
    }


def lif_constants(params: dict) -> tuple[jax.Array, jax.Array]:
    """``(beta, theta)``, each ``[units]``, from the raw parameters."""
    return (jax.nn.sigmoid(params["decay_logit"]),
            jax.nn.softplus(params["threshold_raw"]))


def init_lif_state(batch: int, units: int,
                   config: LIFConfig | None = None) -> LIFState:
    """All neurons at rest: ``v = 0``, not refractory.

    With a ``config`` of no refractory period the counters are one scalar
    (a scan then carries nothing per neuron for them).
    """
    membrane = jnp.zeros((batch, units), jnp.float32)
    counters = membrane.shape if config is None or config.refractory else ()
    return LIFState(membrane, jnp.zeros(counters, jnp.int32))


def lif_step_constants(beta: jax.Array, theta: jax.Array, state: LIFState,
                       current: jax.Array, config: LIFConfig
                       ) -> tuple[LIFState, jax.Array]:
    """:func:`lif_step` with ``beta`` and ``theta`` already computed."""
    state, spikes, _ = lif_step_with_membrane(beta, theta, state, current, config)
    return state, spikes


def lif_step_with_membrane(beta: jax.Array, theta: jax.Array, state: LIFState,
                           current: jax.Array, config: LIFConfig
                           ) -> tuple[LIFState, jax.Array, jax.Array]:
    """:func:`lif_step_constants`, also returning the membrane before the
    spike test (``[batch, units]``), which a hand-written backward pass
    needs (:mod:`sentinel_jax.models.lif_layer`)."""
    spike = make_spike_fn(config.surrogate, config.surrogate_slope)
    membrane = beta * state.membrane + current
    if config.refractory:
        resting = state.refractory_left > 0
        membrane = jnp.where(resting, state.membrane, membrane)
    tested = membrane
    spikes = spike(membrane - theta)
    if config.refractory:
        spikes = jnp.where(resting, 0.0, spikes)
    fired = jax.lax.stop_gradient(spikes) if config.detach_reset else spikes
    if config.reset == "subtract":
        membrane = membrane - fired * theta
    else:
        membrane = membrane * (1.0 - fired)
    refractory_left = state.refractory_left
    if config.refractory:
        refractory_left = jnp.where(spikes > 0, config.refractory,
                                    jnp.maximum(refractory_left - 1, 0))
    return LIFState(membrane, refractory_left), spikes, tested


def lif_step(params: dict, state: LIFState, current: jax.Array,
             config: LIFConfig = LIFConfig()) -> tuple[LIFState, jax.Array]:
    """One LIF step (integrate, spike, reset, refractory).

    Args:
        params: from :func:`init_lif`.
        state: membrane and refractory counters, ``[batch, units]``.
        current: input current ``[batch, units]``.
        config: static settings.

    Returns:
        ``(new_state, spikes)``; spikes are 0.0/1.0, ``[batch, units]``.
    """
    beta, theta = lif_constants(params)
    return lif_step_constants(beta, theta, state, current, config)


def lif_scan(params: dict, currents: jax.Array, config: LIFConfig = LIFConfig(),
             state: LIFState | None = None, *, steps: int | None = None
             ) -> tuple[LIFState, jax.Array]:
    """Runs a LIF layer over time.

    Args:
        params: from :func:`init_lif`.
        currents: ``[time, batch, units]`` input per step; or, with ``steps``,
            one ``[batch, units]`` current held for ``steps`` steps (rate
            coding), which is never copied ``steps`` times.
        config: static settings.
        state: initial state; at rest if ``None``.
        steps: number of steps for a constant current.

    Returns:
        ``(final_state, spikes)`` with spikes ``[time, batch, units]``.
    """
    constant = steps is not None
    chex.assert_rank(currents, 2 if constant else 3)
    batch, units = currents.shape[-2:]
    chex.assert_shape(params["decay_logit"], (units,))
    if state is None:
        state = init_lif_state(batch, units)
    beta, theta = lif_constants(params)
    currents = currents.astype(jnp.float32)

    def body(carry, current):
        if constant:
            current = currents
        if not config.refractory:  # carry only the membrane: a leaner loop
            carry = LIFState(carry, state.refractory_left)
        carry, spikes = lif_step_constants(beta, theta, carry, current, config)
        return (carry if config.refractory else carry.membrane), spikes

    carry = state if config.refractory else state.membrane
    length = steps if constant else currents.shape[0]
    carry, spikes = jax.lax.scan(body, carry, None if constant else currents,
                                 length=length)
    if not config.refractory:
        carry = LIFState(carry, state.refractory_left)
    return carry, spikes
