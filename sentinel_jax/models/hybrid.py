"""The hybrid detector: a spiking branch, a KAN branch, a fusion MLP.

* SNN branch: the window's events (``event`` encoding) or its hist held as a
  current (``rate``) drive LIF layers; the last layer's spike rates are the
  branch's features.
* KAN branch: the hist drives KAN layers; their output is its features.
* Fusion: ``concat(features of present branches) -> MLP -> 2 logits``. Each
  branch also has a linear head of its own, so a distillation term can make
  the branches teach each other, and ``branches=("snn",)`` or ``("kan",)``
  gives a single-branch model for ablations with the same code.

Input normalisation: hist entries are frequencies in ``[0, 1]`` and mostly
small (a window of 64 events spreads over dozens of names). Both branches see
``sqrt(hist)``, which spreads small frequencies apart, the way a variance-
stabilising transform does for counts; the KAN maps it linearly onto its
``grid_range`` (default ``[-1, 1]``), so the spline grid covers exactly the
range of possible inputs (see :func:`kan_inputs`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from sentinel_jax.config import DataConfig, ModelConfig
from sentinel_jax.data.tags import NUM_TAGS
from sentinel_jax.models.dense import dense, init_dense, init_mlp, mlp
from sentinel_jax.models.kan import (
    KANConfig,
    apply_prepared_kan,
    edge_functions,
    extend_kan_layer,
    init_kan,
    kan_regularisers,
    prepare_kan,
)
from sentinel_jax.models.lif import LIFConfig
from sentinel_jax.models.snn import (
    ENCODINGS,
    init_snn,
    prepare_snn,
    prepared_snn_rates,
    snn_spikes,
)

BRANCHES = ("snn", "kan")
NUM_CLASSES = 2
_SQRT_EPS = 1e-6  # keeps d sqrt(hist) / d hist finite at 0 (saliency maps)


@dataclasses.dataclass(frozen=True)
class HybridSpec:
    """Static, hashable hyperparameters of the hybrid (a jit static argument).

    Attributes mirror the ``model`` config section; ``channels``,
    ``name_channels`` and ``time`` come from the ``data`` section.
    """

    channels: int = 128
    name_channels: int = 96
    time: int = 64
    encoding: str = "event"
    snn_hidden: tuple[int, ...] = (128, 64, 32)
    threshold: float = 0.5
    membrane_decay: float = 0.9
    num_timesteps: int = 10
    refractory: int = 0
    reset: str = "subtract"
    surrogate: str = "fast_sigmoid"
    surrogate_slope: float = 10.0
    kan_hidden: tuple[int, ...] = (64, 32)
    spline_order: int = 3
    grid_size: int = 5
    grid_range: tuple[float, float] = (-1.0, 1.0)
    base_activation: str = "silu"
    fusion_hidden: tuple[int, ...] = (32,)
    branches: tuple[str, ...] = BRANCHES
    detach_reset: bool = True

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, "
                             f"got {self.encoding!r}")
        if not self.branches or set(self.branches) - set(BRANCHES) or len(
                set(self.branches)) != len(self.branches):
            raise ValueError(f"branches must be a non-empty subset of {BRANCHES}, "
                             f"got {self.branches!r}")
        if not 0 < self.name_channels < self.channels:
            raise ValueError(f"need 0 < name_channels < channels, got "
                             f"{self.name_channels} and {self.channels}")
        for name in ("snn_hidden", "kan_hidden", "fusion_hidden"):
            widths = getattr(self, name)
            if not isinstance(widths, tuple) or any(w < 1 for w in widths):
                raise ValueError(f"{name} must be a tuple of positive widths, "
                                 f"got {widths!r}")
        if not self.snn_hidden or not self.kan_hidden:
            raise ValueError("snn_hidden and kan_hidden need at least one layer")
        self.lif_config  # noqa: B018  (validates reset, surrogate, refractory)
        self.kan_config  # noqa: B018  (validates grid and activation)

    @classmethod
    def from_config(cls, model: ModelConfig, data: DataConfig, **overrides
                    ) -> HybridSpec:
        """The spec for the ``model`` and ``data`` sections of a config."""
        return cls(
            channels=data.feature_dim, name_channels=data.name_channels,
            time=data.sequence_length, encoding=model.encoding,
            snn_hidden=tuple(model.snn_hidden), threshold=model.spike_threshold,
            membrane_decay=model.membrane_decay, num_timesteps=model.num_timesteps,
            refractory=model.refractory, reset=model.reset,
            surrogate=model.surrogate, surrogate_slope=model.surrogate_slope,
            kan_hidden=tuple(model.kan_hidden), spline_order=model.spline_order,
            grid_size=model.grid_size, grid_range=tuple(model.grid_range),
            base_activation=model.base_activation,
            fusion_hidden=tuple(model.fusion_hidden), **overrides)

    @property
    def lif_config(self) -> LIFConfig:
        """Static LIF settings."""
        return LIFConfig(reset=self.reset, refractory=self.refractory,
                         surrogate=self.surrogate,
                         surrogate_slope=self.surrogate_slope,
                         detach_reset=self.detach_reset)

    @property
    def kan_config(self) -> KANConfig:
        """Static KAN settings."""
        return KANConfig(self.grid_size, self.spline_order, tuple(self.grid_range),
                         self.base_activation)

    @property
    def tag_channels(self) -> int:
        """Tag bits the SNN reads (the hist may hold fewer than 32)."""
        return min(self.channels - self.name_channels, NUM_TAGS)

    @property
    def snn_steps(self) -> int:
        """LIF steps per window: events, or ``num_timesteps`` in rate mode."""
        return self.time if self.encoding == "event" else self.num_timesteps


class HybridOutput(NamedTuple):
    """What :func:`apply_hybrid` returns.

    Attributes:
        logits: ``float32 [batch, 2]`` of the fusion MLP.
        snn_logits: ``[batch, 2]`` of the SNN branch head, or None.
        kan_logits: ``[batch, 2]`` of the KAN branch head, or None.
        spike_rates: per SNN layer, ``[batch, units]`` mean spikes per step;
            empty without the SNN branch.
        kan_l1: scalar weight-L1 regulariser (0.0 without the KAN).
        kan_entropy: scalar edge-entropy regulariser (0.0 without the KAN).
    """

    logits: jax.Array
    snn_logits: jax.Array | None
    kan_logits: jax.Array | None
    spike_rates: tuple[jax.Array, ...]
    kan_l1: jax.Array
    kan_entropy: jax.Array


def init_hybrid(key: jax.Array, spec: HybridSpec) -> dict:
    """Parameters: a nested dict of float32 arrays.

    Keys: ``snn`` and ``snn_head`` (SNN branch), ``kan`` and ``kan_head``
    (KAN branch), ``fusion`` (MLP layers).
    """
    snn_key, snn_head_key, kan_key, kan_head_key, fusion_key = jax.random.split(key, 5)
    params: dict = {}
    features = 0
    if "snn" in spec.branches:
        params["snn"] = init_snn(
            snn_key, encoding=spec.encoding, input_dim=spec.channels,
            hidden=spec.snn_hidden, name_channels=spec.name_channels,
            threshold=spec.threshold, decay=spec.membrane_decay)
        params["snn_head"] = init_dense(snn_head_key, spec.snn_hidden[-1], NUM_CLASSES)
        features += spec.snn_hidden[-1]
    if "kan" in spec.branches:
        params["kan"] = init_kan(kan_key, (spec.channels, *spec.kan_hidden),
                                 spec.kan_config)
        params["kan_head"] = init_dense(kan_head_key, spec.kan_hidden[-1], NUM_CLASSES)
        features += spec.kan_hidden[-1]
    widths = (features, *spec.fusion_hidden, NUM_CLASSES)
    params["fusion"] = init_mlp(fusion_key, widths)
    return params


def normalised_hist(hist: jax.Array) -> jax.Array:
    """``sqrt(hist)`` (hist clipped to ``[0, 1]``), the branches' hist input."""
    hist = jnp.clip(hist, 0.0, 1.0)
    return jnp.sqrt(hist + _SQRT_EPS) - math.sqrt(_SQRT_EPS)


