"""experiments/generate_data.py end to end, and its bad-input contract."""

from __future__ import annotations

import json
import subprocess
import sys

from sentinel_jax.data.store import load_dataset


def run_script(repo_root, *args):
    return subprocess.run(
        [sys.executable, str(repo_root / "experiments" / "generate_data.py"), *args],
        capture_output=True,
        text=True,
        cwd=repo_root,
        timeout=300,
    )


def test_adfa_source_writes_a_dataset(repo_root, adfa_dir, tmp_path):
    out = tmp_path / "adfa"
    result = run_script(
        repo_root,
        "--source",
        "adfa",
        "--input",
        str(adfa_dir),
        "--out",
        str(out),
        "--dedupe",
        "--quiet",
        "--set",
        "data.stride=64",
    )
    assert result.returncode == 0, result.stderr
    assert "written to" in result.stdout
    dataset = load_dataset(out)
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["info"]["source"] == "adfa"
    assert len(dataset.traces) == 3852
    assert set(dataset.family_names) == {
        "normal",
        "Adduser",
        "Hydra_FTP",
        "Hydra_SSH",
        "Java_Meterpreter",
        "Meterpreter",
        "Web_Shell",
    }
    for split in ("train", "val", "test"):
        assert metadata["counts"][split]["attack"] > 0
    assert (out / "config.yaml").exists()


def test_bad_input_exits_2_with_one_message(repo_root, tmp_path):
    result = run_script(
        repo_root,
        "--source",
        "adfa",
        "--input",
        str(tmp_path),
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode == 2
    assert "missing Training_Data_Master" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_script(
        repo_root, "--out", str(tmp_path / "o"), "--set", "training.epochs=zero"
    )
    assert result.returncode == 2
    assert "training.epochs: expected an integer" in result.stderr
