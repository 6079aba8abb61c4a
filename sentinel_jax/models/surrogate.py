"""Spike functions: a Heaviside step forward, a smooth surrogate backward.

A spiking neuron fires when its membrane crosses threshold, ``H(v - theta)``.
The step has a zero derivative almost everywhere, so training uses a
surrogate: the forward pass keeps the exact step and the backward pass uses
the derivative of a smooth stand-in. Each surrogate below peaks at 1 where
``v == theta`` and narrows as ``slope`` grows (width about ``1 / slope``):

* ``fast_sigmoid``: ``1 / (1 + slope |x|)^2`` (SuperSpike);
* ``arctan``: ``1 / (1 + (pi / 2 * slope * x)^2)``;
* ``triangle``: ``max(0, 1 - slope |x|)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

SpikeFn = Callable[[jax.Array], jax.Array]


def fast_sigmoid_grad(x: jax.Array, slope: float) -> jax.Array:
    """Derivative of the fast sigmoid ``x / (1 + slope |x|)``, scaled to peak 1."""
    return 1.0 / jnp.square(1.0 + slope * jnp.abs(x))


def arctan_grad(x: jax.Array, slope: float) -> jax.Array:
    """Derivative of ``arctan(pi / 2 * slope * x)``, scaled to peak 1."""
    return 1.0 / (1.0 + jnp.square(0.5 * math.pi * slope * x))


def triangle_grad(x: jax.Array, slope: float) -> jax.Array:
    """A triangle of height 1 and half-width ``1 / slope``."""
    return jnp.maximum(0.0, 1.0 - slope * jnp.abs(x))


SURROGATE_GRADS: dict[str, Callable[[jax.Array, float], jax.Array]] = {
    "fast_sigmoid": fast_sigmoid_grad,
    "arctan": arctan_grad,
    "triangle": triangle_grad,
}


def heaviside(x: jax.Array) -> jax.Array:
    """1.0 where ``x > 0`` else 0.0, in the dtype of ``x``."""
    x = jnp.asarray(x)
    return (x > 0).astype(x.dtype)


@functools.cache
def make_spike_fn(name: str = "fast_sigmoid", slope: float = 10.0) -> SpikeFn:
    """A spike function ``x -> H(x)`` whose derivative is the named surrogate.

    The result is cached per ``(name, slope)``, so jitted callers that build it
    inside a trace see the same function object each time.

    Args:
        name: one of :data:`SURROGATE_GRADS`.
        slope: sharpness; the surrogate's width is about ``1 / slope``.

    Returns:
        An elementwise function, ``x`` of any shape and float dtype.

    Raises:
        ValueError: for an unknown name or a slope that is not positive.
    """
    if name not in SURROGATE_GRADS:
        raise ValueError(f"unknown surrogate {name!r}; expected one of "
                         f"{', '.join(SURROGATE_GRADS)}")
    if not slope > 0:
        raise ValueError(f"surrogate slope must be positive, got {slope!r}")
    surrogate_grad = SURROGATE_GRADS[name]

    @jax.custom_jvp
    def spike(x: jax.Array) -> jax.Array:
        return heaviside(x)

    @spike.defjvp
    def spike_jvp(primals, tangents):
        (x,), (x_dot,) = primals, tangents
        return heaviside(x), surrogate_grad(x, slope).astype(x.dtype) * x_dot

    return spike