def kan_inputs(hist: jax.Array, spec: HybridSpec) -> jax.Array:
    """hist ``[batch, channels]`` -> KAN input in ``grid_range``."""
    low, high = spec.grid_range
    return low + (high - low) * normalised_hist(hist)


def _check_inputs(spec: HybridSpec, ids: jax.Array, tags: jax.Array,
                  hist: jax.Array) -> None:
    batch = hist.shape[0]
    chex.assert_shape(ids, (batch, spec.time))
    chex.assert_shape(tags, (batch, spec.time))
    chex.assert_shape(hist, (batch, spec.channels))
    chex.assert_type(ids, jnp.int32)
    chex.assert_type(tags, jnp.uint32)
    chex.assert_type(hist, jnp.float32)


def snn_spike_trains(params: dict, spec: HybridSpec, ids: jax.Array,
                     tags: jax.Array, hist: jax.Array) -> tuple[jax.Array, ...]:
    """Spikes of every SNN layer, ``[steps, batch, units]`` each (rasters).

    ``steps`` is ``time`` in event mode and ``num_timesteps`` in rate mode.
    """
    if "snn" not in spec.branches:
        raise ValueError("this model has no SNN branch")
    _check_inputs(spec, ids, tags, hist)
    if spec.encoding == "event":
        return snn_spikes(params["snn"], spec.lif_config, ids=ids, tags=tags)
    return snn_spikes(params["snn"], spec.lif_config, rates_in=normalised_hist(hist),
                      num_timesteps=spec.num_timesteps)


