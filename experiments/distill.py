"""Distil a trained run into an equation and a standalone Rust detector.

    python experiments/distill.py --run RUN --data DATA [--out DIR]
        [--no-rust] [--benchmark-events N] [--set symbolic.sr_generations=50]

Fits the equation (genetic program, ``symbolic`` config section) to the
network's window scores on training windows, measures its fidelity on test
windows, writes the Rust crate, builds it with cargo when a toolchain is
present, and checks the binary's scores against Python's.

Writes (``DIR`` is ``--out``, default the run folder):
  DIR/symbolic/equation.txt, equation.tex, equation.json, score.py,
  DIR/symbolic/fidelity.json (r2, decision_agreement, roc_auc,
  network_roc_auc, nodes, ...), DIR/rust/ (crate, verify.json).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sentinel_jax.atomic import write_json_atomic, write_text_atomic
from sentinel_jax.cli import UsageError, make_parser, resolve_config, run_main
from sentinel_jax.config import SymbolicConfig
from sentinel_jax.data.store import Dataset, load_dataset
from sentinel_jax.symbolic import DetectorSpec, NeuralToSymbolic, rust
from sentinel_jax.symbolic.fitting import r2_score

logger = logging.getLogger("distill")

# Windows of a dataset -> the network's scores, float [batch].
WindowScorer = Callable[[Dataset], np.ndarray]
VERIFY_WINDOWS = 2000


def _roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2 or not np.all(np.isfinite(scores)):
        return None
    return float(roc_auc_score(labels, scores))


def _evaluation_split(dataset: Dataset) -> Dataset:
    for split in ("test", "val", "train"):
        part = dataset.subset(split)
        if len(part):
            return part
    raise UsageError("the dataset has no windows")


def fit_equation(dataset: Dataset, score_windows: WindowScorer,
                 settings: SymbolicConfig, *, progress: bool = True) -> Any:
    """Runs the genetic program on a seeded sample of training windows."""
    train = dataset.subset("train")
    if len(train) < 10:
        raise UsageError(f"need at least 10 training windows, got {len(train)}")
    rng = np.random.default_rng(settings.seed)
    rows = np.sort(rng.permutation(len(train))[:settings.sr_samples])
    sample = train.select(rows)
    target = np.asarray(score_windows(sample), dtype=np.float64)
    tag_names = [f"tag_{i}" for i in range(dataset.channels - dataset.name_channels)]
    from sentinel_jax.data.tags import TAG_NAMES

    tag_names = [f"tag_{name}" for name in TAG_NAMES] + tag_names[len(TAG_NAMES):]
    feature_names = list(dataset.vocabulary.names) + tag_names
    compressor = NeuralToSymbolic(
        max_complexity=settings.sr_max_complexity,
        population=settings.sr_population, generations=settings.sr_generations,
        max_height=settings.sr_max_height, seed=settings.seed,
        processes=settings.sr_processes, progress=progress)
    compressed = compressor.compress_model(
        None, sample.hist, target,
        feature_names=feature_names[:dataset.channels])
    return compressor, compressed


def fidelity(dataset: Dataset, equation: Any, score_windows: WindowScorer,
             threshold: float) -> dict[str, Any]:
    """The equation against the network on the evaluation windows."""
    part = _evaluation_split(dataset)
    network = np.asarray(score_windows(part), dtype=np.float64)
    symbolic = equation.score(part.hist)
    return {
        "split": "test" if len(dataset.subset("test")) else "fallback",
        "windows": len(part),
        "r2": r2_score(symbolic, network),
        "decision_agreement": float(np.mean((symbolic >= threshold)
                                            == (network >= threshold))),
        "roc_auc": _roc_auc(part.labels, symbolic),
        "network_roc_auc": _roc_auc(part.labels, network),
        "threshold": threshold,
        "nodes": equation.nodes,
        "equation": equation.text(),
    }


def benchmark_numbers(binary: Path, events: int, seed: int = 0) -> dict[str, Any]:
    """Detector throughput on a stream of i386 syscall numbers."""
    rng = np.random.default_rng(seed)
    numbers = rng.choice([3, 4, 5, 6, 11, 45, 54, 90, 91, 102, 120, 192, 195, 197,
                          221, 240, 243, 252], size=events)
    with tempfile.NamedTemporaryFile("w+b", suffix=".txt") as stream:
        stream.write(" ".join(map(str, numbers.tolist())).encode())
        stream.flush()
        stream.seek(0)
        completed = subprocess.run([str(binary), "--format", "numbers"],
                                   stdin=stream, capture_output=True, check=True)
    summary = json.loads(completed.stdout.decode().splitlines()[-1])
    return {"events": summary["events"], "seconds": summary["seconds"],
            "events_per_s": summary["events_per_s"]}


# strace text is ~100 bytes a call: the stream is capped to keep it in memory.
STRACE_BENCHMARK_MAX_EVENTS = 500_000
_STRACE_PROGRAM = (
    "import os, socket, subprocess\n"
    "for _ in range(20): open('/etc/passwd').read(); os.stat('/tmp')\n"
    "pair = socket.socketpair(); pair[0].send(b'x'); pair[1].recv(1)\n"
    "subprocess.run(['sh', '-c', 'exit 0'])\n")
_PID_COLUMN = re.compile(r"^(\d+)(?=\s)", re.M)
_CHILD_PID = re.compile(r"^(.*\b(?:clone3?|v?fork)\b.*\)\s+=\s+)(\d+)$", re.M)


def _strace_capture() -> str | None:
    """strace text of a small Python program (``strace -f -yy``), or ``None``
    without strace."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "capture.log"
        subprocess.run([strace, "-f", "-yy", "-o", str(log), sys.executable, "-c",
                        _STRACE_PROGRAM], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
        return log.read_text(encoding="utf-8", errors="replace")


def _move_pids(text: str, offset: int) -> str:
    """strace text with every pid (the -f column, clone results) + offset."""
    text = _PID_COLUMN.sub(lambda m: str(int(m.group(1)) + offset), text)
    return _CHILD_PID.sub(lambda m: m.group(1) + str(int(m.group(2)) + offset), text)


def benchmark_strace(binary: Path, events: int) -> dict[str, Any] | None:
    """Detector throughput on strace text: a real capture repeated, each copy
    with its pids (and clone results) moved, so every copy is new processes.
    ``None`` without strace."""
    capture = _strace_capture()
    if capture is None:
        logger.warning("strace is not installed: no strace-text throughput")
        return None
    calls = sum(1 for line in capture.splitlines()
                if "+++" not in line and "--- " not in line and "resumed>" not in line)
    copies = max(1, -(-min(events, STRACE_BENCHMARK_MAX_EVENTS) // max(calls, 1)))
    with tempfile.NamedTemporaryFile("w+b", suffix=".log") as stream:
        for copy in range(copies):
            stream.write(_move_pids(capture, copy * 100_000).encode())
        stream.flush()
        size = stream.tell()
        stream.seek(0)
        completed = subprocess.run([str(binary), "--format", "strace"], stdin=stream,
                                   capture_output=True, check=True)
    summary = json.loads(completed.stdout.decode().splitlines()[-1])
    return {"events": summary["events"], "bytes": size, "seconds": summary["seconds"],
            "events_per_s": summary["events_per_s"], "skipped": summary["skipped"]}


def distill(dataset: Dataset, score_windows: WindowScorer, threshold: float,
            settings: SymbolicConfig, out: Path, *, stride: int,
            build: bool = True, benchmark_events: int = 0,
            progress: bool = True) -> dict[str, Any]:
    """The whole stage: equation, fidelity, crate, build, verification.

    Args:
        dataset: windows with splits (the network's vocabulary).
        score_windows: the network's score of each window of a dataset.
        threshold: the network's decision threshold (score >= threshold).
        settings: the ``symbolic`` config section.
        out: folder for ``symbolic/`` and ``rust/``.
        stride: window stride of the detector (the data config's).
        build: build and verify the crate when cargo is present.
        benchmark_events: if > 0, measure throughput on that many numbers,
            and on strace text (at most ``STRACE_BENCHMARK_MAX_EVENTS`` calls).
        progress: progress bar over generations.

    Returns:
        A summary: fidelity and verification figures.
    """
    compressor, compressed = fit_equation(dataset, score_windows, settings,
                                          progress=progress)
    equation = compressed.equation
    symbolic_dir = out / "symbolic"
    write_text_atomic(symbolic_dir / "equation.txt", equation.text() + "\n")
    write_text_atomic(symbolic_dir / "equation.tex", equation.latex() + "\n")
    write_text_atomic(symbolic_dir / "score.py", equation.python_source())
    write_json_atomic(symbolic_dir / "equation.json", {
        **equation.to_json(), "front": compressed.front,
        "chosen": compressed.chosen, "heldout_r2": compressed.heldout_r2,
        "best_error": compressed.best_error,
        "evaluations": compressed.evaluations})
    report = fidelity(dataset, equation, score_windows, threshold)
    report["heldout_r2"] = compressed.heldout_r2

    spec = DetectorSpec(dataset.vocabulary, dataset.channels, dataset.time,
                        stride, threshold)
    crate = compressor.export_rust_code(compressed, out / "rust", detector=spec)
    verification: dict[str, Any] = {"built": False}
    if build:
        try:
            binary = rust.build_crate(crate)
        except rust.RustUnavailableError as error:
            verification["reason"] = str(error)
            logger.warning("%s", error)
        else:
            part = _evaluation_split(dataset)
            verification = {"built": True, **rust.verify(
                binary, equation, part.hist[:VERIFY_WINDOWS])}
            if benchmark_events > 0:
                verification["numbers_throughput"] = benchmark_numbers(
                    binary, benchmark_events, settings.seed)
            verification["strace_throughput"] = (
                benchmark_strace(binary, benchmark_events)
                if benchmark_events > 0 else None)
    else:
        verification["reason"] = "--no-rust"
    write_json_atomic(out / "rust" / "verify.json", verification)
    report["binary_bytes"] = verification.get("binary_bytes")
    report["rust_max_abs_diff"] = verification.get("max_abs_diff")
    write_json_atomic(symbolic_dir / "fidelity.json", report)
    return {"fidelity": report, "verify": verification}


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__, out_default="")
    parser.add_argument("--run", required=True, metavar="DIR",
                        help="a run folder written by train.py")
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="the dataset folder the run was trained on")
    parser.add_argument("--no-rust", action="store_true",
                        help="write the crate but do not build it")
    parser.add_argument("--benchmark-events", type=int, default=0, metavar="N",
                        help="measure detector throughput on N syscall numbers "
                             "(and on up to 500k calls of strace text)")
    args = parser.parse_args(argv)
    config = resolve_config(args)
    from sentinel_jax.training.checkpoint import CheckpointError, load_run

    try:
        run = load_run(args.run)
    except CheckpointError as error:
        raise UsageError(str(error)) from None
    dataset = load_dataset(args.data)
    if dataset.vocabulary != run.vocabulary:
        raise UsageError(f"{args.data}: its vocabulary differs from the run's; "
                         f"use the dataset the run was trained on")
    out = Path(args.out or args.run)

    def score_windows(part: Dataset) -> np.ndarray:
        return np.asarray(run.score(part.ids, part.tags, part.hist), np.float64)

    summary = distill(dataset, score_windows, run.threshold, config.symbolic, out,
                      stride=run.config.data.stride, build=not args.no_rust,
                      benchmark_events=args.benchmark_events,
                      progress=config.training.progress)
    report = summary["fidelity"]
    print(f"equation ({report['nodes']} nodes): {report['equation']}")
    print(f"R^2 {report['r2']:.4f}  agreement {report['decision_agreement']:.4f}  "
          f"AUC {report['roc_auc']} (network {report['network_roc_auc']})")
    verify = summary["verify"]
    if verify.get("built"):
        print(f"rust: {verify['binary_bytes']} bytes, max |diff| "
              f"{verify['max_abs_diff']:.3g}")
        for kind in ("numbers", "strace"):
            speed = verify.get(f"{kind}_throughput")
            if speed:
                print(f"rust {kind}: {speed['events_per_s']:.3g} events/s")
    else:
        print(f"rust: not built ({verify.get('reason')})")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
