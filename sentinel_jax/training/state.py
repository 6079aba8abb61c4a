"""Training state and optimiser.

The state is a plain pytree (:class:`TrainState`): the step counter, the model
parameters and the optimiser state. It is what a checkpoint holds and what the
jitted train step carries from one step to the next.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

Params = Any


class TrainState(NamedTuple):
    """What changes during training.

    Attributes:
        step: ``int32 []`` optimiser steps taken.
        params: the model parameter pytree.
        opt_state: the optax state of :func:`make_optimizer`'s transform.
    """

    step: jax.Array
    params: Params
    opt_state: optax.OptState


def make_schedule(learning_rate: float, warmup_steps: int,
                  total_steps: int) -> optax.Schedule:
    """Linear warm-up from 0 to ``learning_rate``, then cosine decay to 1%.

    Args:
        learning_rate: the peak learning rate.
        warmup_steps: steps of linear warm-up (0 for none).
        total_steps: all optimiser steps of the run, warm-up included.
    """
    total_steps = max(int(total_steps), 1)
    warmup_steps = min(max(int(warmup_steps), 0), total_steps - 1)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=learning_rate, warmup_steps=warmup_steps,
        decay_steps=total_steps, end_value=learning_rate * 0.01)


def make_optimizer(learning_rate: float, weight_decay: float, clip_norm: float,
                   warmup_steps: int, total_steps: int
                   ) -> optax.GradientTransformation:
    """``clip_by_global_norm`` then AdamW on the warm-up cosine schedule.

    Args:
        learning_rate: peak learning rate.
        weight_decay: decoupled weight decay of AdamW.
        clip_norm: maximum global gradient norm.
        warmup_steps: optimiser steps of linear warm-up.
        total_steps: optimiser steps of the whole run.
    """
    schedule = make_schedule(learning_rate, warmup_steps, total_steps)
    return optax.chain(
        optax.clip_by_global_norm(clip_norm),
        optax.adamw(schedule, weight_decay=weight_decay))


def steps_per_epoch(train_windows: int, batch_size: int) -> int:
    """Optimiser steps in one epoch (the last batch is padded, not dropped)."""
    if train_windows <= 0:
        raise ValueError("the training split holds no windows")
    return -(-train_windows // batch_size)


def init_train_state(params: Params,
                     optimizer: optax.GradientTransformation) -> TrainState:
    """A fresh state at step 0 for ``params``."""
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=optimizer.init(params))
