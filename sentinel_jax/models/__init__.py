"""The detector's models: LIF spiking network, B-spline KAN, and their hybrid."""

from sentinel_jax.models.hybrid import (
    HybridOutput,
    HybridSNNKAN,
    HybridSpec,
    SNN_KAN_Hybrid,
    apply_hybrid,
    count_parameters,
    extend_hybrid_grid,
    forward_flops,
    init_hybrid,
    kan_inputs,
    kan_spline_functions,
    normalised_hist,
    parameter_bytes,
    prepare_hybrid,
    prepared_logits,
    snn_spike_trains,
)
from sentinel_jax.models.kan import KAN, KANConfig
from sentinel_jax.models.lif import LIFConfig, LIFState
from sentinel_jax.models.snn import SpikingNeuralNetwork

__all__ = [
    "KAN", "HybridOutput", "HybridSNNKAN", "HybridSpec", "KANConfig", "LIFConfig",
    "LIFState", "SNN_KAN_Hybrid", "SpikingNeuralNetwork", "apply_hybrid",
    "count_parameters", "extend_hybrid_grid", "forward_flops", "init_hybrid",
    "kan_inputs", "kan_spline_functions", "normalised_hist", "parameter_bytes",
    "prepare_hybrid", "prepared_logits", "snn_spike_trains",
]
