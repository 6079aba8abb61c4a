"""experiments/distill.py: the symbolic stage on a dataset and a scorer."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from sentinel_jax.config import SymbolicConfig
from sentinel_jax.data.store import build_dataset
from sentinel_jax.data.traces import Trace

_SPEC = importlib.util.spec_from_file_location(
    "distill", Path(__file__).parents[1] / "experiments" / "distill.py")
distill = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(distill)


@pytest.fixture(scope="module")
def dataset():
    rng = np.random.default_rng(0)
    common = ["read", "write", "openat", "close", "mmap", "fstat"]
    traces = []
    for index in range(60):
        label = index % 3 == 0
        pool = common + (["ptrace", "setuid"] if label else ["brk"])
        names = rng.choice(pool, size=int(rng.integers(40, 120)))
        traces.append(Trace.from_names(list(names), label=int(label),
                                       family="inject" if label else "normal",
                                       trace_id=f"t{index}"))
    return build_dataset(traces, name_channels=12, channels=44, time=16,
                         stride=8, val_fraction=0.2, test_fraction=0.2, seed=0)


def test_distill_writes_equation_and_fidelity(dataset, tmp_path):
    index = dataset.vocabulary.index

    def network(part):  # a smooth stand-in for the trained model's logit
        hist = part.hist.astype(np.float64)
        return 4.0 * hist[:, index["ptrace"]] - 2.0 * hist[:, index["brk"]] - 0.5

    settings = SymbolicConfig(sr_population=60, sr_generations=20, sr_samples=500)
    summary = distill.distill(dataset, network, 0.0, settings, tmp_path,
                              stride=8, build=False, progress=False)
    fidelity = json.loads((tmp_path / "symbolic" / "fidelity.json").read_text())
    assert fidelity["r2"] > 0.95 and fidelity["decision_agreement"] > 0.85
    assert set(fidelity) >= {"r2", "decision_agreement", "roc_auc",
                             "network_roc_auc", "nodes"}
    assert abs(fidelity["roc_auc"] - fidelity["network_roc_auc"]) < 0.02
    text = (tmp_path / "symbolic" / "equation.txt").read_text()
    assert "ptrace" in text
    assert (tmp_path / "rust" / "src" / "model.rs").exists()
    assert summary["verify"] == {"built": False, "reason": "--no-rust"}


def test_main_rejects_missing_run(tmp_path, capsys):
    code = distill.run_main(distill.main, ["--run", str(tmp_path / "nope"),
                                           "--data", str(tmp_path), "--quiet"])
    assert code == 2
    assert "nope" in capsys.readouterr().err
