"""The synthetic world's public face: the reference design's generator.

``SyntheticDatasetGenerator(config).generate_dataset()`` returns the encoded
windows, their labels and metadata, as the reference design's ``X, y,
metadata``; ``save_dataset`` writes them in the data layer's format. The
world itself is built in three modules:

* :mod:`~sentinel_jax.data.synthetic_profiles`: benign program profiles,
  phase-structured Markov models fitted to real ``strace -f`` recordings;
* :mod:`~sentinel_jax.data.synthetic_attacks`: ten attack families as
  behaviour motifs, three tool variants each, and mimicry;
* :mod:`~sentinel_jax.data.synthetic_world`: attack runs spliced into host
  processes, the knobs, and the window plan.

Synthetic traces take no special path: they pass through
:func:`sentinel_jax.data.store.build_dataset` like real ones. Only the
attacker's motif events are marked in ``attack_mask``, so a window is an
attack window exactly when it holds one of them. A trace id says where a
trace came from, ``family:variant:host:run:process`` (``normal:-:host:n:0``
for benign); all processes of one attack run share their group, so no run
spans two splits. Output is bit-for-bit reproducible by seed.
"""

from __future__ import annotations

import dataclasses
import time as timer
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from sentinel_jax.config import Config, ConfigError, DataConfig, config_from_dict
from sentinel_jax.data import store
from sentinel_jax.data.synthetic_attacks import FAMILIES, MOTIFS
from sentinel_jax.data.synthetic_profiles import load_profile_files
from sentinel_jax.data.synthetic_world import (
    SOURCE,
    Settings,
    World,
    generate_synthetic_traces,
    window_count,
)
from sentinel_jax.data.traces import Trace

__all__ = [
    "FAMILIES", "GeneratedDataset", "Settings", "SyntheticDatasetGenerator",
    "World", "describe_trace", "generate_synthetic_traces", "settings_from",
    "window_count",
]


def settings_from(config: Config | DataConfig | Mapping[str, Any] | None
                  ) -> tuple[Settings, DataConfig]:
    """Reads a :class:`Config`, its data section, or the reference dict.

    The reference design's dict (``num_samples``, ``normal_ratio``,
    ``sequence_length``, ``feature_dim``) maps onto the data section; any
    other data key may be given too.

    Raises:
        ConfigError: on an unknown key or a bad value.
    """
    if config is None:
        data = DataConfig()
    elif isinstance(config, Config):
        data = config.data
    elif isinstance(config, DataConfig):
        data = config
    elif isinstance(config, Mapping):
        data = config_from_dict({"data": dict(config)}).data
    else:
        raise ConfigError(f"expected a Config, DataConfig or dict of data keys, "
                          f"got {type(config).__name__}")
    settings = Settings(
        num_samples=data.num_samples, normal_ratio=data.normal_ratio,
        time=data.sequence_length, stride=data.stride,
        attack_intensity=data.attack_intensity, mimicry=data.mimicry,
        noise=data.noise, seed=data.seed)
    return settings, data


class GeneratedDataset(NamedTuple):
    """What :meth:`SyntheticDatasetGenerator.generate_dataset` returns.

    Unpacks as the reference design's ``X, y, metadata``: ``windows`` is the
    encoded :class:`~sentinel_jax.data.store.Dataset` (ids, tags, hist,
    splits...), ``labels`` its ``int32 [batch]`` labels.
    """

    windows: store.Dataset
    labels: np.ndarray
    metadata: dict[str, Any]


class SyntheticDatasetGenerator:
    """The reference design's generator, over the synthetic world.

    Example::

        gen = SyntheticDatasetGenerator({"num_samples": 50000,
                                         "normal_ratio": 0.7,
                                         "sequence_length": 64,
                                         "feature_dim": 128})
        X, y, metadata = gen.generate_dataset()
        gen.save_dataset(X, y, metadata, "./data/synthetic")
    """

    def __init__(self, config: Config | DataConfig | Mapping[str, Any] | None = None,
                 progress: bool = False) -> None:
        self.settings, self.data_config = settings_from(config)
        self.progress = progress

    def generate_traces(self) -> list[Trace]:
        """Benign and attack traces (see :func:`generate_synthetic_traces`)."""
        return generate_synthetic_traces(self.settings, self.progress)

    def generate_dataset(self) -> GeneratedDataset:
        """Generates, splits by group and encodes ``num_samples`` windows."""
        started = timer.perf_counter()
        traces = self.generate_traces()
        generated = timer.perf_counter()
        data = self.data_config
        metadata = {
            "source": SOURCE,
            "generator": dataclasses.asdict(self.settings),
            "families": list(FAMILIES),
            "variants": {family: [m.variant for m in motifs]
                         for family, motifs in MOTIFS.items()},
            "profiles": [raw["name"] for raw in load_profile_files()],
            "traces": len(traces),
            "mimicry_traces": sum(":mimicry:" in t.trace_id for t in traces),
        }
        dataset = store.build_dataset(traces, **data.dataset_layout(),
                                      info=metadata)
        metadata["seconds"] = {"generate": round(generated - started, 3),
                               "encode": round(timer.perf_counter() - generated, 3)}
        return GeneratedDataset(dataset, dataset.labels, metadata)

    def save_dataset(self, windows: store.Dataset, labels: np.ndarray | None = None,
                     metadata: Mapping[str, Any] | None = None,
                     folder: str | Path = "data/synthetic") -> Path:
        """Writes ``dataset.npz`` and ``metadata.json`` into ``folder``.

        Raises:
            ValueError: when ``labels`` are not the dataset's own.
        """
        if labels is not None and not np.array_equal(labels, windows.labels):
            raise ValueError("labels do not match the dataset's windows; pass the "
                             "y returned with X by generate_dataset")
        if metadata is not None:
            windows = dataclasses.replace(windows,
                                          info={**windows.info, **metadata})
        return store.save_dataset(windows, folder)


def describe_trace(trace_id: str) -> dict[str, str]:
    """Splits a synthetic trace id into family, variant, host, run, process."""
    parts = trace_id.split(":")
    if len(parts) != 5:
        raise ValueError(f"{trace_id!r} is not a synthetic trace id "
                         f"(family:variant:host:run:process)")
    return dict(zip(("family", "variant", "host", "run", "process"), parts,
                    strict=True))
