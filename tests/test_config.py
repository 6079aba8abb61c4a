"""Config: presets load, overrides apply, and bad input is one clear error."""

from __future__ import annotations

import pytest

from sentinel_jax.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    load_config,
    save_config,
)


def test_every_preset_loads(repo_root):
    for path in sorted((repo_root / "configs").glob("*.yaml")):
        config = load_config(path)
        assert config.name == path.stem


def test_default_preset_has_reference_settings(repo_root):
    config = load_config(repo_root / "configs" / "default.yaml")
    assert config.data.num_samples == 50_000
    assert config.data.sequence_length == 64
    assert (config.data.feature_dim, config.data.name_channels) == (128, 96)
    assert config.tag_channels == 32
    assert config.data.normal_ratio == 0.7
    assert (config.training.epochs, config.training.batch_size) == (100, 256)
    assert config.training.learning_rate == 1e-3
    assert config.training.warmup_epochs == 10
    assert config.training.early_stopping_patience == 15
    assert config.model.snn_hidden == [128, 64, 32]
    assert config.model.kan_hidden == [64, 32]
    assert (config.model.spike_threshold, config.model.membrane_decay) == (0.5, 0.9)
    assert config.model.num_timesteps == 10
    assert (config.model.spline_order, config.model.grid_size) == (3, 5)
    assert (
        config.symbolic.sr_population,
        config.symbolic.sr_generations,
        config.symbolic.sr_max_complexity,
    ) == (100, 50, 20)
    assert (config.monitor.entropy_window, config.monitor.entropy_threshold) == (
        1000,
        0.85,
    )


def test_overrides_parse_values_and_flat_reference_names():
    config = apply_overrides(
        Config(),
        [
            "training.epochs=5",
            "model.snn_hidden=[16, 8]",
            "learning_rate=0.01",
            "model.encoding=rate",
            "training.progress=false",
        ],
    )
    assert config.training.epochs == 5
    assert config.model.snn_hidden == [16, 8]
    assert config.training.learning_rate == 0.01
    assert config.model.encoding == "rate"
    assert config.training.progress is False


def test_int_is_accepted_where_a_float_is_expected():
    config = apply_overrides(Config(), ["training.learning_rate=1"])
    assert isinstance(config.training.learning_rate, float)


@pytest.mark.parametrize(
    "override, message",
    [
        ("training.epoch=5", "unknown key training.epoch"),
        ("trainer.epochs=5", "unknown section 'trainer'"),
        ("training.epochs=five", "training.epochs: expected an integer"),
        ("training.epochs=0", "training.epochs: expected a value >= 1"),
        ("data.normal_ratio=1.5", "data.normal_ratio: expected a value <= 1.0"),
        ("model.encoding=spikes", "model.encoding: expected one of event, rate"),
        ("model.snn_hidden=12", "model.snn_hidden: expected a list"),
        ("training.progress=maybe", "training.progress: expected true or false"),
        ("epochs", "expected section.key=value"),
        ("seed=1", "ambiguous key 'seed'"),
        ("data.name_channels=128", "must be below data.feature_dim"),
    ],
)
def test_bad_override_names_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        apply_overrides(Config(), [override])


def test_bad_file_names_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  epochs: -3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: training.epochs"):
        load_config(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("training: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")


def test_saved_config_loads_back_equal(tmp_path):
    config = apply_overrides(Config(), ["training.epochs=7", "name=check"])
    path = save_config(config, tmp_path / "run" / "config.yaml")
    assert load_config(path) == config
    assert config_from_dict({}) == Config()
