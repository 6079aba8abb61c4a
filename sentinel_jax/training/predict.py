"""Scoring windows with trained parameters, in fixed-shape batches.

Used by the training loop (validation), by loaded runs and by evaluation, so
it lives below all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import chex
import jax
import numpy as np

from sentinel_jax.models.hybrid import HybridSpec
from sentinel_jax.training.sharding import (
    make_mesh,
    padded_batch_size,
    replicate,
    shard_batch,
)
from sentinel_jax.training.state import Params
from sentinel_jax.training.steps import INPUTS, anomaly_scores, make_logits_fn

EVAL_BATCH = 1024


def predict_logits(params: Params, spec: HybridSpec, ids: np.ndarray,
                   tags: np.ndarray, hist: np.ndarray,
                   batch_size: int = EVAL_BATCH,
                   devices: Sequence[jax.Device] | None = None) -> np.ndarray:
    """The hybrid's fused logits, ``float32 [batch, 2]``, in batches.

    Every call has the same shape (the last batch is padded), so it compiles
    once per ``(spec, batch_size)``. With several devices (default: all)
    each batch is split over them, the parameters copied to each; the
    logits equal one device's up to float rounding.
    """
    chex.assert_rank([ids, tags, hist], [2, 2, 2])
    chex.assert_equal_shape_prefix([ids, tags, hist], 1)
    logits_fn = _cached_logits_fn(spec)
    mesh = make_mesh(devices)
    # One placement for every caller (replicated training state, loaded run),
    # so the function compiles once per shape.
    params = replicate(params, mesh)
    windows = ids.shape[0]
    batch_size = padded_batch_size(max(1, min(batch_size, windows)),
                                   mesh.devices.size)
    outputs = []
    for begin in range(0, windows, batch_size):
        rows = slice(begin, begin + batch_size)
        chunk = [np.asarray(ids[rows], np.int32), np.asarray(tags[rows], np.uint32),
                 np.asarray(hist[rows], np.float32)]
        real = chunk[0].shape[0]
        if real < batch_size:
            chunk = [np.concatenate([a, np.zeros((batch_size - real, *a.shape[1:]),
                                                 a.dtype)]) for a in chunk]
        placed = shard_batch(dict(zip(INPUTS, chunk, strict=True)), mesh)
        outputs.append(logits_fn(params, *(placed[name] for name in INPUTS))[:real])
    if not outputs:
        return np.zeros((0, 2), np.float32)
    return np.asarray(jax.device_get(jax.numpy.concatenate(outputs)), np.float32)


def predict_scores(params: Params, spec: HybridSpec, ids: np.ndarray,
                   tags: np.ndarray, hist: np.ndarray,
                   batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Anomaly scores ``float32 [batch]`` (``logit[attack] - logit[normal]``)."""
    return anomaly_scores(predict_logits(params, spec, ids, tags, hist, batch_size))


_LOGITS_FNS: dict[HybridSpec, object] = {}


def _cached_logits_fn(spec: HybridSpec):
    if spec not in _LOGITS_FNS:
        _LOGITS_FNS[spec] = make_logits_fn(spec)
    return _LOGITS_FNS[spec]
