"""A LIF layer over a whole window, with a hand-written backward pass.

:func:`lif_layer` runs one layer of :mod:`sentinel_jax.models.lif` neurons over
all steps of a window and returns its spikes. Its values are those of
:func:`~sentinel_jax.models.lif.lif_scan`; what differs is the gradient.

Why not let autodiff differentiate the scan: the transpose of a scan saves
every intermediate of every step as a stacked residual and walks back through
all of them, a dozen small kernels per step. Here the forward saves two
stacks, the membrane before the spike test and the spikes (and the
refractory mask when there is one), and the backward is one reverse scan of
elementwise work whose carry holds the membrane gradient and the running
sums for ``beta`` and ``theta``. With the matmuls between layers done once
over ``time * batch`` rows, event-encoded training ran 1.2-1.5x faster in
the real loop on the 2-core CPU (see :mod:`sentinel_jax.models.snn`).

The backward, for one neuron (``s`` the spikes, ``m`` the refractory mask of
steps that hold, ``g`` the surrogate derivative at ``v_pre - theta`` masked
by ``1 - m``, ``dS`` the gradient arriving at the spikes):

* ``v_pre(t) = c(t) v_post(t-1) + (1 - m(t)) I(t)`` with
  ``c(t) = m(t) + (1 - m(t)) beta``;
* ``v_post(t) = v_pre(t) - F(t) theta`` (subtract) or ``v_pre(t) (1 - F(t))``
  (zero), ``F`` the spikes, detached from the gradient unless
  ``detach_reset`` is off;
* so ``u(t) = dL/dv_pre(t)`` obeys ``u(t) = A(t) c(t+1) u(t+1) + dS(t) g(t)``
  with ``A = 1`` (subtract) or ``1 - s`` (zero), less ``theta g`` or
  ``v_pre g`` when the reset is not detached; and ``dI = (1 - m) u``,
  ``dbeta = sum (1 - m) u v_post(t-1)``,
  ``dtheta = -sum (dS + reset term) g - [subtract] sum F dv_post``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from sentinel_jax.models.lif import LIFConfig, init_lif_state, lif_step_with_membrane
from sentinel_jax.models.surrogate import SURROGATE_GRADS

# The scans are loops, never unrolled. Event windows (64 steps) lose when
# unrolled. Rate encoding's 10 steps reach lif_layer only at small batches
# (live scoring), and there unrolling made the stacked spikes one kernel per
# step, which XLA:CPU ran as separate tasks on its thread pool: a 10-step
# layer with spikes took 0.11 ms unrolled and 0.037 ms as a loop at batch 1,
# 0.15 and 0.039 ms at batch 8 (one-off timings of the layer alone).


def lif_layer(beta: jax.Array, theta: jax.Array, currents: jax.Array,
              config: LIFConfig, *, steps: int | None = None,
              keep_spikes: bool = True) -> tuple[jax.Array, jax.Array | None]:
    """Spike counts (and spikes) of one LIF layer over a window, from rest.

    Args:
        beta: membrane decay ``[units]``.
        theta: firing threshold ``[units]``.
        currents: ``float32 [time, batch, units]``; or ``[batch, units]``
            held for ``steps`` steps (rate encoding).
        config: static settings (reset, refractory, surrogate).
        steps: number of steps of a held current; None for a current per step.
        keep_spikes: also return the spikes (the next layer's input).

    Returns:
        ``(counts [batch, units], spikes [time, batch, units] or None)``,
        with ``time = steps`` for a held current: the values of ``lif_scan``
        and the surrogate gradient for ``beta``, ``theta`` and ``currents``.
    """
    if (steps is None) != (currents.ndim == 3):
        raise ValueError(f"give currents [time, batch, units], or [batch, units] "
                         f"held for `steps` steps; got shape {currents.shape} and "
                         f"steps={steps}")
    return _lif_layer(config, steps, keep_spikes, beta, theta,
                      currents.astype(jnp.float32))


def _forward_scan(config: LIFConfig, steps: int | None, beta: jax.Array,
                  theta: jax.Array, currents: jax.Array, *, stack: tuple[str, ...]):
    """``(counts, stacked)``: spike counts ``[batch, units]`` and a dict of the
    per-step values named in ``stack`` (``spikes``, ``v_pre``, ``holding``),
    each ``[time, batch, units]``.

    Spike counts are summed in the loop: a reduction over the time axis of
    ``[time, batch, units]`` afterwards ran 25-50x slower on XLA:CPU.
    """
    held = steps is not None
    batch_units = currents.shape[-2:]

    def body(carry, step_current):
        state, counts = carry
        # Steps a refractory neuron holds: it ignores its input and the mask
        # enters the gradient.
        holding = (state.refractory_left > 0).astype(jnp.float32)
        state, spikes, v_pre = lif_step_with_membrane(
            beta, theta, state, currents if held else step_current, config)
        values = {"spikes": spikes, "v_pre": v_pre, "holding": holding}
        return (state, counts + spikes), {name: values[name] for name in stack}

    start = (init_lif_state(*batch_units, config),
             jnp.zeros(batch_units, jnp.float32))
    length = steps if held else currents.shape[0]
    (_, counts), stacked = jax.lax.scan(
        body, start, None if held else currents, length=length)
    return counts, stacked


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _lif_layer(config, steps, keep_spikes, beta, theta, currents):
    counts, stacked = _forward_scan(config, steps, beta, theta, currents,
                                    stack=("spikes",) if keep_spikes else ())
    return counts, stacked.get("spikes")


def _lif_layer_fwd(config, steps, keep_spikes, beta, theta, currents):
    stack = ("spikes", "v_pre") + (("holding",) if config.refractory else ())
    counts, stacked = _forward_scan(config, steps, beta, theta, currents,
                                    stack=stack)
    spikes = stacked["spikes"]
    return ((counts, spikes if keep_spikes else None),
            (beta, theta, spikes, stacked["v_pre"], stacked.get("holding")))


def _lif_layer_bwd(config, steps, keep_spikes, residuals, output_grads):
    """One reverse scan; see the module docstring for the recurrence."""
    beta, theta, spikes, v_pre, holding = residuals
    counts_grad, spikes_grad = output_grads
    subtract = config.reset == "subtract"
    surrogate_grad = SURROGATE_GRADS[config.surrogate]
    held = steps is not None
    xs = {"spikes": spikes, "v_pre": v_pre}
    if holding is not None:
        xs["holding"] = holding
    if keep_spikes:
        xs["spikes_grad"] = spikes_grad

    def body(carry, step):
        later, free_later, beta_sum, theta_sum, input_sum = carry
        s, v = step["spikes"], step["v_pre"]
        free = 1.0 - step["holding"] if "holding" in step else jnp.float32(1.0)
        # v_post(t) enters v_pre(t+1) with factor c(t+1).
        decay_later = beta if holding is None else 1.0 - free_later * (1.0 - beta)
        v_post_grad = decay_later * later
        v_post = v - s * theta if subtract else v * (1.0 - s)
        beta_sum = beta_sum + free_later * later * v_post
        spike_grad = (counts_grad + step["spikes_grad"]) if keep_spikes else counts_grad
        if not config.detach_reset:  # the reset's own dependence on the spike
            spike_grad = spike_grad - (theta if subtract else v) * v_post_grad
        g = free * surrogate_grad(v - theta, config.surrogate_slope)
        now = (v_post_grad if subtract else (1.0 - s) * v_post_grad) + spike_grad * g
        theta_sum = theta_sum - spike_grad * g
        if subtract:
            theta_sum = theta_sum - s * v_post_grad
        input_grad = free * now
        if held:
            return (now, free, beta_sum, theta_sum, input_sum + input_grad), None
        return (now, free, beta_sum, theta_sum, input_sum), input_grad

    zeros = jnp.zeros(spikes.shape[1:], jnp.float32)
    start = (zeros, jnp.ones_like(zeros) if holding is not None else jnp.float32(1.0),
             zeros, zeros,
             zeros if held else jnp.zeros((), jnp.float32))
    (_, _, beta_sum, theta_sum, input_sum), input_grads = jax.lax.scan(
        body, start, xs, reverse=True)
    return (beta_sum.sum(0), theta_sum.sum(0), input_sum if held else input_grads)


_lif_layer.defvjp(_lif_layer_fwd, _lif_layer_bwd)
