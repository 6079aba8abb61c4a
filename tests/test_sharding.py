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
