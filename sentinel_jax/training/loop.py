"""The training loop: epochs, validation, early stopping, checkpoints, resume.

:func:`train` is the one function that reads a config; it wires the data,
the model, the optimiser, the device mesh and the checkpoints together.

Resumption is exact. The data order of an epoch is a pure function of
``(seed, epoch)``, the latest checkpoint holds the whole :class:`TrainState`
plus the early-stopping bookkeeping and the metric history, and nothing else
carries state across epochs. A run killed at any point and restarted with
``resume=True`` replays the unfinished epoch from its start and ends with the
same parameters and metrics as a run that was never interrupted.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh
from tqdm.auto import tqdm

from sentinel_jax.atomic import write_text_atomic
from sentinel_jax.config import Config
from sentinel_jax.data.store import Dataset, DatasetError
from sentinel_jax.evaluation.metrics import choose_threshold, roc_auc
from sentinel_jax.models.hybrid import HybridSpec, init_hybrid
from sentinel_jax.training import checkpoint as ckpt
from sentinel_jax.training.losses import LossWeights
from sentinel_jax.training.predict import predict_logits
from sentinel_jax.training.sharding import (
    make_mesh,
    padded_batch_size,
    replicate,
    shard_batch,
)
from sentinel_jax.training.state import (
    Params,
    TrainState,
    init_train_state,
    make_optimizer,
    make_schedule,
    steps_per_epoch,
)
from sentinel_jax.training.steps import (
    INPUTS,
    anomaly_scores,
    epoch_order,
    gather_batches,
    make_run_steps,
    make_train_step,
)

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
# Optimiser steps per device call; bounds host memory for a stack of batches.
STEPS_PER_CALL = 32
_ONE_SHOT_COMPILE = {"xla_backend_optimization_level": 0}


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN)."""


class TrainingInterruptedError(RuntimeError):
    """Raised by the ``stop_after_steps`` hook (tests of resumption)."""


@dataclass(frozen=True)
class TrainResult:
    """What a finished training run produced.

    Attributes:
        params: the best parameters by the validation metric.
        spec: the model description.
        threshold: decision threshold chosen on validation scores.
        history: one metrics dict per completed epoch.
        best: the history entry of the best epoch.
        stopped_early: whether early stopping ended the run.
        run_dir: the run folder.
    """

    params: Params
    spec: HybridSpec
    threshold: float
    history: list[dict[str, Any]]
    best: dict[str, Any]
    stopped_early: bool
    run_dir: Path


def validation_metrics(params: Params, spec: HybridSpec,
                       data: Dataset) -> tuple[dict[str, float], np.ndarray]:
    """Loss, ROC AUC and accuracy (argmax) on a split, and its scores."""
    logits = predict_logits(params, spec, data.ids, data.tags, data.hist)
    log_probs = logits - np.logaddexp(logits[:, :1], logits[:, 1:])
    labels = data.labels.astype(np.int64)
    loss = float(-np.mean(log_probs[np.arange(labels.size), labels]))
    scores = anomaly_scores(logits)
    return {"val_loss": loss, "val_roc_auc": roc_auc(labels, scores),
            "val_accuracy": float(np.mean((scores >= 0) == (labels == 1)))}, scores


def check_dataset(config: Config, dataset: Dataset) -> None:
    """The dataset's shapes must be those the config's model expects."""
    expected = {"time": config.data.sequence_length,
                "channels": config.data.feature_dim}
    for name, value in expected.items():
        if getattr(dataset, name) != value:
            raise DatasetError(
                f"dataset has {name}={getattr(dataset, name)} but the config says "
                f"{value} (data.sequence_length / data.feature_dim); regenerate "
                f"the data or change the config")
    if dataset.name_channels > config.data.name_channels:
        raise DatasetError(
            f"dataset vocabulary has {dataset.name_channels} names, more than "
            f"data.name_channels={config.data.name_channels}")
    for split in ("train", "val"):
        if not (dataset.splits == ("train", "val").index(split)).any():
            raise DatasetError(f"dataset has no {split} windows")


def _rank(entry: dict[str, Any], metric: str) -> list[float]:
    """Sort key of an epoch, higher is better; NaN ranks lowest.

    ROC AUC saturates at 1.0 on easy data, so ties on it are broken by the
    validation loss.
    """
    def finite(value: float) -> float:
        return -math.inf if math.isnan(value) else value

    if metric == "val_loss":
        return [finite(-entry["val_loss"])]
    return [finite(entry["val_roc_auc"]), finite(-entry["val_loss"])]


def _write_history(run_dir: Path, history: Sequence[dict[str, Any]]) -> None:
    lines = "".join(json.dumps(entry, sort_keys=False) + "\n" for entry in history)
    write_text_atomic(run_dir / METRICS_FILE, lines)


