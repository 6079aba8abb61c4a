"""Real strace captures: build a few with scripts/build_captures.py, score them
with experiments/evaluate_captures.py on a tiny trained run."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))

import evaluate_captures  # noqa: E402
from evaluate_captures import Capture, CaptureScore, capture_metrics  # noqa: E402

from sentinel_jax.cli import run_main  # noqa: E402

BENIGN = ("account_info", "awk_sed", "checksums")
ATTACKS = ("inject_ptrace_c", "escalate_sudo_python", "lateral_revshell_c")

pytestmark = pytest.mark.skipif(
    shutil.which("strace") is None or shutil.which("cc") is None,
    reason="needs strace and cc")


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> Path:
    """Three benign programs and three attack demos, recorded for real."""
    out = tmp_path_factory.mktemp("captures")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_captures.py"), "--out",
         str(out), "--repeats", "1", "--quiet", "--only", ",".join(BENIGN + ATTACKS)],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_build_writes_labelled_real_logs(captures: Path):
    rows = _rows(captures / "labels.csv")
    assert sorted(row["program"] for row in rows) == sorted(BENIGN + ATTACKS)
    for row in rows:
        log = captures / row["file"]
        assert log.stat().st_size > 0
        assert row["label"] == ("attack" if row["program"] in ATTACKS else "benign")
        assert row["command"]
    families = {row["program"]: row["family"] for row in rows}
    assert families["inject_ptrace_c"] == "process_injection"
    assert families["account_info"] == "normal"
    # The injector's log holds the ptrace attach the demo made.
    assert "PTRACE_ATTACH" in (captures / "attack/inject_ptrace_c.strace").read_text()


def test_evaluate_captures_end_to_end(captures: Path, tiny_run: Path,
                                      tmp_path: Path):
    out = tmp_path / "eval"
    status = run_main(evaluate_captures.main, [
        "--captures", str(captures), "--run", str(tiny_run), "--out", str(out),
        "--quiet"])
    assert status == 0
    metrics = json.loads((out / "metrics.json").read_text())
    scores = _rows(out / "scores.csv")
    assert len(scores) == 6 and metrics["captures"] == 6
    assert metrics["benign"] == 3 and metrics["attack"] == 3
    assert set(metrics["per_family"]) == {"process_injection",
                                          "privilege_escalation",
                                          "lateral_movement"}
    assert 0.0 <= metrics["roc_auc"] <= 1.0
    threshold = metrics["threshold"]
    benign_scores = [float(r["score"]) for r in scores if r["label"] == "benign"]
    assert metrics["false_alarms"] == sum(s >= threshold for s in benign_scores)
    assert metrics["false_alarms_per_50_benign"] == pytest.approx(
        50 * metrics["false_alarms"] / 3)
    for row in scores:
        assert int(row["alarm"]) == (float(row["score"]) >= threshold)
        assert int(row["processes"]) >= 1 and int(row["events"]) > 0
    assert (out / "report.md").read_text().startswith("# Real strace captures")
    assert (out / "roc.png").stat().st_size > 0


def test_bad_labels_exit_2(tmp_path: Path, tiny_run: Path, capsys):
    (tmp_path / "labels.csv").write_text("file,label\nx.strace,benign\n")
    status = run_main(evaluate_captures.main, [
        "--captures", str(tmp_path), "--run", str(tiny_run), "--out",
        str(tmp_path / "o")])
    assert status == 2
    assert "missing columns ['family']" in capsys.readouterr().err


def test_capture_metrics_counts_alarms_per_family():
    def scored(label: int, family: str, score: float) -> CaptureScore:
        capture = Capture(f"{family}-{score}", Path("x"), label, family,
                          "c" if label else "profile", f"{family}-{score}")
        return CaptureScore(capture, score, 1, 10, "p", "")

    items = [scored(0, "normal", s) for s in (-2.0, -1.0, 0.5, float("-inf"))]
    items += [scored(1, "rootkit", 3.0), scored(1, "rootkit", 0.1),
              scored(1, "keylogging", 2.0)]
    metrics = capture_metrics(items, threshold=0.4)
    assert metrics["false_alarms"] == 1
    assert metrics["false_alarm_programs"] == ["normal-0.5"]
    assert metrics["false_alarms_per_50_benign"] == pytest.approx(12.5)
    assert metrics["per_family"]["rootkit"]["detected"] == 1
    assert metrics["per_family"]["rootkit"]["missed"] == ["rootkit-0.1"]
    assert metrics["per_family"]["keylogging"]["roc_auc_vs_benign"] == 1.0
    # Attack scores 3.0, 0.1, 2.0 against benign -2, -1, 0.5, -inf: one pair
    # (0.1 < 0.5) of twelve is out of order.
    assert metrics["roc_auc"] == pytest.approx(11 / 12)
    assert np.isfinite(metrics["roc_auc"])


def test_trace_threshold_is_chosen_on_the_runs_validation_traces(
        captures: Path, tiny_run: Path, tmp_path: Path):
    from tiny_datasets import make_dataset

    from sentinel_jax.data.store import save_dataset
    from sentinel_jax.inference import InferenceEngine

    dataset = make_dataset(seed=0)
    save_dataset(dataset, tmp_path / "data")
    engine = InferenceEngine(tiny_run)
    calibration = evaluate_captures.trace_threshold(engine, tmp_path / "data")
    # Recomputed by hand: each validation trace's highest window score.
    val = dataset.subset("val")
    scores = engine.score_windows(val.ids, val.tags, val.hist)
    best: dict[int, float] = {}
    label: dict[int, int] = {}
    for row, trace in enumerate(val.trace_index.tolist()):
        best[trace] = max(best.get(trace, -np.inf), float(scores[row]))
        label[trace] = max(label.get(trace, 0), int(val.labels[row]))
    benign = [best[t] for t in best if label[t] == 0]
    assert calibration["benign_traces"] == len(benign)
    alarms = sum(s >= calibration["threshold"] for s in benign)
    assert alarms <= calibration["false_alarm_rate"] * len(benign)
    # The lowest such threshold: one step lower, one more benign trace alarms.
    assert calibration["threshold"] <= max(benign) + 1e-6

    out = tmp_path / "eval"
    status = run_main(evaluate_captures.main, [
        "--captures", str(captures), "--run", str(tiny_run), "--data",
        str(tmp_path / "data"), "--out", str(out), "--quiet"])
    assert status == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["threshold_rule"] == "trace"
    assert metrics["threshold"] == pytest.approx(calibration["threshold"])
    assert metrics["window_threshold"]["threshold"] == pytest.approx(
        engine.threshold)
    assert set(metrics["benign_origin"]) == {"unseen"}


def test_data_of_another_vocabulary_exits_2(captures: Path, tiny_run: Path,
                                            tmp_path: Path, capsys):
    from sentinel_jax.data.store import save_dataset
    from sentinel_jax.data.synthetic import SyntheticDatasetGenerator

    other = SyntheticDatasetGenerator({"num_samples": 300, "name_channels": 40,
                                       "seed": 3}).generate_dataset().windows
    save_dataset(other, tmp_path / "other")
    status = run_main(evaluate_captures.main, [
        "--captures", str(captures), "--run", str(tiny_run), "--data",
        str(tmp_path / "other"), "--out", str(tmp_path / "eval"), "--quiet"])
    assert status == 2
    assert "name channels differ" in capsys.readouterr().err
