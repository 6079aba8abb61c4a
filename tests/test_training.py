"""Training: losses by hand, data order, and a tiny run that learns."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_datasets import make_config, make_dataset

from sentinel_jax.evaluation.metrics import roc_auc
from sentinel_jax.models.hybrid import HybridSpec, init_hybrid
from sentinel_jax.training import CheckpointError, load_run, predict_scores, train
from sentinel_jax.training.losses import (
    distillation_loss,
    spike_rate_penalty,
    weighted_cross_entropy,
)
from sentinel_jax.training.state import make_schedule
from sentinel_jax.training.steps import epoch_order, gather_batches


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(seed=0)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    return train(make_config(), dataset, run_dir)


def test_weighted_cross_entropy_matches_hand_computation():
    logits = jnp.array([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    labels = jnp.array([0, 1, 1])
    mask = jnp.array([1.0, 1.0, 0.0])
    # Row 0: log 2 with weight 1; row 1: log(1 + e^2) with weight 3; row 2 pads.
    expected = (np.log(2.0) + 3 * np.log1p(np.exp(2.0))) / 4
    got = weighted_cross_entropy(logits, labels, mask, (1.0, 3.0))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_distillation_is_zero_for_equal_logits_and_positive_otherwise():
    logits = jnp.array([[1.0, -1.0], [0.5, 2.0]])
    mask = jnp.ones(2)
    assert float(distillation_loss(logits, logits, 2.0, mask)) == pytest.approx(0.0)
    student = jnp.array([[-1.0, 1.0], [0.5, 2.0]])
    teacher_probs = jax.nn.softmax(logits[0] / 2.0)
    student_log_probs = jax.nn.log_softmax(student[0] / 2.0)
    kl = float(jnp.sum(teacher_probs * (jnp.log(teacher_probs) - student_log_probs)))
    got = float(distillation_loss(student, logits, 2.0, mask))
    assert got == pytest.approx(4.0 * kl / 2, rel=1e-5)
    # The teacher receives no gradient.
    grad = jax.grad(lambda t: distillation_loss(student, t, 2.0, mask))(logits)
    np.testing.assert_array_equal(grad, 0.0)


def test_spike_rate_penalty_ignores_padding_rows():
    rates = (jnp.array([[0.2, 0.2], [0.9, 0.9]]),)
    penalty = spike_rate_penalty(rates, 0.1, jnp.array([1.0, 0.0]))
    assert float(penalty) == pytest.approx(0.01, rel=1e-5)


def test_schedule_warms_up_then_decays():
    schedule = make_schedule(1e-2, warmup_steps=10, total_steps=100)
    assert float(schedule(0)) == 0.0
    assert float(schedule(10)) == pytest.approx(1e-2)
    assert float(schedule(100)) == pytest.approx(1e-4)


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    first = epoch_order(3, 5, windows=70, batch_size=32)
    np.testing.assert_array_equal(first, epoch_order(3, 5, 70, 32))
    assert not np.array_equal(first, epoch_order(3, 6, 70, 32))
    assert first.shape == (3, 32)
    # Every window exactly once; the rest of the last batch is padding.
    assert sorted(first[first >= 0].tolist()) == list(range(70))
    arrays = {"ids": np.arange(70)[:, None], "tags": np.zeros((70, 1)),
              "hist": np.zeros((70, 1)), "labels": np.arange(70)}
    stack = gather_batches(arrays, first)
    assert stack["mask"].sum() == 70
    np.testing.assert_array_equal(stack["labels"][stack["mask"] == 1],
                                  first[first >= 0])


def test_training_drives_loss_down_and_auc_up(dataset, trained):
    val = dataset.subset("val")
    spec = HybridSpec.from_config(make_config().model, make_config().data)
    untrained = init_hybrid(jax.random.PRNGKey(0), spec)
    before = roc_auc(val.labels, predict_scores(untrained, spec, val.ids, val.tags,
                                                val.hist))
    after = roc_auc(val.labels, predict_scores(trained.params, spec, val.ids,
                                               val.tags, val.hist))
    losses = [entry["train_loss"] for entry in trained.history]
    assert losses[-1] < 0.7 * losses[0]
    assert trained.history[-1]["val_loss"] < trained.history[0]["val_loss"]
    assert after >= 0.95
    assert after > before


def test_run_folder_holds_metrics_config_and_a_loadable_model(dataset, trained):
    run_dir = trained.run_dir
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4, 5, 6]
    for name in ("config.yaml", "vocabulary.json", "spec.json", "threshold.json"):
        assert (run_dir / "checkpoints" / name).is_file()
    loaded = load_run(run_dir)
    assert loaded.threshold == trained.threshold
    assert loaded.vocabulary == dataset.vocabulary
    test = dataset.subset("test")
    np.testing.assert_allclose(
        loaded.score(test.ids, test.tags, test.hist),
        predict_scores(trained.params, trained.spec, test.ids, test.tags, test.hist),
        rtol=1e-6)


def test_threshold_is_chosen_on_validation_not_test(dataset, trained):
    """Changing the test split's labels must not move the threshold."""
    record = json.loads(
        (trained.run_dir / "checkpoints" / "threshold.json").read_text())
    assert record["chosen_on"] == "val"
    from sentinel_jax.evaluation.metrics import choose_threshold

    val = dataset.subset("val")
    scores = predict_scores(trained.params, trained.spec, val.ids, val.tags, val.hist)
    assert record["threshold"] == choose_threshold(val.labels, scores, "best_f1")


