"""Data parallelism: eight (simulated) CPU devices train like one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sentinel_jax.training.sharding import (
    make_mesh,
    padded_batch_size,
    shard_batch,
)

TESTS = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent("""
    import json, sys, tempfile
    import jax
    sys.path.insert(0, sys.argv[1])
    from tiny_datasets import make_config, make_dataset
    from sentinel_jax.training import train

    assert jax.device_count() == 8, jax.devices()
    dataset = make_dataset(seed=2)
    config = make_config("training.epochs=2", "model.encoding=rate")
    results = {}
    for name, devices in (("one", jax.devices()[:1]), ("eight", jax.devices())):
        result = train(config, dataset, tempfile.mkdtemp(), devices=devices)
        leaves = jax.tree.leaves(result.params)
        results[name] = {
            "history": result.history,
            "params": [float(abs(leaf).sum()) for leaf in leaves],
        }
    print("RESULT" + json.dumps(results))
""")


def test_padded_batch_size_is_a_multiple_of_the_device_count():
    assert padded_batch_size(256, 8) == 256
    assert padded_batch_size(250, 8) == 256
    assert padded_batch_size(5, 1) == 5


def test_shard_batch_rejects_a_batch_the_devices_cannot_split():
    mesh = make_mesh()
    arrays = {"ids": np.zeros((3, 2 * mesh.devices.size + 1), np.int32)}
    if mesh.devices.size == 1:
        placed = shard_batch(arrays, mesh, batch_axis=1)
        np.testing.assert_array_equal(placed["ids"], arrays["ids"])
    else:
        with pytest.raises(ValueError, match="multiple"):
            shard_batch(arrays, mesh, batch_axis=1)


def test_eight_devices_give_the_same_losses_as_one():
    environment = dict(os.environ,
                       XLA_FLAGS="--xla_force_host_platform_device_count=8",
                       JAX_PLATFORMS="cpu")
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(TESTS)], env=environment,
        capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = next(line for line in completed.stdout.splitlines()
                if line.startswith("RESULT"))
    results = json.loads(line[len("RESULT"):])
    one, eight = results["one"], results["eight"]
    for a, b in zip(one["history"], eight["history"], strict=True):
        for key in ("train_loss", "train_cross_entropy", "val_loss", "val_roc_auc"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    np.testing.assert_allclose(one["params"], eight["params"], rtol=1e-4)


GRAD_SCRIPT = textwrap.dedent("""
    import json
    import jax, jax.numpy as jnp, numpy as np
    from sentinel_jax.models import HybridSpec, apply_hybrid, init_hybrid
    from sentinel_jax.training.losses import LossWeights, hybrid_loss
    from sentinel_jax.training.sharding import make_mesh, replicate, shard_batch
    from sentinel_jax.training.steps import data_parallel_grad

    assert jax.device_count() == 4, jax.devices()
    spec = HybridSpec(time=16, snn_hidden=(24, 12), kan_hidden=(8,),
                      fusion_hidden=(8,))
    # Every loss term on, with unequal class weights and two padding rows:
    # the gathered loss must be the whole batch's, not a mean of devices'.
    weights = LossWeights(class_weights=(1.0, 3.0), spike_rate_weight=0.5,
                          kan_l1_weight=0.01, kan_entropy_weight=0.01)
    rng = np.random.default_rng(0)
    batch = {"ids": rng.integers(1, 96, (12, 16), dtype=np.int32),
             "tags": rng.integers(0, 1 << 8, (12, 16)).astype(np.uint32),
             "hist": rng.dirichlet(np.ones(128), 12).astype(np.float32),
             "labels": rng.integers(0, 2, 12).astype(np.int32),
             "mask": np.r_[np.ones(10), np.zeros(2)].astype(np.float32)}
    params = init_hybrid(jax.random.key(1), spec)

    def loss_fn(params, batch):
        output = apply_hybrid(params, spec, batch["ids"], batch["tags"],
                              batch["hist"])
        return hybrid_loss(output, batch["labels"], batch["mask"], weights)

    (loss, _), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(
        params, batch)
    mesh = make_mesh()
    (split_loss, _), split_grads = jax.jit(data_parallel_grad(spec, weights, mesh))(
        replicate(params, mesh), shard_batch(batch, mesh))
    differences = [float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(a)) + 1e-12))
                   for a, b in zip(jax.tree.leaves(grads),
                                   jax.tree.leaves(split_grads), strict=True)]
    print("RESULT" + json.dumps({"loss": float(loss), "split_loss": float(split_loss),
                                 "worst": max(differences)}))
""")


def test_data_parallel_gradient_equals_the_whole_batch_gradient():
    environment = dict(os.environ,
                       XLA_FLAGS="--xla_force_host_platform_device_count=4",
                       JAX_PLATFORMS="cpu")
    completed = subprocess.run([sys.executable, "-c", GRAD_SCRIPT], env=environment,
                               capture_output=True, text=True, timeout=600,
                               check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = next(line for line in completed.stdout.splitlines()
                if line.startswith("RESULT"))
    result = json.loads(line[len("RESULT"):])
    assert result["split_loss"] == pytest.approx(result["loss"], rel=1e-5)
    assert result["worst"] < 1e-4


DEVICES_SCRIPT = textwrap.dedent("""
    import sys
    from sentinel_jax.training.sharding import use_cpu_devices
    assert use_cpu_devices(int(sys.argv[1])) == int(sys.argv[2])
    import jax
    assert jax.device_count() == int(sys.argv[2]), jax.devices()
    assert use_cpu_devices(int(sys.argv[2])) == int(sys.argv[2])  # agrees: fine
    try:
        use_cpu_devices(int(sys.argv[2]) + 1)
    except ValueError as error:
        print("REFUSED", error)
""")


@pytest.mark.parametrize(("asked", "expected"),
                         [(3, 3), (0, len(os.sched_getaffinity(0)))])
def test_use_cpu_devices_sets_the_count_before_jax_starts(asked, expected):
    environment = {key: value for key, value in os.environ.items()
                   if key != "XLA_FLAGS"}
    completed = subprocess.run(
        [sys.executable, "-c", DEVICES_SCRIPT, str(asked), str(expected)],
        env=dict(environment, JAX_PLATFORMS="cpu"), capture_output=True,
        text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "REFUSED" in completed.stdout
    assert "before the first JAX operation" in completed.stdout


def test_cpu_devices_flag_rejects_a_negative_count():
    completed = subprocess.run(
        [sys.executable, str(TESTS.parent / "experiments" / "benchmark.py"),
         "--out", "unused", "--cpu-devices", "-1"],
        capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 2
    assert "--cpu-devices -1" in completed.stderr
    assert ">= 0" in completed.stderr
