"""Checkpoints: exact resumption, and clear errors for bad checkpoints.

The runs use the rate encoding, which compiles faster; resumption does not
depend on the encoding (test_training covers the event encoding).
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from tiny_datasets import make_config, make_dataset

from sentinel_jax.training import (
    CheckpointError,
    TrainingInterruptedError,
    load_run,
    train,
)

EPOCHS = 4
RUN = (f"training.epochs={EPOCHS}", "model.encoding=rate")
# Both runs scan the same number of steps per call: one compilation.
STEPS_PER_CALL = 2


def _comparable(history):
    return [{k: v for k, v in entry.items() if k != "seconds"} for entry in history]


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(seed=1)


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory):
    return train(make_config(*RUN), dataset,
                 tmp_path_factory.mktemp("full"), steps_per_call=STEPS_PER_CALL)


def test_resume_after_interruption_equals_uninterrupted_run(dataset, uninterrupted,
                                                            tmp_path):
    config = make_config(*RUN)
    steps_per_epoch = uninterrupted.history[0]["step"]
    # Stop in the middle of the third epoch, as a kill would.
    with pytest.raises(TrainingInterruptedError):
        train(config, dataset, tmp_path,
              stop_after_steps=2 * steps_per_epoch + STEPS_PER_CALL,
              steps_per_call=STEPS_PER_CALL)
    partial = [json.loads(line) for line in
               (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in partial] == [1, 2]

    resumed = train(config, dataset, tmp_path, resume=True,
                    steps_per_call=STEPS_PER_CALL)
    assert _comparable(resumed.history) == _comparable(uninterrupted.history)
    assert resumed.threshold == uninterrupted.threshold
    for a, b in zip(jax.tree.leaves(resumed.params),
                    jax.tree.leaves(uninterrupted.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == EPOCHS


def test_resume_of_a_finished_run_changes_nothing(dataset, uninterrupted):
    again = train(make_config(*RUN), dataset,
                  uninterrupted.run_dir, resume=True)
    assert _comparable(again.history) == _comparable(uninterrupted.history)


def test_resume_with_another_config_is_an_error(dataset, uninterrupted):
    config = make_config(*RUN, "training.learning_rate=0.1")
    with pytest.raises(CheckpointError, match="training.learning_rate"):
        train(config, dataset, uninterrupted.run_dir, resume=True)


def _copy_run(source, target):
    import shutil

    shutil.copytree(source, target)
    return target


def test_corrupt_checkpoint_is_a_clear_error(dataset, uninterrupted, tmp_path):
    run_dir = _copy_run(uninterrupted.run_dir, tmp_path / "run")
    folder = run_dir / "checkpoints"
    pointer = json.loads((folder / "latest.json").read_text())
    data_files = sorted(p for p in (folder / pointer["folder"]).rglob("*")
                        if p.is_file() and p.stat().st_size > 64
                        and p.parent.name == "d")
    assert data_files
    for path in data_files:
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt"):
        train(make_config(*RUN), dataset, run_dir,
              resume=True)


def test_missing_or_garbled_pointer_is_a_clear_error(dataset, uninterrupted,
                                                     tmp_path):
    run_dir = _copy_run(uninterrupted.run_dir, tmp_path / "run")
    (run_dir / "checkpoints" / "latest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="latest.json"):
        train(make_config(*RUN), dataset, run_dir,
              resume=True)
    (run_dir / "checkpoints" / "latest.json").unlink()
    with pytest.raises(CheckpointError, match="no complete latest checkpoint"):
        train(make_config(*RUN), dataset, run_dir,
              resume=True)


def test_load_run_of_a_missing_or_unfinished_run_is_a_clear_error(
        uninterrupted, tmp_path):
    with pytest.raises(CheckpointError, match="train.py"):
        load_run(tmp_path)
    run_dir = _copy_run(uninterrupted.run_dir, tmp_path / "run")
    (run_dir / "checkpoints" / "threshold.json").unlink()
    with pytest.raises(CheckpointError, match="did training finish"):
        load_run(run_dir)


def test_a_run_killed_with_sigkill_resumes_to_the_same_end(dataset, tmp_path):
    # A real kill, at whatever moment it lands (mid-epoch or while the
    # background writer is saving), then the same command with --resume.
    # Saves lag at most one epoch, so once epoch 4 is logged the latest
    # checkpoint holds epoch 3 or later.
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from sentinel_jax.config import save_config
    from sentinel_jax.data.store import save_dataset

    root = Path(__file__).resolve().parent.parent
    epochs = 16
    config = save_config(make_config(*RUN, f"training.epochs={epochs}"),
                         tmp_path / "config.yaml")
    data_dir = save_dataset(dataset, tmp_path / "data")

    def command(out):
        return [sys.executable, str(root / "experiments" / "train.py"), "--config",
                str(config), "--data", str(data_dir), "--out", str(out), "--quiet"]

    def history(out):
        return _comparable([json.loads(line) for line in
                            (out / "metrics.jsonl").read_text().splitlines()])

    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(command(full), check=True, env=env, timeout=300)

    process = subprocess.Popen(command(killed), env=env)
    metrics = killed / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None and not (
            metrics.exists() and len(metrics.read_text().splitlines()) >= 4):
        time.sleep(0.005)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert not (killed / "checkpoints" / "threshold.json").exists()
    assert len(history(killed)) < epochs
    saved = json.loads((killed / "checkpoints" / "latest.json").read_text())
    assert saved["meta"]["epoch"] >= 3

    resumed = subprocess.run(command(killed)[:-1] + ["--resume"], env=env,
                             timeout=300, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"from epoch {saved['meta']['epoch']} " in resumed.stderr
    assert history(killed) == history(full)
    assert (json.loads((killed / "checkpoints" / "threshold.json").read_text())
            == json.loads((full / "checkpoints" / "threshold.json").read_text()))
