"""Data parallelism with ``jax.sharding``: one code path for 1 or N devices.

Every device holds a full copy of the parameters and optimiser state
(replicated); each batch is split along its batch axis over a 1-D device mesh
whose only axis is called ``data``. The jitted train step is written for the
whole batch; XLA partitions it and inserts the gradient all-reduce. One device
is the default and many devices need no code change: a batch only has to be a
multiple of the device count, which :func:`padded_batch_size` guarantees.

Several hosts (multi-host training, e.g. a TPU pod or several GPU machines):

1. call ``jax.distributed.initialize()`` (coordinator address, process count
   and process id come from flags or the cluster environment) at the start
   of the program, before any other JAX call;
2. every process runs the same script on the same dataset folder; the mesh of
   :func:`make_mesh` then spans ``jax.devices()``, the devices of all hosts;
3. the data order is a pure function of ``(seed, epoch)``, so every process
   computes the same global batch, and :func:`shard_batch` hands each process
   only the rows its local devices hold
   (``jax.make_array_from_process_local_data``);
4. only process 0 should write metrics and reports; orbax checkpoints are
   written collectively by all processes.

The multi-host path follows the JAX documentation but is exercised here only
with one process and several (simulated) CPU devices.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def use_cpu_devices(count: int) -> int:
    """Splits the host CPU into ``count`` XLA devices (0: one per core).

    JAX gives a CPU one device by default; as several devices, the training
    step (:func:`~sentinel_jax.training.steps.data_parallel_grad`) and
    batched scoring split each batch over the cores, each core running its
    own share of the scans over time. Measured on the 2-core machine
    (``experiments/benchmark.py``, two runs each): the event-encoded forward
    at batch 256 ran 2x faster (42-44k against 21k windows/s) and 1.2-1.4x at
    batch 1024; training in the real loop was no faster in event encoding and
    slower in rate encoding (whose steps are too short to pay for the hand-
    over). So it stays opt-in; results equal one device's up to float
    rounding.

    Must run before the first JAX operation of the process.

    Args:
        count: devices wanted, ``>= 0``; 0 means ``len(sched_getaffinity)``.

    Returns:
        The device count set.

    Raises:
        ValueError: ``count`` is negative, or JAX already started with a
            different count (set it at the start of the program).
    """
    if count < 0:
        raise ValueError(f"CPU device count must be >= 0, got {count}")
    count = count or len(os.sched_getaffinity(0))
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # the backend already runs; fine if it agrees
        running = len(jax.devices("cpu"))
        if running != count:
            raise ValueError(
                f"JAX already runs with {running} CPU device(s); {count} must be "
                f"set before the first JAX operation of the process") from None
    return count


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``data`` over ``devices`` (default: all devices)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding of a value copied to every device (parameters, state)."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
    """Sharding that splits axis ``batch_axis`` over the ``data`` mesh axis."""
    return NamedSharding(mesh, PartitionSpec(*([None] * batch_axis), DATA_AXIS))


def padded_batch_size(batch_size: int, device_count: int) -> int:
    """``batch_size`` rounded up to a multiple of ``device_count``."""
    return -(-batch_size // device_count) * device_count


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places every leaf of ``tree`` on every device of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))


def shard_batch(arrays: Mapping[str, np.ndarray], mesh: Mesh,
                batch_axis: int = 0) -> dict[str, jax.Array]:
    """Places host arrays on the mesh, split along ``batch_axis``.

    Args:
        arrays: name -> host array whose ``batch_axis`` is a multiple of the
            mesh size; every process passes the same global arrays.
        mesh: the ``data`` mesh.
        batch_axis: the axis to split (1 for a stack ``[steps, batch, ...]``).

    Returns:
        name -> global ``jax.Array`` sharded over the mesh.
    """
    sharding = batch_sharding(mesh, batch_axis)
    size = mesh.devices.size
    for name, array in arrays.items():
        if array.shape[batch_axis] % size:
            raise ValueError(
                f"batch array {name!r} has {array.shape[batch_axis]} rows on axis "
                f"{batch_axis}, expected a multiple of the {size} devices")
    if jax.process_count() == 1:
        return {name: jax.device_put(array, sharding)
                for name, array in arrays.items()}
    # Several hosts: each process contributes the rows of its own devices.
    rank, count = jax.process_index(), jax.process_count()
    result = {}
    for name, array in arrays.items():
        rows = array.shape[batch_axis] // count
        local = np.take(array, np.arange(rank * rows, (rank + 1) * rows),
                        axis=batch_axis)
        result[name] = jax.make_array_from_process_local_data(
            sharding, local, array.shape)
    return result