def prepare_hybrid(params: dict, spec: HybridSpec) -> dict:
    """The parameters in the form the forward pass reads them.

    Work that depends on the parameters alone (LIF ``beta`` and ``theta``,
    the padded name table, folded KAN weights) is done here. Training runs
    it inside the jitted step; inference runs it once at load and then calls
    :func:`prepared_logits`, so a batch-1 forward does none of it.
    """
    prepared = {name: params[name] for name in ("snn_head", "kan_head", "fusion")
                if name in params}
    if "snn" in spec.branches:
        prepared["snn"] = prepare_snn(params["snn"])
    if "kan" in spec.branches:
        prepared["kan"] = prepare_kan(params["kan"])
    return prepared


def _branch_features(prepared: dict, spec: HybridSpec, ids: jax.Array,
                     tags: jax.Array, hist: jax.Array
                     ) -> tuple[tuple[jax.Array, ...], jax.Array | None]:
    """``(SNN spike rates per layer, KAN output or None)``."""
    spike_rates: tuple[jax.Array, ...] = ()
    kan_out = None
    if "snn" in spec.branches:
        if spec.encoding == "event":
            spike_rates = prepared_snn_rates(prepared["snn"], spec.lif_config,
                                             ids=ids, tags=tags)
        else:
            spike_rates = prepared_snn_rates(
                prepared["snn"], spec.lif_config, rates_in=normalised_hist(hist),
                num_timesteps=spec.num_timesteps)
    if "kan" in spec.branches:
        kan_out = apply_prepared_kan(prepared["kan"], kan_inputs(hist, spec),
                                     spec.kan_config)
    return spike_rates, kan_out


def _fuse(prepared: dict, spike_rates: tuple[jax.Array, ...],
          kan_out: jax.Array | None) -> jax.Array:
    features = ([spike_rates[-1]] if spike_rates else []) + (
        [kan_out] if kan_out is not None else [])
    return mlp(prepared["fusion"], jnp.concatenate(features, axis=-1))


def prepared_logits(prepared: dict, spec: HybridSpec, ids: jax.Array,
                    tags: jax.Array, hist: jax.Array) -> jax.Array:
    """The fusion logits ``float32 [batch, 2]`` from :func:`prepare_hybrid`'s
    parameters; equal to ``apply_hybrid(params, ...).logits``."""
    _check_inputs(spec, ids, tags, hist)
    spike_rates, kan_out = _branch_features(prepared, spec, ids, tags, hist)
    return _fuse(prepared, spike_rates, kan_out)


def apply_hybrid(params: dict, spec: HybridSpec, ids: jax.Array, tags: jax.Array,
                 hist: jax.Array) -> HybridOutput:
    """Scores windows.

    Args:
        params: from :func:`init_hybrid`.
        spec: static hyperparameters.
        ids: ``int32 [batch, time]`` name channels, 0 for padding.
        tags: ``uint32 [batch, time]`` tag masks.
        hist: ``float32 [batch, channels]`` channel frequencies.

    Returns:
        A :class:`HybridOutput`; ``logits[:, 1]`` is the anomaly class.
    """
    _check_inputs(spec, ids, tags, hist)
    prepared = prepare_hybrid(params, spec)
    spike_rates, kan_out = _branch_features(prepared, spec, ids, tags, hist)
    snn_logits = kan_logits = None
    kan_l1 = kan_entropy = jnp.zeros((), jnp.float32)
    if spike_rates:
        snn_logits = dense(params["snn_head"], spike_rates[-1])
    if kan_out is not None:
        kan_logits = dense(params["kan_head"], kan_out)
        kan_l1, kan_entropy = kan_regularisers(params["kan"])
    logits = _fuse(prepared, spike_rates, kan_out)
    return HybridOutput(logits, snn_logits, kan_logits, spike_rates, kan_l1,
                        kan_entropy)


