"""A tiny trained run for the inference and live-monitor tests.

Trains the small hybrid of :mod:`tests.tiny_datasets` for one epoch on its
hand-made traces (windows of 16 events, stride 8), so a session fixture can
build a real run folder in seconds.
"""

from __future__ import annotations

from pathlib import Path

from tiny_datasets import make_config, make_dataset

from sentinel_jax.training import train


def make_tiny_run(run_dir: Path, *overrides: str) -> Path:
    """Trains the tiny model into ``run_dir`` and returns it."""
    config = make_config("training.epochs=1", *overrides)
    train(config, make_dataset(seed=0), run_dir)
    return run_dir
