"""Shared fixtures: paths to the real data the tests read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sentinel_jax.data.adfa import default_adfa_dir

ROOT = Path(__file__).resolve().parent.parent

# Hypothesis: the same examples on every machine, no database left behind.
try:
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, database=None, deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    pass


@pytest.fixture(scope="session")
def adfa_dir() -> Path:
    """The ADFA-LD folder (``SENTINEL_ADFA_DIR`` or ``../shared/datasets``)."""
    folder = default_adfa_dir()
    if folder is None or not folder.is_dir():
        pytest.skip("ADFA-LD not found: set SENTINEL_ADFA_DIR")
    return folder


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A tiny trained run folder (see tests/run_fixtures.py), once per session."""
    from run_fixtures import make_tiny_run

    return make_tiny_run(tmp_path_factory.mktemp("tiny_run") / "run")


@pytest.fixture(scope="session")
def tiny_engine(tiny_run):
    """An InferenceEngine on ``tiny_run``, compiled for small batches."""
    from sentinel_jax.inference import InferenceEngine

    return InferenceEngine(tiny_run, batch_sizes=(1, 8, 16))