def train(config: Config, dataset: Dataset, run_dir: str | Path, *,
          resume: bool = False, branches: Sequence[str] | None = None,
          devices: Sequence[jax.Device] | None = None,
          stop_after_steps: int | None = None,
          steps_per_call: int = STEPS_PER_CALL,
          on_epoch_end: Callable[[dict[str, Any]], None] | None = None
          ) -> TrainResult:
    """Trains the hybrid (or one branch) and checkpoints it into ``run_dir``.

    Args:
        config: the resolved config; its ``model``, ``data`` and ``training``
            sections are used. Training stops early after
            ``early_stopping_patience`` epochs without a better validation
            metric (0: never); the best epoch's parameters are kept.
        dataset: all splits; ``train`` is fitted, ``val`` picks the best epoch
            and the threshold. ``test`` is never looked at.
        run_dir: the run folder (``checkpoints/``, ``metrics.jsonl``).
        resume: continue from ``run_dir``'s latest checkpoint if there is
            one; start fresh if there is none.
        branches: override the model's branches, e.g. ``("snn",)`` for the
            ablation; default: the spec's own.
        devices: devices of the data mesh (default: all).
        stop_after_steps: testing hook: raise :class:`TrainingInterruptedError`
            once this many optimiser steps in total are done, as a kill would.
        steps_per_call: optimiser steps per device call (``lax.scan``
            length); more cuts dispatch overhead, fewer updates the progress
            bar more often. No effect on results.
        on_epoch_end: called with each epoch's metrics once its checkpoint
            is handed to the background writer (benchmarks time whole epochs
            with it).

    Returns:
        The :class:`TrainResult`.

    Raises:
        CheckpointError: a checkpoint exists without ``resume``, or it is
            corrupt or belongs to another config, dataset or model.
        DatasetError: the dataset does not fit the config.
        TrainingError: the loss became NaN or infinite.
    """
    training = config.training
    check_dataset(config, dataset)
    run_dir = Path(run_dir)
    folder = run_dir / ckpt.CHECKPOINTS
    spec = HybridSpec.from_config(config.model, config.data)
    if branches is not None:
        spec = dataclasses.replace(spec, branches=tuple(branches))

    mesh = make_mesh(devices)
    batch_size = padded_batch_size(training.batch_size, mesh.devices.size)
    if batch_size != training.batch_size:
        logger.warning("batch size %d rounded up to %d, a multiple of %d devices",
                       training.batch_size, batch_size, mesh.devices.size)
    train_data, val_data = dataset.subset("train"), dataset.subset("val")
    train_arrays = {name: getattr(train_data, name) for name in (*INPUTS, "labels")}
    epoch_steps = steps_per_epoch(len(train_data), batch_size)
    total_steps = epoch_steps * training.epochs
    optimizer_args = (training.learning_rate, training.weight_decay,
                      training.clip_norm, training.warmup_epochs * epoch_steps,
                      total_steps)
    schedule = make_schedule(training.learning_rate,
                             training.warmup_epochs * epoch_steps, total_steps)
    resuming = ckpt.has_checkpoint(folder, ckpt.LATEST)
    if resuming and not resume:
        raise ckpt.CheckpointError(
            f"{folder} already holds a checkpoint; pass --resume to continue "
            f"it or choose another --out")
    if resuming:
        ckpt.check_run_files(folder, config, dataset.vocabulary, spec)
    run_steps, init_state = _compiled_functions(
        spec, LossWeights.from_config(training), optimizer_args, mesh)
    state = replicate(init_state(jax.random.PRNGKey(training.seed)), mesh)

    history: list[dict[str, Any]] = []
    best_value: list[float] | None = None
    best_entry: dict[str, Any] = {}
    bad_epochs, start_epoch = 0, 0
    if resuming:
        state, meta = ckpt.restore_tree(folder, ckpt.LATEST, state)
        history = list(meta["history"])
        best_value, best_entry = meta["best_value"], dict(meta["best_entry"])
        bad_epochs, start_epoch = int(meta["bad_epochs"]), int(meta["epoch"])
        logger.info("resuming %s from epoch %d (step %d)", run_dir, start_epoch,
                    int(state.step))
    else:
        ckpt.write_run_files(folder, config, dataset.vocabulary, spec)
    _write_history(run_dir, history)

    metric = training.early_stopping_metric
    stopped_early = bad_epochs >= training.early_stopping_patience > 0
    with ckpt.CheckpointWriter() as writer:
        for epoch in range(start_epoch, training.epochs):
            if stopped_early:
                break
            began = time.perf_counter()
            order = epoch_order(training.seed, epoch, len(train_data), batch_size)
            step_metrics = []
            bar = tqdm(total=epoch_steps, desc=f"epoch {epoch + 1}/{training.epochs}",
                       disable=not training.progress, leave=False, unit="step")
            for begin, end in _chunks(epoch * epoch_steps, epoch_steps,
                                      stop_after_steps, steps_per_call):
                stack = gather_batches(train_arrays, order[begin:end])
                state, metrics = run_steps(state, shard_batch(stack, mesh, 1))
                step_metrics.append(metrics)
                bar.update(end - begin)
            bar.close()
            if stop_after_steps is not None and (epoch + 1) * epoch_steps > \
                    stop_after_steps:
                raise TrainingInterruptedError(
                    f"stopped after {stop_after_steps} steps")

            entry = _epoch_entry(epoch, state, step_metrics, schedule)
            if not math.isfinite(entry["train_loss"]):
                raise TrainingError(f"training loss became {entry['train_loss']} in "
                                    f"epoch {epoch + 1}; lower training.learning_rate")
            val, _ = validation_metrics(state.params, spec, val_data)
            entry.update(val, seconds=round(time.perf_counter() - began, 3))
            history.append(entry)
            writer.wait()  # the previous epoch's saves, written meanwhile
            if best_value is None or _rank(entry, metric) > best_value:
                best_value, best_entry, bad_epochs = _rank(entry, metric), entry, 0
                writer.save(folder, ckpt.BEST, state.params, entry)
            else:
                bad_epochs += 1
            stopped_early = bad_epochs >= training.early_stopping_patience > 0
            _write_history(run_dir, history)
            # Written in the background while the next epoch trains.
            writer.save(folder, ckpt.LATEST, state, {
                "step": int(state.step), "epoch": epoch + 1, "history": history,
                "best_value": best_value, "best_entry": best_entry,
                "bad_epochs": bad_epochs})
            logger.info(
                "epoch %d/%d  loss %.4f  val_loss %.4f  val_auc %.4f  %.1fs%s",
                epoch + 1, training.epochs, entry["train_loss"], entry["val_loss"],
                entry["val_roc_auc"], entry["seconds"],
                "  (best)" if best_entry is entry else "")
            if on_epoch_end is not None:
                on_epoch_end(entry)

    params, _ = ckpt.restore_tree(folder, ckpt.BEST, state.params)
    _, val_scores = validation_metrics(params, spec, val_data)
    threshold = choose_threshold(val_data.labels, val_scores,
                                 training.threshold_rule, training.target_fpr)
    from sentinel_jax.atomic import write_json_atomic

    write_json_atomic(folder / "threshold.json", {
        "threshold": threshold, "rule": training.threshold_rule,
        "target_fpr": training.target_fpr, "chosen_on": "val",
        "best_epoch": best_entry.get("epoch")})
    if stopped_early:
        logger.info("early stopping: no %s improvement in %d epochs", metric,
                    training.early_stopping_patience)
    return TrainResult(params=params, spec=spec, threshold=threshold,
                       history=history, best=best_entry,
                       stopped_early=stopped_early, run_dir=run_dir)


