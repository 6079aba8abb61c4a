"""Plain dense layers and MLPs as pure functions (fusion MLP, branch heads)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp


def init_dense(key: jax.Array, inputs: int, outputs: int) -> dict:
    """``{"weight": [in, out], "bias": [out]}``, LeCun-normal weights."""
    std = 1.0 / math.sqrt(inputs)
    return {"weight": std * jax.random.normal(key, (inputs, outputs)),
            "bias": jnp.zeros((outputs,), jnp.float32)}


def dense(params: dict, x: jax.Array) -> jax.Array:
    """``[..., in]`` -> ``[..., out]`` (any leading axes)."""
    return x @ params["weight"] + params["bias"]


def init_mlp(key: jax.Array, widths: Sequence[int]) -> list[dict]:
    """Dense layers for widths ``[in, hidden..., out]``."""
    keys = jax.random.split(key, len(widths) - 1)
    return [init_dense(layer_key, inputs, outputs)
            for layer_key, inputs, outputs in zip(keys, widths[:-1], widths[1:],
                                                  strict=True)]


def mlp(layers: Sequence[dict], x: jax.Array) -> jax.Array:
    """Dense layers with SiLU between them (none after the last)."""
    for index, params in enumerate(layers):
        x = dense(params, x)
        if index < len(layers) - 1:
            x = jax.nn.silu(x)
    return x
