"""Typed, validated configuration.

A config is a frozen :class:`Config` made of one frozen dataclass per section.
Presets live in ``configs/*.yaml``; :func:`load_config` reads one, and
:func:`apply_overrides` applies ``section.key=value`` strings from the command
line. Every key, type and range is checked, and a bad one raises
:class:`ConfigError` with a message that names the key and what was expected.

Only entry points (experiment scripts, the menu) read a config; library
functions take explicit arguments.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from sentinel_jax.atomic import write_text_atomic
from sentinel_jax.errors import InputError


class ConfigError(InputError):
    """A config file or override names an unknown key or a bad value."""


def _field(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[Any, ...] | None = None,
    doc: str = "",
) -> Any:
    """A dataclass field with an allowed range or set of choices."""
    metadata = {"low": low, "high": high, "choices": choices, "doc": doc}
    if isinstance(default, list | dict):
        return dataclasses.field(
            default_factory=lambda: type(default)(default), metadata=metadata
        )
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where traces come from and how they become windows."""

    source: str = _field("synthetic", choices=("synthetic", "adfa", "strace", "pidnum"))
    input: str = _field("", doc="path for adfa/strace/pidnum sources")
    num_samples: int = _field(50_000, low=1, doc="windows to generate (synthetic)")
    normal_ratio: float = _field(0.7, low=0.0, high=1.0)
    sequence_length: int = _field(64, low=2, high=4096, doc="window length (time)")
    stride: int = _field(32, low=1, high=4096)
    feature_dim: int = _field(128, low=8, high=4096, doc="channels in total")
    name_channels: int = _field(96, low=2, high=4096)
    val_fraction: float = _field(0.15, low=0.0, high=0.5)
    test_fraction: float = _field(0.15, low=0.0, high=0.5)
    attack_intensity: float = _field(
        0.5, low=0.0, high=1.0, doc="share of an attack window made of attack events"
    )
    mimicry: float = _field(
        0.3, low=0.0, high=1.0, doc="share of attacks using only common calls"
    )
    noise: float = _field(0.05, low=0.0, high=1.0, doc="background noise level")
    seed: int = _field(0, low=0)

    def dataset_layout(self) -> dict[str, Any]:
        """The keyword arguments of ``store.build_dataset`` this section sets:
        channels, window length and stride, split shares and seed."""
        return {
            "name_channels": self.name_channels, "channels": self.feature_dim,
            "time": self.sequence_length, "stride": self.stride,
            "val_fraction": self.val_fraction, "test_fraction": self.test_fraction,
            "seed": self.seed,
        }


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The hybrid SNN-KAN detector and its branches."""

    encoding: str = _field("event", choices=("event", "rate"))
    snn_hidden: list[int] = _field([128, 64, 32])
    spike_threshold: float = _field(0.5, low=1e-6, high=100.0)
    membrane_decay: float = _field(0.9, low=1e-4, high=0.9999)
    num_timesteps: int = _field(10, low=1, high=1000)
    refractory: int = _field(0, low=0, high=100)
    reset: str = _field("subtract", choices=("subtract", "zero"))
    surrogate: str = _field(
        "fast_sigmoid", choices=("fast_sigmoid", "arctan", "triangle")
    )
    surrogate_slope: float = _field(10.0, low=1e-3, high=1000.0)
    kan_hidden: list[int] = _field([64, 32])
    spline_order: int = _field(3, low=1, high=8)
    grid_size: int = _field(5, low=1, high=100)
    grid_range: list[float] = _field([-1.0, 1.0])
    base_activation: str = _field("silu", choices=("silu", "gelu", "tanh"))
    fusion_hidden: list[int] = _field([32])
    fusion_mode: str = _field("concat", choices=("concat",))


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Optimisation, early stopping and checkpoints."""

    epochs: int = _field(100, low=1, high=100_000)
    batch_size: int = _field(256, low=1, high=1 << 20)
    learning_rate: float = _field(1e-3, low=1e-8, high=10.0)
    weight_decay: float = _field(1e-4, low=0.0, high=1.0)
    warmup_epochs: int = _field(10, low=0, high=100_000)
    early_stopping_patience: int = _field(15, low=0, high=100_000)
    early_stopping_metric: str = _field(
        "val_roc_auc", choices=("val_roc_auc", "val_loss")
    )
    clip_norm: float = _field(1.0, low=1e-6, high=1e6)
    class_weights: list[float] = _field([1.0, 1.0])
    distill_weight: float = _field(0.1, low=0.0, high=100.0)
    distill_temperature: float = _field(2.0, low=1e-3, high=100.0)
    spike_rate_weight: float = _field(0.0, low=0.0, high=100.0)
    target_spike_rate: float = _field(0.1, low=0.0, high=1.0)
    kan_l1_weight: float = _field(0.0, low=0.0, high=100.0)
    kan_entropy_weight: float = _field(0.0, low=0.0, high=100.0)
    threshold_rule: str = _field("best_f1", choices=("best_f1", "target_fpr"))
    target_fpr: float = _field(0.01, low=0.0, high=1.0)
    seed: int = _field(0, low=0)
    progress: bool = _field(True)
    # The normal-only spiking next-call predictor (evaluate_adfa.py's
    # ``snn_surprise``): its own windows and schedule, the model's shape.
    next_call_window: int = _field(128, low=2, high=1 << 20)
    next_call_stride: int = _field(64, low=1, high=1 << 20)
    next_call_epochs: int = _field(30, low=1, high=100_000)
    next_call_batch_size: int = _field(64, low=1, high=1 << 20)
    next_call_learning_rate: float = _field(0.01, low=1e-8, high=10.0)