@functools.lru_cache(maxsize=8)
def _compiled_functions(spec: HybridSpec, weights: LossWeights,
                        optimizer_args: tuple, mesh: Mesh) -> tuple[Any, Any]:
    """Jitted ``run_steps`` and state initialiser, shared by runs alike."""
    optimizer = make_optimizer(*optimizer_args)
    run_steps = make_run_steps(make_train_step(spec, optimizer, weights, mesh))

    def init_state(key: jax.Array) -> TrainState:
        return init_train_state(init_hybrid(key, spec), optimizer)

    # The initialiser runs once per run; XLA's backend optimisations cost
    # ~1.5 s of its ~2.3 s compile (a random draw per parameter) and save
    # nothing measurable at run time.
    return run_steps, jax.jit(init_state, compiler_options=_ONE_SHOT_COMPILE)


def _chunks(first_step: int, epoch_steps: int, stop_after_steps: int | None,
            steps_per_call: int):
    """``(begin, end)`` step ranges within an epoch, one device call each."""
    end_of_epoch = epoch_steps
    if stop_after_steps is not None:
        end_of_epoch = min(epoch_steps, max(stop_after_steps - first_step, 0))
    for begin in range(0, end_of_epoch, steps_per_call):
        yield begin, min(begin + steps_per_call, end_of_epoch)


def _epoch_entry(epoch: int, state: TrainState, step_metrics: list[dict],
                 schedule) -> dict[str, Any]:
    """Row-weighted epoch means of the step metrics (one host sync)."""
    metrics = jax.device_get(step_metrics)
    merged = {name: np.concatenate([np.atleast_1d(m[name]) for m in metrics])
              for name in metrics[0]}
    rows = merged.pop("rows")
    entry: dict[str, Any] = {"epoch": epoch + 1, "step": int(state.step),
                             "learning_rate": float(schedule(int(state.step)))}
    for name, values in merged.items():
        entry[f"train_{name}"] = float(np.sum(values * rows) / np.sum(rows))
    return entry
