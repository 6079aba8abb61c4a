"""Train the hybrid SNN-KAN detector on a dataset folder.

Writes OUT/config.yaml (the resolved config), OUT/metrics.jsonl (one line per
epoch), OUT/checkpoints/ (orbax: latest and best, with the vocabulary, the
model spec and the validation threshold beside them).

Killed mid-run? Run the same command with --resume: training continues from
the latest checkpoint and ends exactly as an uninterrupted run would.

Example:
  python experiments/train.py --config configs/small.yaml --data runs/data \\
      --out runs/train --set training.epochs=20
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sentinel_jax.cli import UsageError, make_parser, resolve_config, run_main
from sentinel_jax.config import save_config
from sentinel_jax.data.store import load_dataset
from sentinel_jax.training import CheckpointError, TrainingError, train


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="dataset folder written by generate_data.py")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT's latest checkpoint if any")
    parser.add_argument("--branches", choices=("snn,kan", "snn", "kan"),
                        default="snn,kan",
                        help="model branches (single ones for ablations)")
    args = parser.parse_args(argv)
    config = resolve_config(args)
    dataset = load_dataset(args.data)
    out = Path(args.out)
    began = time.perf_counter()
    try:
        result = train(config, dataset, out, resume=args.resume,
                       branches=tuple(args.branches.split(",")))
    except (CheckpointError, TrainingError) as error:
        raise UsageError(str(error)) from None
    save_config(config, out / "config.yaml")
    best = result.best
    print(f"trained {len(result.history)} epochs in "
          f"{time.perf_counter() - began:.1f}s; best epoch {best.get('epoch')}: "
          f"val_roc_auc {best.get('val_roc_auc', float('nan')):.4f}, "
          f"val_loss {best.get('val_loss', float('nan')):.4f}; "
          f"threshold {result.threshold:.4f}; run in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
