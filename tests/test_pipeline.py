"""The whole job on the tiny preset, and the menu driven through a pipe."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sentinel_jax.data.store import load_dataset
from sentinel_jax.training.checkpoint import load_run


@pytest.mark.slow
def test_pipeline_runs_end_to_end_on_the_tiny_preset(repo_root, tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "experiments/pipeline.py", "--config", "configs/tiny.yaml",
         "--out", str(out), "--quiet"],
        cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "JAX" in result.stdout and "backend" in result.stdout  # banner
    assert f"report: {out / 'report.md'}" in result.stdout

    # every stage left its files in the one run folder
    for name in ("config.yaml", "data/dataset.npz", "data/metadata.json",
                 "metrics.jsonl", "metrics.json", "pipeline.json", "report.md",
                 "roc_pr.png", "training_curves.png", "symbolic/equation.txt",
                 "symbolic/fidelity.json", "rust/verify.json", "rust/Cargo.toml"):
        assert (out / name).is_file(), name
    dataset = load_dataset(out / "data")
    assert len(dataset) == 600
    run = load_run(out)
    assert run.vocabulary == dataset.vocabulary

    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc",
                "tpr_at_fpr_1pct", "tpr_at_fpr_0_1pct", "per_family"):
        assert key in metrics["test"], key
    assert {"SNN branch alone", "KAN branch alone"} <= set(metrics["models"])
    fidelity = json.loads((out / "symbolic" / "fidelity.json").read_text())
    for key in ("r2", "decision_agreement", "roc_auc", "network_roc_auc", "nodes"):
        assert key in fidelity, key
    verify = json.loads((out / "rust" / "verify.json").read_text())
    if verify.get("built"):
        assert verify["max_abs_diff"] <= 1e-9
        assert 0 < verify["binary_bytes"] < 1_000_000
    summary = json.loads((out / "pipeline.json").read_text())
    assert set(summary["timings_s"]) == {"generate_data", "train", "evaluate",
                                         "distill"}
    report = (out / "report.md").read_text()
    assert "## Headline" in report and "## Distilled equation" in report
    assert "roc_pr.png" in report
    # nothing was written beside the run folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def run_menu(repo_root, keys: str):
    return subprocess.run([sys.executable, "-m", "sentinel_jax"], input=keys,
                          cwd=repo_root, capture_output=True, text=True, timeout=300)


def test_menu_driven_through_a_pipe_runs_an_option_and_exits(repo_root, tmp_path):
    out = tmp_path / "menu-data"
    keys = "\n".join(["99", "1", "synthetic", "configs/tiny.yaml", str(out), "0"])
    result = run_menu(repo_root, keys + "\n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "MAIN MENU - SELECT + ENTER" in result.stdout
    assert "'99' is not an option" in result.stdout
    assert "finished with status 0" in result.stdout
    assert (out / "dataset.npz").is_file()
    assert result.stdout.rstrip().endswith("bye")


def test_menu_edits_and_saves_a_preset_and_survives_end_of_input(repo_root, tmp_path):
    target = tmp_path / "edited.yaml"
    keys = "\n".join(["11", "configs/tiny.yaml", "training.epochs=7",
                      "training.epochs=oops", "", str(target)])
    result = run_menu(repo_root, keys + "\n")  # input ends without choosing 0
    assert result.returncode == 0, result.stderr[-2000:]
    assert "training.epochs: expected an integer" in result.stdout
    assert "epochs: 7" in target.read_text()
