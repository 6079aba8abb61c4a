"""Jitted train and score steps, and the data order of an epoch.

The train step is one pure function ``(state, batch) -> (state, metrics)``.
To keep the host out of the inner loop, :func:`make_run_steps` wraps it in a
``lax.scan`` over a stack of batches ``[steps, batch, ...]``: one dispatch
runs many optimiser steps, and per-step metrics come back as ``[steps]``
arrays that are read once per epoch, never per step.

A batch is a dict of arrays:

* ``ids``: ``int32 [batch, time]``; ``tags``: ``uint32 [batch, time]``;
* ``hist``: ``float32 [batch, channels]``;
* ``labels``: ``int32 [batch]``;
* ``mask``: ``float32 [batch]``, 0 for rows that only pad the batch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, PartitionSpec

from sentinel_jax.models.hybrid import HybridSpec, apply_hybrid
from sentinel_jax.training.losses import LossWeights, hybrid_loss
from sentinel_jax.training.sharding import DATA_AXIS
from sentinel_jax.training.state import Params, TrainState

Batch = Mapping[str, jax.Array]
TrainStep = Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]
INPUTS = ("ids", "tags", "hist")


def epoch_order(seed: int, epoch: int, windows: int, batch_size: int) -> np.ndarray:
    """The shuffled window order of one epoch, ``int64 [steps, batch]``.

    A pure function of ``(seed, epoch)``, so a resumed run sees exactly the
    batches an uninterrupted one would. The last batch is filled with ``-1``
    (padding rows, masked out of the loss).
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(windows)
    steps = -(-windows // batch_size)
    padded = np.full(steps * batch_size, -1, dtype=np.int64)
    padded[:windows] = order
    return padded.reshape(steps, batch_size)


def gather_batches(arrays: Mapping[str, np.ndarray],
                   order: np.ndarray) -> dict[str, np.ndarray]:
    """Host-side gather of a stack of batches.

    Args:
        arrays: ``ids``, ``tags``, ``hist``, ``labels`` with windows first.
        order: ``int64 [steps, batch]`` row indices, ``-1`` for padding.

    Returns:
        The batch dict with a leading ``steps`` axis on every array.
    """
    valid = order >= 0
    rows = np.where(valid, order, 0)
    stack = {name: arrays[name][rows] for name in (*INPUTS, "labels")}
    stack["mask"] = valid.astype(np.float32)
    return stack


def make_train_step(spec: HybridSpec, optimizer: optax.GradientTransformation,
                    weights: LossWeights, mesh: Mesh | None = None) -> TrainStep:
    """The pure train step of the hybrid under ``optimizer`` and ``weights``.

    Args:
        spec: static hyperparameters of the model.
        optimizer: the optax transformation.
        weights: the loss weights.
        mesh: the ``data`` mesh the batch is split over. With more than one
            device the gradient is taken by :func:`data_parallel_grad`;
            otherwise by plain autodiff of the whole-batch loss. Both give
            the same loss and gradient up to float rounding.

    Returns:
        ``train_step(state, batch) -> (state, metrics)`` with scalar metrics
        ``loss``, the unweighted loss terms, ``grad_norm`` and ``rows``.
    """

    def loss_fn(params: Params, batch: Batch):
        output = apply_hybrid(params, spec, batch["ids"], batch["tags"],
                              batch["hist"])
        return hybrid_loss(output, batch["labels"], batch["mask"], weights)

    if mesh is not None and mesh.devices.size > 1:
        value_and_grad = data_parallel_grad(spec, weights, mesh)
    else:
        value_and_grad = jax.value_and_grad(loss_fn, has_aux=True)

    def train_step(state: TrainState, batch: Batch):
        (loss, terms), grads = value_and_grad(state.params, batch)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, **terms, "grad_norm": optax.tree.norm(grads),
                   "rows": jnp.sum(batch["mask"])}
        return TrainState(state.step + 1, params, opt_state), metrics

    return train_step


