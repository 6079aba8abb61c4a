"""The whole job in one command: data, training, evaluation, distillation, Rust.

Runs, in one run folder, the same ``main`` functions as the stage scripts:

  1. generate_data.py  -> OUT/data/ (dataset.npz, metadata.json)
  2. train.py          -> OUT/checkpoints/, OUT/metrics.jsonl
  3. evaluate.py       -> OUT/metrics.json, plots, the ablation models
  4. distill.py        -> OUT/symbolic/, OUT/rust/ (crate, binary, verify.json)

and ends with OUT/report.md linking every table and plot, OUT/pipeline.json
(stage times and the headline figures) and a five-line summary. Nothing is
written outside OUT except caches.

Example:
  python experiments/pipeline.py --config configs/small.yaml --out runs/small
  python experiments/pipeline.py --config configs/default.yaml --out runs/default
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sentinel_jax.atomic import write_json_atomic, write_text_atomic
from sentinel_jax.cli import (
    UsageError,
    banner,
    load_experiment,
    make_parser,
    resolve_config,
    run_main,
)
from sentinel_jax.config import save_config


def _shared_flags(args) -> list[str]:
    flags = ["--config", args.config] if args.config else []
    for override in args.overrides:
        flags += ["--set", override]
    return flags + (["--quiet"] if args.quiet else [])


def run_stage(name: str, argv: list[str], timings: dict[str, float]) -> None:
    """Runs ``experiments/NAME.py`` in-process; a failed stage stops the job."""
    print(f"\n--- {name}: python experiments/{name}.py {shlex.join(argv)}",
          flush=True)
    began = time.perf_counter()
    status = load_experiment(name).main(argv)
    timings[name] = round(time.perf_counter() - began, 2)
    if status:
        raise UsageError(f"stage {name} failed with status {status}")


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def headline(out: Path, wall_s: float) -> dict[str, Any]:
    """The five figures a reader wants first."""
    metrics = _read_json(out / "metrics.json")
    fidelity = _read_json(out / "symbolic" / "fidelity.json")
    verify = _read_json(out / "rust" / "verify.json")
    test = metrics.get("test", {})
    return {
        "test_roc_auc": test.get("roc_auc"),
        "tpr_at_fpr_1pct": test.get("tpr_at_fpr_1pct"),
        "equation": fidelity.get("equation"),
        "equation_nodes": fidelity.get("nodes"),
        "equation_r2": fidelity.get("r2"),
        "rust_binary_bytes": verify.get("binary_bytes"),
        "wall_s": round(wall_s, 1),
    }


def render_report(out: Path, summary: dict[str, Any], timings: dict[str, float],
                  command: str) -> str:
    """The run's report: headline, evaluation report, distillation, timings."""
    evaluation = (out / "report.md").read_text(encoding="utf-8") \
        if (out / "report.md").exists() else ""
    evaluation = evaluation.split("\n", 1)[1] if evaluation.startswith("#") \
        else evaluation
    fidelity = _read_json(out / "symbolic" / "fidelity.json")
    verify = _read_json(out / "rust" / "verify.json")
    lines = [
        "# sentinel_jax pipeline run", "",
        f"Command: `{command}`", "",
        "## Headline", "",
        "| figure | value |", "| --- | --- |",
        *(f"| {key} | {value} |" for key, value in summary.items()), "",
        "## Stage times (s)", "",
        "| stage | seconds |", "| --- | --- |",
        *(f"| {stage} | {seconds} |" for stage, seconds in timings.items()), "",
        "## Distilled equation", "",
        f"`{fidelity.get('equation', 'not distilled')}`", "",
        "Files: [equation.txt](symbolic/equation.txt), "
        "[equation.tex](symbolic/equation.tex), "
        "[fidelity.json](symbolic/fidelity.json).", "",
        "| fidelity | value |", "| --- | --- |",
        *(f"| {key} | {value} |" for key, value in fidelity.items()
          if key != "equation" and not isinstance(value, dict | list)), "",
        "## Rust detector", "",
        "Crate in [rust/](rust/), checks in [verify.json](rust/verify.json).", "",
        "| check | value |", "| --- | --- |",
        *(f"| {key} | {value} |" for key, value in verify.items()
          if not isinstance(value, dict | list)), "",
        "## Evaluation", "",
        evaluation,
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--no-rust", action="store_true",
                        help="write the Rust crate but do not build it")
    parser.add_argument("--ablation", choices=("train", "skip"), default="train",
                        help="train the single-branch models for the ablation "
                             "table (default) or skip them")
    args = parser.parse_args(argv)
    config = resolve_config(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(banner(), flush=True)
    save_config(config, out / "config.yaml")
    command = "python experiments/pipeline.py " + shlex.join(
        sys.argv[1:] if argv is None else list(argv))

    shared = _shared_flags(args)
    data, timings = out / "data", {}
    began = time.perf_counter()
    run_stage("generate_data", [*shared, "--out", str(data)], timings)
    run_stage("train", [*shared, "--data", str(data), "--out", str(out)], timings)
    run_stage("evaluate", [*shared, "--run", str(out), "--data", str(data),
                           "--out", str(out), "--ablation", args.ablation], timings)
    run_stage("distill", [*shared, "--run", str(out), "--data", str(data),
                          "--out", str(out)]
              + (["--no-rust"] if args.no_rust else []), timings)
    wall = time.perf_counter() - began

    summary = headline(out, wall)
    write_json_atomic(out / "pipeline.json", {"command": command,
                                              "timings_s": timings, **summary})
    write_text_atomic(out / "report.md",
                      render_report(out, summary, timings, command))

    def show(value: Any, digits: int = 4) -> str:
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    print(f"\nreport: {out / 'report.md'}")
    print(f"  test ROC AUC          {show(summary['test_roc_auc'])}")
    print(f"  detection at 1% FPR   {show(summary['tpr_at_fpr_1pct'])}")
    print(f"  equation ({summary['equation_nodes']} nodes)  {summary['equation']}")
    size = summary["rust_binary_bytes"]
    print(f"  Rust binary           {size if size else 'not built'}"
          f"{' bytes' if size else ''}")
    print(f"  wall time             {wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
