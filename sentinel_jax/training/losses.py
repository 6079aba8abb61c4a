"""The training objective of the hybrid detector.

The total loss is a weighted sum of four terms:

* class-weighted cross-entropy of the fused logits against the labels;
* distillation: each branch head (SNN alone, KAN alone) is pulled towards the
  fused prediction softened by a temperature, so the branches learn from the
  model that sees both views (the fused logits are the teacher and receive no
  gradient from this term);
* a spike-rate regulariser keeping each SNN layer's mean firing rate near a
  target (sparse, energy-cheap activity);
* the KAN's L1 and entropy regularisers (sparse, prunable splines).

Every term takes a ``mask`` (``float32 [batch]``, 1 for real rows and 0 for
padding) so that batches padded to a multiple of the device count give the
same loss as the unpadded batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from sentinel_jax.config import TrainingConfig


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (see the module docstring)."""

    class_weights: tuple[float, float] = (1.0, 1.0)
    distill_weight: float = 0.1
    distill_temperature: float = 2.0
    spike_rate_weight: float = 0.0
    target_spike_rate: float = 0.1
    kan_l1_weight: float = 0.0
    kan_entropy_weight: float = 0.0

    @classmethod
    def from_config(cls, training: TrainingConfig) -> LossWeights:
        """The weights named in the training section of a config."""
        normal, attack = training.class_weights
        return cls(class_weights=(float(normal), float(attack)),
                   distill_weight=training.distill_weight,
                   distill_temperature=training.distill_temperature,
                   spike_rate_weight=training.spike_rate_weight,
                   target_spike_rate=training.target_spike_rate,
                   kan_l1_weight=training.kan_l1_weight,
                   kan_entropy_weight=training.kan_entropy_weight)


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of ``values [batch]`` over rows where ``mask [batch]`` is 1."""
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def weighted_cross_entropy(logits: jax.Array, labels: jax.Array, mask: jax.Array,
                           class_weights: Sequence[float]) -> jax.Array:
    """Class-weighted softmax cross-entropy, normalised by the total weight.

    Args:
        logits: ``float32 [batch, 2]``.
        labels: ``int32 [batch]``, 0 normal and 1 attack.
        mask: ``float32 [batch]``, 0 for padding rows.
        class_weights: weight of a normal and of an attack row.

    Returns:
        A scalar: ``sum(w[y] * ce) / sum(w[y])`` over real rows.
    """
    row_weights = jnp.asarray(class_weights, jnp.float32)[labels] * mask
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return jnp.sum(losses * row_weights) / jnp.maximum(jnp.sum(row_weights), 1e-12)


def distillation_loss(student_logits: jax.Array, teacher_logits: jax.Array,
                      temperature: float, mask: jax.Array) -> jax.Array:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, row mean.

    The teacher gets no gradient; the ``T^2`` factor keeps the gradient scale
    independent of the temperature.

    Args:
        student_logits: ``float32 [batch, 2]``.
        teacher_logits: ``float32 [batch, 2]``.
        temperature: softening temperature ``T > 0``.
        mask: ``float32 [batch]``.
    """
    teacher = jax.lax.stop_gradient(teacher_logits) / temperature
    teacher_log_probs = jax.nn.log_softmax(teacher)
    student_log_probs = jax.nn.log_softmax(student_logits / temperature)
    kl = jnp.sum(jnp.exp(teacher_log_probs)
                 * (teacher_log_probs - student_log_probs), axis=-1)
    return temperature**2 * masked_mean(kl, mask)


def spike_rate_penalty(spike_rates: Sequence[jax.Array], target: float,
                       mask: jax.Array) -> jax.Array:
    """Mean over layers of ``(mean firing rate - target)^2``.

    Args:
        spike_rates: per SNN layer, ``float32 [batch, units]`` in [0, 1].
        target: wanted mean firing rate.
        mask: ``float32 [batch]``.
    """
    if not spike_rates:
        return jnp.zeros((), jnp.float32)
    penalties = [(masked_mean(rates.mean(axis=-1), mask) - target) ** 2
                 for rates in spike_rates]
    return jnp.mean(jnp.stack(penalties))


def hybrid_loss(output, labels: jax.Array, mask: jax.Array,
                weights: LossWeights) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The total training loss of one batch and its terms.

    Args:
        output: a ``HybridOutput`` (logits ``[batch, 2]``, optional branch
            logits, spike rates per layer, KAN regularisers).
        labels: ``int32 [batch]``.
        mask: ``float32 [batch]``, 0 for padding rows.
        weights: the loss weights.

    Returns:
        ``(loss, terms)`` where ``terms`` maps ``cross_entropy``, ``distill``,
        ``spike_rate``, ``kan_l1``, ``kan_entropy`` to unweighted scalars.
    """
    cross_entropy = weighted_cross_entropy(
        output.logits, labels, mask, weights.class_weights)
    heads = [head for head in (output.snn_logits, output.kan_logits)
             if head is not None]
    if heads:
        distill = jnp.mean(jnp.stack([
            distillation_loss(head, output.logits, weights.distill_temperature,
                              mask) for head in heads]))
    else:
        distill = jnp.zeros((), jnp.float32)
    spike_rate = spike_rate_penalty(
        output.spike_rates, weights.target_spike_rate, mask)
    kan_l1 = jnp.asarray(output.kan_l1, jnp.float32)
    kan_entropy = jnp.asarray(output.kan_entropy, jnp.float32)
    loss = (cross_entropy
            + weights.distill_weight * distill
            + weights.spike_rate_weight * spike_rate
            + weights.kan_l1_weight * kan_l1
            + weights.kan_entropy_weight * kan_entropy)
    terms = {"cross_entropy": cross_entropy, "distill": distill,
             "spike_rate": spike_rate, "kan_l1": kan_l1,
             "kan_entropy": kan_entropy}
    return loss, terms
