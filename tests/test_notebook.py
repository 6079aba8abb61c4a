"""The exploration notebook runs top to bottom on a fresh kernel.

The kernel is this interpreter (the project's ``.venv``): a ``python3``
kernel spec pointing at ``sys.executable`` is put first on ``JUPYTER_PATH``,
so a user-wide spec of another Python cannot take its place. The notebook
writes only into ``SENTINEL_NOTEBOOK_OUT`` and runs in an empty folder, so
the test can check it left nothing anywhere else.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "explore.ipynb"
CELL_TIMEOUT_S = 600
EPOCHS = 5  # training.epochs in the notebook's config cell


def _install_venv_kernel(jupyter_dir: Path) -> None:
    """Writes a ``python3`` kernel spec that runs ``sys.executable``."""
    spec_dir = jupyter_dir / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f",
                     "{connection_file}"],
            "display_name": "Python 3 (sentinel_jax tests)", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")


def _outputs(notebook) -> list:
    return [output for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.outputs]


def _stdout(notebook) -> str:
    return "".join(output.text for output in _outputs(notebook)
                   if output.output_type == "stream" and output.name == "stdout")


def test_notebook_is_saved_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert len(code_cells) >= 10
    for cell in code_cells:
        assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.slow
def test_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    out, workdir = tmp_path / "out", tmp_path / "cwd"
    workdir.mkdir()
    _install_venv_kernel(tmp_path / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("SENTINEL_NOTEBOOK_OUT", str(out))
    notebook = nbformat.read(NOTEBOOK, as_version=4)

    client = nbclient.NotebookClient(
        notebook, kernel_name="python3", timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(workdir)}})
    client.execute()  # raises CellExecutionError on the first failing cell

    outputs = _outputs(notebook)
    stdout = _stdout(notebook)
    assert not [o for o in outputs if o.output_type == "error"]
    # the kernel was this interpreter
    assert f"python: {sys.executable}\n" in stdout

    # plots: families, hist heat-map, curves, rasters, splines, fidelity
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 6

    # the equation, as text with its held-out R^2 and as LaTeX
    equation = re.search(r"^score = (.+)$", stdout, re.MULTILINE)
    assert equation and re.search(r"[A-Za-z_]", equation.group(1))
    r2 = re.search(r"held-out R\^2 (\S+),", stdout)
    assert r2 and math.isfinite(float(r2.group(1)))
    latex = [o.data["text/latex"] for o in outputs if "text/latex" in o.get("data", {})]
    assert latex and r"\mathrm{score} =" in latex[0]

    # the run folder of step 2, written only under SENTINEL_NOTEBOOK_OUT
    history = (out / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(history) == EPOCHS
    assert (out / "run" / "checkpoints" / "threshold.json").is_file()
    assert re.search(r"test ROC AUC \d\.\d{3} ", stdout)
    assert list(workdir.iterdir()) == []

    if shutil.which("strace") is None:
        assert "strace is not installed" in stdout
        return
    for session in ("ordinary", "intruder"):
        assert (out / "strace" / f"{session}.log").stat().st_size > 0
        assert re.search(rf"{session} session: [1-9]\d* processes", stdout)
    # every process got a verdict, and the top events were named
    verdicts = re.findall(r"calls  score +-?\d+\.\d+  (ALERT|ok)", stdout)
    assert len(verdicts) >= 4
    assert re.search(r"^  #\d+ +\w+", stdout, re.MULTILINE)