def kan_spline_functions(params: dict, spec: HybridSpec, layer: int = 0,
                         num_points: int = 101) -> tuple[jax.Array, jax.Array]:
    """The learned edge functions of one KAN layer on a grid, for plotting.

    Points span the extended grid (``grid_range`` plus ``spline_order``
    intervals each side). For layer 0 a point ``x`` is the input of hist value
    ``((x - low) / (high - low))^2``, see :func:`kan_inputs`.

    Returns:
        ``(points [point], values [point, in, out])``.
    """
    if "kan" not in spec.branches:
        raise ValueError("this model has no KAN branch")
    knots = spec.kan_config.knots
    points = jnp.linspace(knots[0], knots[-1], num_points)
    return points, edge_functions(params["kan"][layer], points, spec.kan_config)


def extend_hybrid_grid(params: dict, spec: HybridSpec, grid_size: int
                       ) -> tuple[dict, HybridSpec]:
    """Moves every KAN layer to ``grid_size`` intervals, refitting coefficients.

    Returns:
        ``(params, spec)`` with the new coefficients and ``grid_size``; the
        KAN's edge functions keep their shape inside ``grid_range``.
    """
    if "kan" not in spec.branches:
        raise ValueError("this model has no KAN branch")
    layers = [extend_kan_layer(layer, spec.kan_config, grid_size)
              for layer in params["kan"]]
    return {**params, "kan": layers}, dataclasses.replace(spec, grid_size=grid_size)


def count_parameters(params: dict) -> int:
    """Number of scalars in a parameter tree."""
    return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(params))


def parameter_bytes(params: dict) -> int:
    """Size of the parameters stored as float32."""
    return 4 * count_parameters(params)


# Elementwise FLOPs per LIF neuron-step: integrate (2), threshold (1),
# reset (2); per KAN input: activation (4) plus 6 per de Boor triangle term.
_LIF_FLOPS = 5
_ACTIVATION_FLOPS = 4


def _dense_flops(inputs: int, outputs: int) -> int:
    return 2 * inputs * outputs + outputs


def forward_flops(spec: HybridSpec) -> int:
    """FLOPs per sample of one forward pass, counted by hand.

    Counts multiply-adds of every matmul (2 each), the LIF updates, the
    B-spline evaluation and the readouts. The event encoding's first-layer
    current is gathered (the name row and one tag-table row per byte of the
    tag mask, see :func:`~sentinel_jax.models.snn.tag_byte_tables`): only the
    additions count. Per-batch work (the tag tables, folding KAN weights,
    parameter transforms) is left out.
    """
    flops = 0
    if "snn" in spec.branches:
        steps, hidden = spec.snn_steps, spec.snn_hidden
        if spec.encoding == "event":
            tag_bytes = -(-spec.tag_channels // 8)
            flops += steps * tag_bytes * hidden[0]
        else:
            flops += _dense_flops(spec.channels, hidden[0])
        for inputs, outputs in zip(hidden[:-1], hidden[1:], strict=False):
            flops += steps * _dense_flops(inputs, outputs)
        flops += steps * sum(hidden) * (_LIF_FLOPS + 1)  # + spike-rate sums
        flops += _dense_flops(hidden[-1], NUM_CLASSES)
    if "kan" in spec.branches:
        order, coeff = spec.spline_order, spec.grid_size + spec.spline_order
        basis = _ACTIVATION_FLOPS + 6 * (order * (order + 3) // 2) + 4
        widths = (spec.channels, *spec.kan_hidden)
        for inputs, outputs in zip(widths[:-1], widths[1:], strict=False):
            flops += inputs * basis + _dense_flops(inputs * (coeff + 1), outputs)
        flops += _dense_flops(spec.kan_hidden[-1], NUM_CLASSES)
    features = (spec.snn_hidden[-1] if "snn" in spec.branches else 0) + (
        spec.kan_hidden[-1] if "kan" in spec.branches else 0)
    widths = (features, *spec.fusion_hidden, NUM_CLASSES)
    flops += sum(_dense_flops(i, o) for i, o in zip(widths[:-1], widths[1:],
                                                       strict=False))
    return flops


@dataclasses.dataclass(frozen=True)
class HybridSNNKAN:
    """The reference design's hybrid entry point, a holder over the functions.

    Example::

        model = HybridSNNKAN(HybridSpec(encoding="rate"))
        params = model.init(jax.random.key(0))
        out = model.apply(params, ids, tags, hist)  # a HybridOutput
    """

    spec: HybridSpec = HybridSpec()

    def init(self, key: jax.Array) -> dict:
        """Parameters, see :func:`init_hybrid`."""
        return init_hybrid(key, self.spec)

    def apply(self, params: dict, ids: jax.Array, tags: jax.Array, hist: jax.Array
              ) -> HybridOutput:
        """Scores windows, see :func:`apply_hybrid`."""
        return apply_hybrid(params, self.spec, ids, tags, hist)

    __call__ = apply


SNN_KAN_Hybrid = HybridSNNKAN  # the reference design's other spelling
