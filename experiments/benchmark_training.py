"""Training throughput: how long would the reference-scale run take here?

The reference design trains on 50,000 samples for 100 epochs. This script
measures a shortened run of the real training loop (``train``: sharded
batches, scanned jitted steps, validation, orbax checkpoints every epoch) on
a dataset of the reference's shape, read back from disk, and extrapolates:

    estimate = data loading + start-up (compilation, initialisation, final
               threshold pass) + epochs x steady epoch (training,
               validation and checkpoints)

A steady epoch is the mean wall time of the epochs after the first; start-up
is the rest of the measured run. With
``--samples`` below 50,000 the steady epoch is scaled linearly in samples
(the work per sample is fixed; the per-epoch overhead is then overstated, so
the estimate errs on the slow side). Two figures are reported per encoding:
the pipeline's run (N windows split 70/15/15, so 70% are trained on) and 5
million training sample-steps (50,000 training windows x 100 epochs).

Window contents are random (ids, tags, hist of the default shapes): speed does
not depend on them. Writes OUT/benchmark_training.json.

Example (short; the full default takes minutes per encoding):
  python experiments/benchmark_training.py --out runs/bench --samples 5000 \\
      --epochs 3
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from sentinel_jax.atomic import write_json_atomic
from sentinel_jax.cli import make_parser, resolve_config, run_main
from sentinel_jax.config import Config, apply_overrides
from sentinel_jax.data.encode import histogram
from sentinel_jax.data.store import Dataset, load_dataset, save_dataset
from sentinel_jax.data.syscalls import OTHER, PAD, Vocabulary
from sentinel_jax.data.tags import NUM_TAGS
from sentinel_jax.training import train

logger = logging.getLogger("benchmark_training")
REFERENCE_SAMPLES, REFERENCE_EPOCHS = 50_000, 100


def random_dataset(config: Config, windows: int, seed: int = 0) -> Dataset:
    """Random windows of the config's shapes, split 70/15/15."""
    rng = np.random.default_rng(seed)
    data = config.data
    time_steps, names = data.sequence_length, data.name_channels
    ids = rng.integers(1, names, size=(windows, time_steps), dtype=np.int32)
    # About one event in ten carries one tag bit.
    bits = rng.integers(0, NUM_TAGS, size=(windows, time_steps)).astype(np.uint32)
    tags = np.where(rng.random((windows, time_steps)) < 0.1,
                    np.left_shift(np.uint32(1), bits), 0).astype(np.uint32)
    lengths = np.full(windows, time_steps, np.int32)
    hist = histogram(ids, tags, lengths, names, data.feature_dim)
    labels = (rng.random(windows) < 1 - data.normal_ratio).astype(np.int32)
    splits = rng.choice(3, size=windows, p=[0.7, 0.15, 0.15]).astype(np.int8)
    vocabulary = Vocabulary((PAD, OTHER, *(f"call{i}" for i in range(names - 2))))
    return Dataset(ids=ids, tags=tags, hist=hist, lengths=lengths, labels=labels,
                   families=labels.copy(), trace_index=np.arange(windows,
                                                                 dtype=np.int32),
                   splits=splits, vocabulary=vocabulary,
                   family_names=("normal", "attack"),
                   traces=tuple({"trace_id": str(i), "group": str(i),
                                 "family": "attack" if labels[i] else "normal",
                                 "label": int(labels[i])} for i in range(windows)),
                   info={"source": "benchmark (random windows)"})


def measure(config: Config, data_dir: Path, encoding: str, epochs: int,
            samples: int) -> dict:
    """Times a shortened training run and extrapolates to the reference."""
    config = apply_overrides(config, [f"model.encoding={encoding}",
                                      f"training.epochs={epochs}",
                                      "training.early_stopping_patience=0"])
    began = time.perf_counter()
    dataset = load_dataset(data_dir)
    load_s = time.perf_counter() - began
    with tempfile.TemporaryDirectory() as run_dir:
        marks = [time.perf_counter()]
        result = train(config, dataset, run_dir,
                       on_epoch_end=lambda _: marks.append(time.perf_counter()))
        total_s = time.perf_counter() - marks[0]
    # Whole epochs: training, validation and both checkpoints.
    epoch_walls = np.diff(marks)
    steady_s = float(np.mean(epoch_walls[1:]))
    # Start-up (jit compilation, initialisation) and the final threshold pass.
    fixed_s = float(total_s - steady_s * len(result.history))
    train_windows = int((dataset.splits == 0).sum())
    samples_per_s = train_windows / steady_s
    scale = REFERENCE_SAMPLES / samples
    pipeline_s = load_s * scale + fixed_s + REFERENCE_EPOCHS * steady_s * scale
    sample_steps_s = (load_s * scale + fixed_s + REFERENCE_EPOCHS
                      * steady_s * REFERENCE_SAMPLES / train_windows)
    return {
        "encoding": encoding, "samples": samples, "train_windows": train_windows,
        "epochs_measured": epochs, "load_s": round(load_s, 3),
        "startup_s": round(fixed_s, 2), "steady_epoch_s": round(steady_s, 3),
        "train_samples_per_s": round(samples_per_s, 1),
        "estimate_pipeline_run_s": round(pipeline_s, 1),
        "estimate_5m_sample_steps_s": round(sample_steps_s, 1),
        "devices": jax.device_count(), "batch_size": config.training.batch_size,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--samples", type=int, default=REFERENCE_SAMPLES,
                        help="windows in the benchmark dataset (default 50000)")
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs measured per encoding (at least 2)")
    parser.add_argument("--encodings", default="event,rate",
                        help="comma-separated encodings to measure")
    args = parser.parse_args(argv)
    config = apply_overrides(resolve_config(args), ["training.progress=false"])
    out = Path(args.out)
    epochs = max(2, args.epochs)
    results = []
    with tempfile.TemporaryDirectory() as data_dir:
        save_dataset(random_dataset(config, args.samples), data_dir)
        for encoding in args.encodings.split(","):
            result = measure(config, Path(data_dir), encoding.strip(), epochs,
                             args.samples)
            results.append(result)
            print(f"{result['encoding']:>5}: {result['train_samples_per_s']:.0f} "
                  f"train samples/s, steady epoch {result['steady_epoch_s']:.2f}s "
                  f"({result['train_windows']} windows), start-up "
                  f"{result['startup_s']:.1f}s -> reference run "
                  f"{result['estimate_pipeline_run_s'] / 60:.1f} min (5M "
                  f"sample-steps: {result['estimate_5m_sample_steps_s'] / 60:.1f}"
                  f" min)")
    write_json_atomic(out / "benchmark_training.json", {
        "reference": {"samples": REFERENCE_SAMPLES, "epochs": REFERENCE_EPOCHS},
        "method": "shortened run of train(), steady epochs extrapolated "
                  "linearly in samples and epochs",
        "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