@dataclasses.dataclass(frozen=True)
class SymbolicConfig:
    """Genetic programming that distils the scorer into an equation."""

    sr_population: int = _field(100, low=4, high=1_000_000)
    sr_generations: int = _field(50, low=1, high=100_000)
    sr_max_complexity: int = _field(20, low=1, high=1000)
    sr_max_height: int = _field(8, low=1, high=64)
    sr_samples: int = _field(4000, low=10, high=10_000_000)
    sr_processes: int = _field(1, low=1, high=256)
    seed: int = _field(0, low=0)


@dataclasses.dataclass(frozen=True)
class MonitorConfig:
    """Host monitors: entropy over host metrics and file integrity."""

    entropy_window: int = _field(1000, low=2, high=10_000_000)
    entropy_threshold: float = _field(0.85, low=0.0, high=1.0)
    entropy_bins: int = _field(16, low=2, high=65536)
    integrity_paths: list[str] = _field(["/etc"])


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole configuration, one frozen dataclass per section."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    symbolic: SymbolicConfig = dataclasses.field(default_factory=SymbolicConfig)
    monitor: MonitorConfig = dataclasses.field(default_factory=MonitorConfig)
    name: str = "default"

    def __post_init__(self) -> None:
        if self.data.name_channels >= self.data.feature_dim:
            raise ConfigError(
                f"data.name_channels ({self.data.name_channels}) must be below "
                f"data.feature_dim ({self.data.feature_dim}): the rest are tag channels"
            )
        if self.data.val_fraction + self.data.test_fraction >= 1.0:
            raise ConfigError(
                "data.val_fraction + data.test_fraction must be below 1.0"
            )
        low, high = self.model.grid_range
        if not low < high:
            raise ConfigError(
                f"model.grid_range must be [low, high] with low < high, got {low, high}"
            )
        if len(self.training.class_weights) != 2:
            raise ConfigError("training.class_weights must hold two numbers")

    @property
    def tag_channels(self) -> int:
        """Channels left for tags after the name channels."""
        return self.data.feature_dim - self.data.name_channels


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
    "symbolic": SymbolicConfig,
    "monitor": MonitorConfig,
}


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Checks ``value`` against ``annotation``, converting ints to floats."""
    origin = typing.get_origin(annotation)
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if not isinstance(value, list | tuple):
            raise ConfigError(
                f"{key}: expected a list of {_type_name(item_type)}, got {value!r}"
            )
        return [_coerce(f"{key}[{i}]", item, item_type) for i, item in enumerate(value)]
    if origin in (types.UnionType, typing.Union):
        raise ConfigError(f"{key}: union types are not supported in configs")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {_type_name(annotation)}")


def _check_range(key: str, value: Any, metadata: Mapping[str, Any]) -> None:
    values = value if isinstance(value, list) else [value]
    choices = metadata.get("choices")
    low, high = metadata.get("low"), metadata.get("high")
    for item in values:
        if choices is not None and item not in choices:
            raise ConfigError(
                f"{key}: expected one of {', '.join(map(str, choices))}, got {item!r}"
            )
        if low is not None and item < low:
            raise ConfigError(f"{key}: expected a value >= {low}, got {item!r}")
        if high is not None and item > high:
            raise ConfigError(f"{key}: expected a value <= {high}, got {item!r}")


def _build_section(name: str, section_type: type, values: Mapping[str, Any]) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{name}: expected a mapping of keys, got {values!r}")
    hints = typing.get_type_hints(section_type)
    fields = {field.name: field for field in dataclasses.fields(section_type)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(
                f"unknown key {name}.{key}; known keys in {name}: "
                f"{', '.join(sorted(fields))}"
            )
        coerced = _coerce(f"{name}.{key}", value, hints[key])
        _check_range(f"{name}.{key}", coerced, fields[key].metadata)
        kwargs[key] = coerced
    return section_type(**kwargs)


def config_from_dict(raw: Mapping[str, Any]) -> Config:
    """Builds a validated :class:`Config` from nested mappings.

    Raises:
        ConfigError: on an unknown section or key, a wrong type or a value out
            of range.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"config: expected a mapping of sections, got {type(raw).__name__}"
        )
    unknown = set(raw) - set(SECTIONS) - {"name"}
    if unknown:
        raise ConfigError(
            f"unknown config section {sorted(unknown)[0]!r}; known sections: "
            f"{', '.join(SECTIONS)}"
        )
    sections = {
        name: _build_section(name, section_type, raw.get(name, {}) or {})
        for name, section_type in SECTIONS.items()
    }
    name = raw.get("name", "default")
    if not isinstance(name, str):
        raise ConfigError(f"name: expected a string, got {name!r}")
    return Config(name=name, **sections)


