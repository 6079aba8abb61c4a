"""Kolmogorov-Arnold network layers as pure functions.

A KAN layer puts a learnable function on every edge ``i -> o``:

    y_o = sum_i w_base[i, o] * act(x_i)
               + w_spline[i, o] * sum_k c[i, o, k] * B_k(x_i)  (+ bias_o)

It is computed as one matmul: the features ``[act(x_i), B_0(x_i), ...]`` of
every input, ``[batch, in * (coeff + 1)]``, times the folded weights
``[in * (coeff + 1), out]``. The ``[batch, in, out]`` edge values are never
materialised. Grids are uniform (:func:`uniform_grid`), so the fast basis
path is used; :func:`extend_kan_layer` moves a layer to a finer grid.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp

from sentinel_jax.models.bspline import (
    check_grid,
    extend_grid,
    uniform_bspline_basis,
    uniform_grid,
)

ACTIVATIONS = {"silu": jax.nn.silu, "gelu": jax.nn.gelu, "tanh": jnp.tanh}

_COEF_STD = 0.1  # initial splines are small bumps around the base activation


@dataclasses.dataclass(frozen=True)
class KANConfig:
    """Static settings shared by the layers of a KAN (hashable).

    Attributes:
        grid_size: grid intervals over ``grid_range``.
        spline_order: spline degree (3: cubic).
        grid_range: ``(low, high)`` where the bases form a partition of unity.
        base_activation: ``silu``, ``gelu`` or ``tanh``.
    """

    grid_size: int = 5
    spline_order: int = 3
    grid_range: tuple[float, float] = (-1.0, 1.0)
    base_activation: str = "silu"

    def __post_init__(self) -> None:
        if self.base_activation not in ACTIVATIONS:
            raise ValueError(f"base_activation must be one of "
                             f"{', '.join(ACTIVATIONS)}, got {self.base_activation!r}")
        check_grid(self.grid_size, self.spline_order, self.grid_range)

    @property
    def coeff(self) -> int:
        """Basis functions per edge."""
        return self.grid_size + self.spline_order

    @property
    def knots(self) -> jax.Array:
        """``[coeff + spline_order + 1]`` extended uniform knots."""
        return uniform_grid(self.grid_size, self.spline_order, self.grid_range)


def init_kan_layer(key: jax.Array, inputs: int, outputs: int,
                   config: KANConfig = KANConfig()) -> dict:
    """Parameters of one KAN layer.

    Returns:
        ``{"base_weight": [in, out], "spline_weight": [in, out],
        "coef": [in, out, coeff], "bias": [out]}``.
    """
    base_key, coef_key = jax.random.split(key)
    scale = 1.0 / math.sqrt(inputs)
    return {
        "base_weight": scale * jax.random.normal(base_key, (inputs, outputs)),
        "spline_weight": jnp.full((inputs, outputs), scale, jnp.float32),
        "coef": _COEF_STD * jax.random.normal(
            coef_key, (inputs, outputs, config.coeff)),
        "bias": jnp.zeros((outputs,), jnp.float32),
    }


def folded_weights(params: dict) -> jax.Array:
    """Base and spline weights as one matrix, ``[in * (coeff + 1), out]``."""
    inputs, outputs, coeff = params["coef"].shape
    spline = params["spline_weight"][..., None] * params["coef"]  # [in, out, coeff]
    weights = jnp.concatenate([params["base_weight"][:, None, :],
                               jnp.transpose(spline, (0, 2, 1))], axis=1)
    return weights.reshape(inputs * (coeff + 1), outputs)


def kan_features(x: jax.Array, config: KANConfig) -> jax.Array:
    """``[batch, in]`` -> ``[batch, in * (coeff + 1)]``: act then the bases."""
    activation = ACTIVATIONS[config.base_activation](x)
    basis = uniform_bspline_basis(x, config.grid_size, config.spline_order,
                                  config.grid_range)  # [batch, in, coeff]
    features = jnp.concatenate([activation[..., None], basis], axis=-1)
    return features.reshape(x.shape[0], -1)


def kan_layer(params: dict, x: jax.Array, config: KANConfig = KANConfig()
              ) -> jax.Array:
    """One KAN layer, ``[batch, in]`` -> ``[batch, out]``."""
    chex.assert_rank(x, 2)
    chex.assert_axis_dimension(x, 1, params["coef"].shape[0])
    return kan_features(x, config) @ folded_weights(params) + params["bias"]


def init_kan(key: jax.Array, widths: Sequence[int],
             config: KANConfig = KANConfig()) -> list[dict]:
    """Layers for widths ``[in, hidden..., out]``."""
    if len(widths) < 2:
        raise ValueError(f"a KAN needs at least input and output widths, got {widths}")
    keys = jax.random.split(key, len(widths) - 1)
    return [init_kan_layer(layer_key, inputs, outputs, config)
            for layer_key, inputs, outputs in zip(keys, widths[:-1], widths[1:],
                                                  strict=True)]


def apply_kan(layers: Sequence[dict], x: jax.Array,
              config: KANConfig = KANConfig()) -> jax.Array:
    """Runs the layers in turn, ``[batch, in]`` -> ``[batch, out]``."""
    for params in layers:
        x = kan_layer(params, x, config)
    return x


def prepare_kan(layers: Sequence[dict]) -> list[dict]:
    """Each layer as ``{"weight": folded [in * (coeff + 1), out], "bias"}``.

    Folding depends on the parameters alone; inference does it once at load
    (see :func:`apply_prepared_kan`) instead of on every call.
    """
    return [{"weight": folded_weights(params), "bias": params["bias"]}
            for params in layers]


def apply_prepared_kan(prepared: Sequence[dict], x: jax.Array,
                       config: KANConfig = KANConfig()) -> jax.Array:
    """:func:`apply_kan` on layers from :func:`prepare_kan`."""
    chex.assert_rank(x, 2)
    for params in prepared:
        x = kan_features(x, config) @ params["weight"] + params["bias"]
    return x


def edge_magnitudes(params: dict) -> jax.Array:
    """Weight-based size of every edge function, ``[in, out]``.

    ``|w_base| + |w_spline| * mean_k |c_k|``: a bound on the edge's scale that
    needs no data, so the regularisers cost nothing per sample.
    """
    spline = jnp.abs(params["spline_weight"]) * jnp.abs(params["coef"]).mean(-1)
    return jnp.abs(params["base_weight"]) + spline


def kan_regularisers(layers: Sequence[dict]) -> tuple[jax.Array, jax.Array]:
    """``(l1, entropy)`` summed over layers.

    ``l1`` is the total edge magnitude; ``entropy`` is that of the edge
    magnitudes normalised within each layer. Penalising both pushes a KAN
    towards few, strong edges, which is what makes it readable.
    """
    l1 = jnp.zeros((), jnp.float32)
    entropy = jnp.zeros((), jnp.float32)
    for params in layers:
        magnitude = edge_magnitudes(params)
        total = magnitude.sum()
        share = magnitude / (total + 1e-12)
        l1 = l1 + total
        entropy = entropy - jnp.sum(share * jnp.log(share + 1e-12))
    return l1, entropy


def edge_functions(params: dict, x: jax.Array, config: KANConfig = KANConfig()
                   ) -> jax.Array:
    """Every edge function of a layer on points ``x [point]``, for plotting.

    Returns:
        ``[point, in, out]``: ``w_base act(x) + w_spline sum_k c_k B_k(x)``
        (the bias, shared by all edges into an output, is left out).
    """
    chex.assert_rank(x, 1)
    activation = ACTIVATIONS[config.base_activation](x)  # [point]
    basis = uniform_bspline_basis(x, config.grid_size, config.spline_order,
                                  config.grid_range)  # [point, coeff]
    spline = jnp.einsum("pk,iok->pio", basis, params["coef"])
    return (activation[:, None, None] * params["base_weight"]
            + params["spline_weight"] * spline)


def extend_kan_layer(params: dict, config: KANConfig, grid_size: int,
                     samples: jax.Array | None = None) -> dict:
    """The layer moved to a grid of ``grid_size`` intervals (same range).

    Coefficients are refitted by least squares (:func:`extend_grid`) so each
    edge function keeps its shape inside the grid range (exactly, when the
    new grid refines the old one, e.g. doubles it).
    """
    new_config = dataclasses.replace(config, grid_size=grid_size)
    coef = extend_grid(params["coef"], config.knots, new_config.knots,
                       config.spline_order, samples)
    return {**params, "coef": coef}


@dataclasses.dataclass(frozen=True)
class KAN:
    """The reference design's KAN entry point: KAN layers, a linear head.

    Example::

        kan = KAN(input_dim=128, hidden_dims=(64, 32))
        params = kan.init(jax.random.key(0))
        logits, features = kan.apply(params, x)  # x [batch, 128] in grid_range
    """

    input_dim: int = 128
    hidden_dims: Sequence[int] = (64, 32)
    num_classes: int = 2
    spline_order: int = 3
    grid_size: int = 5
    grid_range: tuple[float, float] = (-1.0, 1.0)
    base_activation: str = "silu"

    @property
    def config(self) -> KANConfig:
        """The layers' static settings."""
        return KANConfig(self.grid_size, self.spline_order, tuple(self.grid_range),
                         self.base_activation)

    def init(self, key: jax.Array) -> dict:
        """Parameters: ``{"layers": [...], "head": {"weight", "bias"}}``."""
        kan_key, head_key = jax.random.split(key)
        widths = (self.input_dim, *self.hidden_dims)
        head_std = 1.0 / math.sqrt(widths[-1])
        return {"layers": init_kan(kan_key, widths, self.config),
                "head": {"weight": head_std * jax.random.normal(
                             head_key, (widths[-1], self.num_classes)),
                         "bias": jnp.zeros((self.num_classes,), jnp.float32)}}

    def apply(self, params: dict, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(logits [batch, classes], features [batch, hidden_dims[-1]])``."""
        features = apply_kan(params["layers"], x, self.config)
        return features @ params["head"]["weight"] + params["head"]["bias"], features

    __call__ = apply
