"""experiments/evaluate_adfa.py end to end on a small subset of ADFA-LD."""

from __future__ import annotations

import json

from sentinel_jax.cli import load_experiment

TINY_MODEL = [
    "data.sequence_length=32", "data.stride=32", "data.feature_dim=64",
    "data.name_channels=32", "model.snn_hidden=[16]", "model.kan_hidden=[8]",
    "model.fusion_hidden=[8]", "training.epochs=1", "training.batch_size=128",
    "training.warmup_epochs=0", "symbolic.sr_population=20",
    "symbolic.sr_generations=2", "symbolic.sr_samples=200",
    "training.next_call_epochs=1", "training.next_call_window=32",
]


def test_all_protocols_run_on_a_subset(adfa_dir, tmp_path):
    out = tmp_path / "adfa"
    argv = ["--adfa-dir", str(adfa_dir), "--out", str(out), "--quiet",
            "--max-traces", "120", "--rounds", "1", "--folds", "3",
            "--dedupe", "both", "--config", "configs/adfa.yaml",
            "--models", "hybrid,equation,stide,logistic_hist,tfidf_lr,lm,snn_surprise"]
    for override in TINY_MODEL:
        argv += ["--set", override]
    assert load_experiment("evaluate_adfa").main(argv) == 0

    metrics = json.loads((out / "metrics.json").read_text())
    protocols = metrics["protocols"]
    assert set(protocols) == {"supervised", "lofo", "anomaly"}
    for variants in protocols.values():
        assert set(variants) == {"all", "deduplicated"}
    supervised = protocols["supervised"]["all"]["models"]
    assert set(supervised) == {"hybrid", "equation", "stide", "logistic_hist",
                               "tfidf_lr", "lm", "snn_surprise"}
    # the anomaly protocol runs only models that never see an attack
    assert set(protocols["anomaly"]["all"]["models"]) == {"stide", "lm",
                                                          "snn_surprise"}
    for model in supervised.values():
        assert 0.0 <= model["roc_auc"]["mean"] <= 1.0
        for rate in ("1pct", "5pct", "10pct"):
            assert 0.0 <= model["detection"][rate]["mean"] <= 1.0
    # a strong simple model separates even this small subset
    assert supervised["tfidf_lr"]["roc_auc"]["mean"] > 0.8
    report = (out / "report.md").read_text()
    assert "## supervised, all" in report and "## anomaly, deduplicated" in report
    assert (out / "roc_supervised_all.png").stat().st_size > 0
