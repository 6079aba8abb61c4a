"""Training and scoring of the spiking next-call predictor (normal only).

:class:`SpikingSurpriseModel` fits :mod:`sentinel_jax.models.next_call` on
windows of normal traces (attack traces, if labelled, are left out: it must
never see one) and scores whole traces by mean surprise, each call predicted
from every call before it in its trace. It has the ``fit(traces, labels)`` /
``score(traces)`` interface of the n-gram baselines, so the ADFA-LD protocols
run it beside them, including the normal-only anomaly protocol.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from sentinel_jax.config import Config
from sentinel_jax.data.syscalls import PAD_ID, Vocabulary
from sentinel_jax.data.traces import window_starts
from sentinel_jax.models.hybrid import HybridSpec
from sentinel_jax.models.lif import LIFConfig
from sentinel_jax.models.next_call import init_next_call, next_call_surprise
from sentinel_jax.training.state import make_optimizer

logger = logging.getLogger(__name__)

Names = Sequence[str]

# Whole traces are scored padded to the next power of two of at least this
# many events, so a run compiles a handful of shapes, not one per length.
_SHORTEST_BUCKET = 64
# Events scored per device call (batch * padded length).
_EVENTS_PER_CALL = 1 << 17


@dataclasses.dataclass(frozen=True)
class NextCallSettings:
    """Shape of the predictor and how it is trained.

    Attributes:
        hidden: units per LIF layer.
        threshold: initial firing threshold.
        decay: initial membrane decay.
        lif: static LIF settings.
        name_channels: vocabulary size, padding and OTHER included.
        window: events per training window.
        stride: events between training window starts.
        epochs: passes over the training windows.
        batch_size: windows per optimiser step.
        learning_rate: peak AdamW learning rate (warm-up cosine schedule).
        weight_decay: AdamW decoupled weight decay.
        clip_norm: gradient clipping by global norm.
        warmup_epochs: epochs of linear warm-up.
        seed: initialisation and shuffling seed.
        progress: a progress bar over epochs.
    """

    hidden: tuple[int, ...] = (128, 64, 32)
    threshold: float = 0.5
    decay: float = 0.9
    lif: LIFConfig = LIFConfig()
    name_channels: int = 96
    window: int = 128
    stride: int = 64
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-2
    weight_decay: float = 1e-4
    clip_norm: float = 1.0
    warmup_epochs: int = 1
    seed: int = 0
    progress: bool = False

    @classmethod
    def from_config(cls, config: Config) -> NextCallSettings:
        """The spiking branch's shape and LIF settings (``model``), the
        vocabulary size (``data``) and the ``training.next_call_*`` schedule."""
        model, training = config.model, config.training
        return cls(
            hidden=tuple(model.snn_hidden), threshold=model.spike_threshold,
            decay=model.membrane_decay,
            lif=HybridSpec.from_config(model, config.data).lif_config,
            name_channels=config.data.name_channels,
            window=training.next_call_window, stride=training.next_call_stride,
            epochs=training.next_call_epochs,
            batch_size=training.next_call_batch_size,
            learning_rate=training.next_call_learning_rate,
            weight_decay=training.weight_decay, clip_norm=training.clip_norm,
            warmup_epochs=min(training.warmup_epochs, training.next_call_epochs - 1),
            seed=training.seed, progress=training.progress)


def training_windows(traces_ids: Sequence[np.ndarray], window: int,
                     stride: int) -> np.ndarray:
    """Cuts traces into right-padded windows, ``int32 [windows, window]``.

    The windows of :func:`sentinel_jax.data.traces.window_starts`: one padded
    window for a short trace, else one every ``stride`` events and a last one
    ending at the trace's end.
    """
    rows = []
    for ids in traces_ids:
        for start in window_starts(len(ids), window, stride):
            row = np.zeros(window, np.int32)
            piece = ids[start:start + window]
            row[:len(piece)] = piece
            rows.append(row)
    if not rows:
        raise ValueError("no events to train the next-call predictor on")
    return np.stack(rows)


def _loss(params: dict, lif: LIFConfig, ids: jax.Array) -> jax.Array:
    """Mean surprise per real event of the batch (nats)."""
    surprise = next_call_surprise(params, lif, ids, jnp.zeros_like(ids, jnp.uint32))
    events = jnp.sum(ids != PAD_ID)
    return jnp.sum(surprise) / jnp.maximum(events, 1)


@partial(jax.jit, static_argnames=("lif", "optimizer"), donate_argnums=(0, 1))
def _train_step(params: dict, opt_state, ids: jax.Array, *, lif: LIFConfig,
                optimizer: optax.GradientTransformation):
    loss, grads = jax.value_and_grad(_loss)(params, lif, ids)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


@partial(jax.jit, static_argnames=("lif",))
def _surprise(params: dict, lif: LIFConfig, ids: jax.Array) -> jax.Array:
    return next_call_surprise(params, lif, ids, jnp.zeros_like(ids, jnp.uint32))


def fit_next_call(windows: np.ndarray, settings: NextCallSettings
                  ) -> tuple[dict, list[float]]:
    """Fits the predictor on name windows (no tags).

    Args:
        windows: ``int32 [windows, window]`` name ids, 0 for padding.
        settings: shape and optimisation.

    Returns:
        ``(params, mean training surprise per epoch)``.
    """
    key = jax.random.PRNGKey(settings.seed)
    init_key, shuffle_key = jax.random.split(key)
    params = init_next_call(init_key, name_channels=settings.name_channels,
                            tag_channels=0, hidden=settings.hidden,
                            threshold=settings.threshold, decay=settings.decay)
    batch = min(settings.batch_size, len(windows))
    steps_per_epoch = len(windows) // batch
    optimizer = make_optimizer(settings.learning_rate, settings.weight_decay,
                               settings.clip_norm,
                               settings.warmup_epochs * steps_per_epoch,
                               settings.epochs * steps_per_epoch)
    opt_state = optimizer.init(params)
    rng = np.random.default_rng(int(jax.random.randint(shuffle_key, (), 0, 1 << 30)))
    history = []
    for epoch in tqdm(range(settings.epochs), desc="next-call epochs",
                      disable=not settings.progress):
        order = rng.permutation(len(windows))
        losses = []
        for step in range(steps_per_epoch):
            rows = order[step * batch:(step + 1) * batch]
            params, opt_state, loss = _train_step(
                params, opt_state, jnp.asarray(windows[rows]),
                lif=settings.lif, optimizer=optimizer)
            losses.append(loss)
        history.append(float(np.mean(jax.device_get(losses))))
        logger.info("next-call epoch %d/%d: surprise %.4f nats", epoch + 1,
                    settings.epochs, history[-1])
    return params, history


def trace_surprises(params: dict, lif: LIFConfig,
                    traces_ids: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Surprise of every call of every trace, each predicted from all the
    calls before it in its trace.

    Returns:
        Per trace, ``float32 [length]`` in nats.
    """
    result: list[np.ndarray | None] = [None] * len(traces_ids)
    buckets: dict[int, list[int]] = {}
    for index, ids in enumerate(traces_ids):
        length = max(len(ids), 1)
        padded = max(_SHORTEST_BUCKET, 1 << math.ceil(math.log2(length)))
        buckets.setdefault(padded, []).append(index)
    for padded, members in sorted(buckets.items()):
        per_call = max(_EVENTS_PER_CALL // padded, 1)
        for begin in range(0, len(members), per_call):
            chunk = members[begin:begin + per_call]
            ids = np.zeros((per_call, padded), np.int32)  # one shape per bucket
            for row, index in enumerate(chunk):
                ids[row, :len(traces_ids[index])] = traces_ids[index]
            surprise = np.asarray(_surprise(params, lif, jnp.asarray(ids)))
            for row, index in enumerate(chunk):
                result[index] = surprise[row, :len(traces_ids[index])]
    return result  # type: ignore[return-value]


class SpikingSurpriseModel:
    """Normal-only detector: a spiking next-call predictor, traces scored by
    their mean surprise per call.

    Args:
        settings: the predictor's shape and training.
    """

    def __init__(self, settings: NextCallSettings = NextCallSettings()) -> None:
        self.settings = settings
        self.vocabulary: Vocabulary | None = None
        self.params: dict | None = None
        self.history: list[float] = []

    def fit(self, traces: Sequence[Names],
            labels: Sequence[int] | None = None) -> SpikingSurpriseModel:
        """Fits on the normal traces (label 0, or all when unlabelled)."""
        normal = [trace for index, trace in enumerate(traces)
                  if labels is None or not labels[index]]
        if not normal:
            raise ValueError("no normal traces to fit the next-call predictor on")
        self.vocabulary = Vocabulary.build(normal, self.settings.name_channels)
        windows = training_windows([self.vocabulary.lookup(t) for t in normal],
                                   self.settings.window, self.settings.stride)
        self.params, self.history = fit_next_call(windows, self.settings)
        return self

    def surprise(self, traces: Sequence[Names]) -> list[np.ndarray]:
        """Per trace, the surprise of each call (nats)."""
        if self.params is None or self.vocabulary is None:
            raise ValueError("fit the model before scoring")
        return trace_surprises(self.params, self.settings.lif,
                               [self.vocabulary.lookup(t) for t in traces])

    def score(self, traces: Sequence[Names]) -> np.ndarray:
        """Mean surprise per trace, ``float64 [traces]`` (0 for empty ones)."""
        return np.array([float(s.mean()) if s.size else 0.0
                         for s in self.surprise(traces)])
