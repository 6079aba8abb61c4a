"""The model benchmark runs end to end and writes the documented fields."""

from __future__ import annotations

import json

from sentinel_jax.cli import load_experiment


def test_model_benchmark_writes_per_step_rows(repo_root, tmp_path):
    benchmark = load_experiment("benchmark")
    status = benchmark.main([
        "--config", str(repo_root / "configs" / "tiny.yaml"), "--out", str(tmp_path),
        "--batches", "1,4", "--repeats", "2", "--steps-per-call", "8", "--quiet"])
    assert status == 0
    report = json.loads((tmp_path / "benchmark.json").read_text())
    assert report["peak_gflops"] > 0
    rows = {(r["encoding"], r["phase"], r["batch"]): r for r in report["results"]}
    assert set(rows) == {(encoding, phase, batch) for encoding in ("event", "rate")
                         for phase in ("forward", "train") for batch in (1, 4)}
    for (_, phase, batch), row in rows.items():
        assert row["steps_per_call"] == (8 if phase == "train" else 1)
        assert row["samples_per_s"] == batch / (row["p50_ms"] / 1e3)
        assert row["p99_ms"] >= row["p50_ms"] > 0
        assert 0 < row["peak_fraction"] < 1
        ratio = row["xla_flops_per_sample"] / row["flops_per_sample"]
        if phase == "forward":  # the hand count agrees with XLA's
            assert 0.5 < ratio < 2
        elif batch > 1:  # one step's count (XLA counts the scan over 8 steps
            # once), with the per-batch work (optimiser, tag tables) on top
            assert 1 < ratio < 6
        else:  # one window carries all of the per-batch work
            assert ratio > 1