def config_to_dict(config: Config) -> dict[str, Any]:
    """The config as plain nested dicts, ready for YAML or JSON."""
    return dataclasses.asdict(config)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Loads a YAML preset; ``None`` gives the built-in defaults.

    Raises:
        ConfigError: if the file is missing, is not valid YAML or holds a bad key.
    """
    if path is None:
        return Config()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            f"{path}: cannot read config file ({error.strerror})"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    try:
        return config_from_dict(raw or {})
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def _find_section(key: str) -> str:
    """The unique section holding ``key``, for flat reference-style names."""
    owners = [
        name
        for name, section_type in SECTIONS.items()
        if key in {field.name for field in dataclasses.fields(section_type)}
    ]
    if len(owners) == 1:
        return owners[0]
    if not owners:
        raise ConfigError(
            f"unknown key {key!r}: expected section.key, e.g. training.epochs"
        )
    raise ConfigError(
        f"ambiguous key {key!r}: write one of "
        f"{', '.join(f'{owner}.{key}' for owner in owners)}"
    )


def apply_overrides(config: Config, overrides: Iterable[str]) -> Config:
    """Applies ``section.key=value`` strings; values are parsed as YAML.

    A bare ``key=value`` is accepted when exactly one section has that key, so
    the reference design's flat names (``epochs=5``) work too.

    Raises:
        ConfigError: on a malformed override, unknown key or bad value.
    """
    raw = config_to_dict(config)
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override {override!r}: expected section.key=value")
        dotted, text = override.split("=", 1)
        dotted = dotted.strip()
        if dotted == "name":
            raw["name"] = text
            continue
        if "." in dotted:
            section, key = dotted.split(".", 1)
        else:
            section, key = _find_section(dotted), dotted
        if section not in SECTIONS:
            raise ConfigError(
                f"override {override!r}: unknown section {section!r}; known "
                f"sections: {', '.join(SECTIONS)}"
            )
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        raw[section][key] = value
    return config_from_dict(raw)


def save_config(config: Config, path: str | os.PathLike[str]) -> Path:
    """Writes the resolved config as YAML, atomically (temporary name, rename)."""
    path = Path(path)
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    write_text_atomic(path, text)
    return path