def test_existing_checkpoint_without_resume_is_an_error(dataset, trained):
    with pytest.raises(CheckpointError, match="--resume"):
        train(make_config(), dataset, trained.run_dir)


def test_evaluate_script_writes_metrics_plots_and_report(dataset, trained,
                                                         tmp_path):
    import sys
    from pathlib import Path

    from sentinel_jax.data.store import save_dataset

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
    import evaluate

    data_dir = save_dataset(dataset, tmp_path / "data")
    out = tmp_path / "eval"
    code = evaluate.main(["--run", str(trained.run_dir), "--data", str(data_dir),
                          "--out", str(out), "--ablation", "skip", "--quiet"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc",
                "tpr_at_fpr_1pct", "tpr_at_fpr_0_1pct", "per_family"):
        assert key in metrics["test"]
    assert set(metrics["test"]["per_family"]) == {"privilege_escalation",
                                                  "reverse_shell"}
    assert len(metrics["models"]) == 3  # hybrid, STIDE, logistic regression
    assert metrics["threshold"] == trained.threshold
    for name in ("training_curves.png", "confusion_matrix.png", "roc_pr.png",
                 "family_recall.png", "score_histogram.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    report = (out / "report.md").read_text()
    assert "STIDE" in report and "roc_pr.png" in report


def test_train_script_rejects_a_dataset_that_does_not_fit_the_config(
        dataset, tmp_path, capsys):
    import sys
    from pathlib import Path

    from sentinel_jax.cli import run_main
    from sentinel_jax.data.store import save_dataset

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
    import train as train_script

    data_dir = save_dataset(dataset, tmp_path / "data")
    code = run_main(train_script.main, ["--data", str(data_dir), "--out",
                                        str(tmp_path / "run"), "--quiet"])
    assert code == 2
    assert "sequence_length" in capsys.readouterr().err


def test_best_epoch_ranking_breaks_auc_ties_by_validation_loss():
    from sentinel_jax.training.loop import _rank

    saturated = {"val_roc_auc": 1.0, "val_loss": 0.2}
    assert _rank(saturated, "val_roc_auc") > _rank(
        {"val_roc_auc": 1.0, "val_loss": 0.3}, "val_roc_auc")
    assert _rank(saturated, "val_roc_auc") > _rank(
        {"val_roc_auc": float("nan"), "val_loss": 0.1}, "val_roc_auc")
    assert _rank({"val_roc_auc": 0.5, "val_loss": 0.1}, "val_loss") > _rank(
        saturated, "val_loss")