def data_parallel_grad(spec: HybridSpec, weights: LossWeights, mesh: Mesh):
    """``(params, batch) -> ((loss, terms), grads)`` with the batch split
    over ``mesh``, equal to autodiff of the whole-batch loss.

    Why not let XLA partition the plain step: on the CPU its partitioned
    backward scan ran slower on two devices than on one (2,840 against 4,680
    event windows/s at batch 256, with the earlier one-scan gradient, both
    timed in one one-off script), while this explicit schedule ran 8,180.
    Each device

    1. runs the model forward on its own rows and keeps the pullback
       (``jax.vjp``): the expensive part, with no communication;
    2. gathers every device's outputs (logits ``[batch, 2]`` and spike rates,
       a few hundred floats per row) and computes the loss of the whole
       batch, exactly the one-device formula (class weights, padding masks
       and the non-linear spike-rate term included);
    3. pulls its own rows of the loss's output gradient back through step 1;
    4. sums the parameter gradients over devices, once per step.

    Outputs that depend on the parameters alone (the KAN regularisers) are
    the same on every device; their output gradient is split evenly so the
    sum counts it once.
    """
    devices = mesh.devices.size

    def per_device(params: Params, batch: Batch):
        rows = batch["labels"].shape[0]
        output, pullback = jax.vjp(
            lambda p: apply_hybrid(p, spec, batch["ids"], batch["tags"],
                                   batch["hist"]), params)
        gather = functools.partial(jax.lax.all_gather, axis_name=DATA_AXIS,
                                   tiled=True)
        whole = jax.tree.map(lambda leaf: gather(leaf) if leaf.ndim else leaf,
                             output)
        (loss, terms), output_grad = jax.value_and_grad(
            lambda out: hybrid_loss(out, gather(batch["labels"]),
                                    gather(batch["mask"]), weights),
            has_aux=True)(whole)
        first = jax.lax.axis_index(DATA_AXIS) * rows
        own = jax.tree.map(
            lambda leaf: (jax.lax.dynamic_slice_in_dim(leaf, first, rows)
                          if leaf.ndim else leaf / devices), output_grad)
        (grads,) = pullback(own)
        return (loss, terms), jax.lax.psum(grads, DATA_AXIS)

    # check_vma=False: the collectives are written out above, none inside
    # autodiff, and the model's scans need no varying-axis annotations.
    return jax.shard_map(per_device, mesh=mesh,
                         in_specs=(PartitionSpec(), PartitionSpec(DATA_AXIS)),
                         out_specs=PartitionSpec(), check_vma=False)


def make_run_steps(train_step: TrainStep):
    """Jits ``train_step`` scanned over a stack of batches.

    Returns:
        ``run_steps(state, stack) -> (state, metrics)`` where ``stack`` holds
        ``[steps, batch, ...]`` arrays and every metric is ``[steps]``. The
        input state's buffers are donated.
    """

    def run_steps(state: TrainState, stack: Batch):
        return jax.lax.scan(train_step, state, stack)

    return jax.jit(run_steps, donate_argnums=0)


def make_logits_fn(spec: HybridSpec):
    """Jitted ``logits(params, ids, tags, hist) -> float32 [batch, 2]``."""

    def logits(params: Params, ids: jax.Array, tags: jax.Array,
               hist: jax.Array) -> jax.Array:
        return apply_hybrid(params, spec, ids, tags, hist).logits

    return jax.jit(logits)


def anomaly_scores(logits: np.ndarray) -> np.ndarray:
    """Window scores from logits: ``logit[attack] - logit[normal]``.

    This is the log-odds of the attack class, ``log p(attack) - log
    p(normal)``; 0 is the argmax boundary and ``sigmoid(score)`` the attack
    probability.
    """
    logits = np.asarray(logits, dtype=np.float32)
    return logits[:, 1] - logits[:, 0]
