"""The spiking next-call predictor: causality, numbers, training, scoring."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel_jax.models.lif import LIFConfig, init_lif_state, lif_step
from sentinel_jax.models.next_call import (
    init_next_call,
    membrane_trajectory,
    next_call_logits,
    next_call_surprise,
)
from sentinel_jax.training.next_call import (
    NextCallSettings,
    SpikingSurpriseModel,
    trace_surprises,
    training_windows,
)

NAMES = 12
CONFIG = LIFConfig()


def _params(seed: int = 0, hidden=(16, 8)) -> dict:
    return init_next_call(jax.random.PRNGKey(seed), name_channels=NAMES,
                          tag_channels=0, hidden=hidden)


def _ids(batch: int, time: int, seed: int = 1) -> jnp.ndarray:
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.integers(1, NAMES, (batch, time)), jnp.int32)


def _no_tags(ids):
    return jnp.zeros_like(ids, jnp.uint32)


def test_each_prediction_sees_only_the_events_before_it():
    params, ids = _params(), _ids(3, 20)
    logits = next_call_logits(params, CONFIG, ids, _no_tags(ids))
    changed = ids.at[:, 9].set((ids[:, 9] % (NAMES - 1)) + 1)
    altered = next_call_logits(params, CONFIG, changed, _no_tags(changed))
    # rows 0..9 predict events 0..9 from events before them: untouched
    np.testing.assert_array_equal(logits[:, :10], altered[:, :10])
    assert not np.allclose(logits[:, 10], altered[:, 10])


def test_the_first_event_is_predicted_from_rest():
    params, ids = _params(), _ids(2, 5)
    logits = next_call_logits(params, CONFIG, ids, _no_tags(ids))
    expected = params["readout"]["bias"].at[0].set(-1e9)
    np.testing.assert_allclose(logits[:, 0], np.broadcast_to(expected, (2, NAMES)))


def test_membranes_match_a_plain_loop_over_layers():
    params, ids = _params(hidden=(6, 5, 4)), _ids(2, 9)
    snn = params["snn"]
    got = np.asarray(membrane_trajectory(snn, CONFIG, ids, _no_tags(ids)))
    names = snn["input"]["name"].at[0].set(0.0)
    states = [init_lif_state(2, units) for units in (6, 5, 4)]
    for t in range(ids.shape[1]):
        current, row, row_spikes = names[ids[:, t]], [], None
        for layer in range(3):
            if layer:  # driven by the spikes of the layer below
                weights = snn["layers"][layer - 1]
                current = row_spikes @ weights["weight"] + weights["bias"]
            states[layer], row_spikes = lif_step(snn["lif"][layer], states[layer],
                                                 current, CONFIG)
            row.append(states[layer].membrane)
        np.testing.assert_allclose(got[t], np.concatenate(row, -1), rtol=1e-5,
                                   atol=1e-6)


def test_surprise_is_the_negative_log_probability_and_zero_at_padding():
    params = _params()
    ids = _ids(2, 8).at[1, 5:].set(0)
    surprise = np.asarray(next_call_surprise(params, CONFIG, ids, _no_tags(ids)))
    logits = np.asarray(next_call_logits(params, CONFIG, ids, _no_tags(ids)),
                        np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    assert probs[..., 0].max() == 0.0  # padding is never predicted
    for b in range(2):
        for t in range(8):
            expected = 0.0 if ids[b, t] == 0 else -np.log(probs[b, t, ids[b, t]])
            assert surprise[b, t] == pytest.approx(expected, rel=1e-4, abs=1e-5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(1, 9), min_size=1, max_size=40),
                min_size=1, max_size=6),
       st.integers(2, 12), st.integers(1, 12))
def test_training_windows_cover_every_event_in_order(traces, window, stride):
    stride = min(stride, window)
    arrays = [np.array(t, np.int32) for t in traces]
    windows = training_windows(arrays, window, stride)
    assert windows.shape[1] == window and windows.dtype == np.int32
    rows = iter(windows)
    for trace in arrays:
        covered = np.zeros(len(trace), bool)
        last = max(len(trace) - window, 0)
        starts = sorted(set(range(0, last + 1, stride)) | {last})
        for start in starts:
            row = next(rows)
            piece = trace[start:start + window]
            np.testing.assert_array_equal(row[:len(piece)], piece)
            assert not row[len(piece):].any()
            covered[start:start + window] = True
        assert covered.all()
    assert next(rows, None) is None


def test_whole_trace_scores_do_not_depend_on_padding_or_batching():
    params = _params()
    rng = np.random.default_rng(3)
    traces = [rng.integers(1, NAMES, n).astype(np.int32) for n in (3, 64, 65, 130)]
    scored = trace_surprises(params, CONFIG, traces)
    for trace, surprise in zip(traces, scored, strict=True):
        alone = next_call_surprise(params, CONFIG, jnp.asarray(trace[None]),
                                   jnp.zeros((1, len(trace)), jnp.uint32))
        np.testing.assert_allclose(surprise, np.asarray(alone)[0], rtol=1e-4,
                                   atol=1e-5)


def test_settings_from_config_follow_the_config():
    from sentinel_jax.config import apply_overrides, load_config

    config = apply_overrides(load_config("configs/adfa.yaml"), [
        "model.reset=zero", "model.refractory=2", "training.next_call_epochs=7"])
    settings = NextCallSettings.from_config(config)
    assert settings.hidden == tuple(config.model.snn_hidden)
    assert settings.lif.reset == "zero" and settings.lif.refractory == 2
    assert settings.epochs == 7 and settings.window == 128
    # the dataclass's own defaults are the config's
    assert NextCallSettings.from_config(load_config(None)).learning_rate == (
        NextCallSettings().learning_rate)
    assert NextCallSettings().epochs == load_config(None).training.next_call_epochs


def test_fitting_on_a_routine_makes_breaking_it_surprising():
    routine = ["open", "read", "mmap", "close", "write"]
    normal = [routine * 12 for _ in range(20)]
    rng = np.random.default_rng(0)
    broken = [list(rng.choice(routine + ["execve", "socket"], 60)) for _ in range(5)]
    model = SpikingSurpriseModel(NextCallSettings(
        hidden=(32,), name_channels=10, window=30, stride=15, epochs=40,
        batch_size=16, learning_rate=0.02))
    # the broken traces are labelled attacks: fit must leave them out
    model.fit(normal + broken, [0] * 20 + [1] * 5)
    assert "execve" not in model.vocabulary and "socket" not in model.vocabulary
    assert model.history[-1] < 0.5 * model.history[0]
    unseen_normal = model.score([routine * 10])
    attack_scores = model.score(broken)
    assert unseen_normal[0] < 0.5 < attack_scores.min()
