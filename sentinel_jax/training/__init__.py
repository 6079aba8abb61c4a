"""Training: loss, optimiser, jitted steps, the loop, checkpoints, sharding.

Entry points: :func:`train` (fits a model into a run folder, resumable) and
:func:`load_run` (a finished run's best parameters, spec, vocabulary and
validation threshold, with a ``score`` method for inference).
"""

from sentinel_jax.training.checkpoint import (
    CheckpointError,
    TrainedRun,
    load_run,
)
from sentinel_jax.training.loop import (
    TrainingError,
    TrainingInterruptedError,
    TrainResult,
    train,
)
from sentinel_jax.training.predict import predict_logits, predict_scores

__all__ = [
    "CheckpointError", "TrainResult", "TrainedRun", "TrainingError",
    "TrainingInterruptedError", "load_run", "predict_logits", "predict_scores",
    "train",
]
