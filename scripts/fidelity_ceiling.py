"""How much of a trained network's score can any function of the hist explain?

The distilled equation is a function of a window's hist, so its R^2 against
the network is bounded by how well the hist determines the network's score.
This script estimates that bound from above with flexible regressors that
have thousands of nodes (gradient-boosted trees, a random forest): fitted on
the run's training windows, scored on its test windows. For an event-encoded
network (which sees call order) the bound falls below 1; for a rate-encoded
one (a function of the hist alone) it is limited only by the sample size.

Usage:
  python scripts/fidelity_ceiling.py --run RUN --data RUN/data [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.metrics import r2_score

from sentinel_jax.atomic import write_json_atomic
from sentinel_jax.data.store import load_dataset
from sentinel_jax.training.checkpoint import load_run

logger = logging.getLogger("fidelity_ceiling")


def regressors(seed: int) -> dict[str, object]:
    """The flexible stand-ins for "any function of the hist"."""
    return {
        "gradient_boosting": HistGradientBoostingRegressor(max_iter=500,
                                                           random_state=seed),
        "random_forest": RandomForestRegressor(300, min_samples_leaf=2, n_jobs=2,
                                               random_state=seed),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="trained run folder")
    parser.add_argument("--data", required=True, help="the run's dataset folder")
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    run, dataset = load_run(args.run), load_dataset(args.data)
    train, test = dataset.subset("train"), dataset.subset("test")
    scores = {name: np.asarray(run.score(part.ids, part.tags, part.hist),
                               np.float64)
              for name, part in (("train", train), ("test", test))}
    result = {"run": args.run, "encoding": run.config.model.encoding,
              "train_windows": len(train), "test_windows": len(test)}
    for name, model in regressors(args.seed).items():
        model.fit(train.hist, scores["train"])
        result[f"{name}_test_r2"] = float(r2_score(scores["test"],
                                                   model.predict(test.hist)))
        logger.info("%s: test R^2 of the network's score from the hist %.3f",
                    name, result[f"{name}_test_r2"])
    print(json.dumps(result))
    if args.out:
        write_json_atomic(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
