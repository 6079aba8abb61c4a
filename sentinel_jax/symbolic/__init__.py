"""Symbolic distillation: a genetic program fits an equation to the trained
scorer, and the equation ships as a standalone Rust detector."""

from sentinel_jax.symbolic.compress import CompressedModel, NeuralToSymbolic
from sentinel_jax.symbolic.equation import Equation
from sentinel_jax.symbolic.rust import DetectorSpec

__all__ = ["CompressedModel", "DetectorSpec", "Equation", "NeuralToSymbolic"]
