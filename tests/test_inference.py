"""InferenceEngine: encoding as in training, stable and batch-independent
scores, no compilation after load, attribution, the equation scorer, bad input."""

from __future__ import annotations

import json

import chex
import jax
import numpy as np
import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st
from tiny_datasets import BURSTS, NORMAL_CALLS

from sentinel_jax.data.encode import encode_traces
from sentinel_jax.data.syscalls import syscall_number
from sentinel_jax.data.tags import tag_mask
from sentinel_jax.data.traces import Event, Trace, window_starts
from sentinel_jax.errors import InputError
from sentinel_jax.inference import InferenceEngine
from sentinel_jax.inference_result import DetectionResult
from sentinel_jax.scoring import compile_window_scores, occlusion_windows
from sentinel_jax.symbolic.equation import Equation
from sentinel_jax.symbolic.simplify import SYMPY_PROTECTED

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def _sequence(length: int, seed: int = 0, attack: bool = False) -> list[Event]:
    rng = np.random.default_rng(seed)
    events = [Event(str(name)) for name in rng.choice(NORMAL_CALLS, size=length)]
    if attack:
        for start in range(1, length - 4, 9):
            for offset, (name, tags) in enumerate(BURSTS["reverse_shell"]):
                events[start + offset] = Event(name, tag_mask(tags))
    return events


@pytest.fixture(scope="module")
def compile_events():
    """Names of the jax compilations seen since the fixture started."""
    seen: list[str] = []

    def listener(name, duration, **kwargs):
        if name == COMPILE_EVENT:
            seen.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    yield seen
    jax.monitoring.unregister_event_duration_listener(listener)


def test_detect_returns_a_consistent_result(tiny_engine):
    events = _sequence(50, attack=True)
    result = tiny_engine.detect(events, sequence_id="job-1")

    assert isinstance(result, DetectionResult)
    assert result.sequence_id == "job-1"
    time, stride = tiny_engine.time_steps, tiny_engine.stride
    np.testing.assert_array_equal(result.window_starts, window_starts(50, time, stride))
    chex.assert_shape(result.window_scores, (len(result.window_starts),))
    assert result.anomaly_score == pytest.approx(float(result.window_scores.max()))
    assert result.top_window == int(np.argmax(result.window_scores))
    assert result.is_anomalous == (result.anomaly_score >= result.threshold)
    assert 0.5 <= result.confidence <= 1.0
    start = result.window_starts[result.top_window]
    contributions = [event.contribution for event in result.top_events]
    assert len(result.top_events) == tiny_engine.top_k
    assert contributions == sorted(contributions, reverse=True)
    for event in result.top_events:
        assert start <= event.position < start + time
        assert event.name == events[event.position].name
        assert list(event.tags) == events[event.position].tag_names
    assert json.loads(json.dumps(result.to_json()))["num_events"] == 50


def test_window_scores_equal_the_training_encoding(tiny_engine, tiny_run):
    traces = [Trace.from_names([e.name for e in _sequence(n, seed=n)])
              for n in (5, 16, 17, 40, 99)]
    windows = encode_traces(traces, tiny_engine.vocabulary, tiny_engine.time_steps,
                            tiny_engine.stride, tiny_engine.channels)
    expected = tiny_engine.run.score(windows.ids, windows.tags, windows.hist)
    results = tiny_engine.detect_batch(traces)
    got = np.concatenate([result.window_scores for result in results])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_scores_are_stable_and_batch_equals_one_by_one(tiny_engine):
    sequences = [_sequence(n, seed=n, attack=n % 2 == 0)
                 for n in (1, 3, 15, 16, 17, 24, 33, 200, 401)]
    batch = tiny_engine.detect_batch(sequences, [str(n) for n in range(9)])
    for index, sequence in enumerate(sequences):
        alone = tiny_engine.detect(sequence, sequence_id=str(index))
        again = tiny_engine.detect(sequence)
        np.testing.assert_array_equal(alone.window_scores, again.window_scores)
        np.testing.assert_allclose(batch[index].window_scores, alone.window_scores,
                                   rtol=1e-5, atol=1e-6)
        assert batch[index].sequence_id == str(index)
        assert [e.position for e in batch[index].top_events] == [
            e.position for e in alone.top_events]


def test_nothing_compiles_after_load(tiny_engine, compile_events):
    assert tiny_engine.scorer.buckets == (1, 8, 16)
    tiny_engine.detect(_sequence(20))  # warm-up of the host side
    compile_events.clear()
    for length in (1, 2, 15, 16, 17, 31, 64, 130, 700, 2500):
        tiny_engine.detect(_sequence(length, seed=length))
    tiny_engine.detect_batch([_sequence(n, seed=n) for n in range(1, 60)])
    tiny_engine.detect([0, 1, 2, 3], arch="i386")
    assert compile_events == []


def test_baked_parameters_score_as_passed_ones_and_never_go_stale(tiny_engine):
    scorer = tiny_engine.scorer
    rng = np.random.default_rng(0)
    ids = rng.integers(1, len(tiny_engine.vocabulary), (8, scorer.spec.time),
                       dtype=np.int32)
    tags = np.zeros_like(ids, dtype=np.uint32)
    hist = rng.dirichlet(np.ones(scorer.spec.channels), 8).astype(np.float32)
    baked, _ = compile_window_scores(scorer.prepared, scorer.spec, 8, baked=True)
    passed, _ = compile_window_scores(scorer.prepared, scorer.spec, 8, baked=False)
    np.testing.assert_allclose(baked(ids, tags, hist), passed(ids, tags, hist),
                               rtol=1e-5, atol=1e-5)
    # The engine's own bucket of 8 is that same baked executable, reused.
    _, compiled = compile_window_scores(scorer.prepared, scorer.spec, 8, baked=True)
    assert not compiled
    # Other parameters of the same architecture compile their own constants.
    shifted = jax.tree.map(lambda leaf: leaf * 1.5, scorer.prepared)
    other, compiled = compile_window_scores(shifted, scorer.spec, 8, baked=True)
    assert compiled
    other_passed, _ = compile_window_scores(shifted, scorer.spec, 8, baked=False)
    np.testing.assert_allclose(other(ids, tags, hist), other_passed(ids, tags, hist),
                               rtol=1e-5, atol=1e-5)
    assert not np.allclose(other(ids, tags, hist), baked(ids, tags, hist))


def test_attribution_is_the_score_lost_by_deleting_the_event(tiny_engine):
    # Shorter than a window: deleting an event is detecting the rest.
    events = _sequence(11, seed=3, attack=True)
    result = tiny_engine.detect(events)
    for event in result.top_events:
        rest = events[:event.position] + events[event.position + 1:]
        without = tiny_engine.detect(rest, explain=False).anomaly_score
        assert event.contribution == pytest.approx(result.anomaly_score - without,
                                                   abs=1e-5)


def test_names_numbers_and_events_give_the_same_scores(tiny_engine):
    names = ["read", "write", "openat", "close", "mmap", "fstat", "brk"] * 5
    by_name = tiny_engine.detect(names).window_scores
    numbers = [syscall_number(name, "x86_64") for name in names]
    numbers = [syscall_number("open", "x86_64") if n is None else n for n in numbers]
    by_number = tiny_engine.detect(numbers).window_scores
    by_array = tiny_engine.detect(np.asarray(numbers, np.int64)).window_scores
    by_event = tiny_engine.detect([Event(name) for name in names]).window_scores
    i386 = [syscall_number({"mmap": "mmap2", "fstat": "fstat64"}.get(n, n), "i386")
            for n in names]
    i386 = [syscall_number("open", "i386") if n is None else n for n in i386]
    by_i386 = tiny_engine.detect(i386, arch="i386").window_scores
    spelled = ["mmap2" if n == "mmap" else "fstat64" if n == "fstat" else n
               for n in names]
    by_alias = tiny_engine.detect(spelled).window_scores
    for scores in (by_number, by_array, by_event, by_i386, by_alias):
        np.testing.assert_array_equal(scores, by_name)


def test_tags_change_the_score(tiny_engine):
    plain = [Event(e.name) for e in _sequence(16, attack=True)]
    tagged = _sequence(16, attack=True)
    assert (tiny_engine.detect(plain).anomaly_score
            != tiny_engine.detect(tagged).anomaly_score)


def test_unknown_calls_give_a_defined_result(tiny_engine):
    result = tiny_engine.detect(["no_such_call"] * 20 + ["read"] * 5 + [""])
    assert result.unknown_events == 21
    assert np.isfinite(result.anomaly_score)
    numbers = tiny_engine.detect([99999, -1, 0])
    assert numbers.unknown_events == 2 and np.isfinite(numbers.anomaly_score)


@pytest.mark.parametrize("bad, message", [
    ([], "empty"),
    (np.zeros(0, np.int64), "empty"),
    ("read write", "string"),
    (None, "NoneType"),
    (42, "int"),
    (["read", 3], "item 0"),
    ([3.5, 2.0], "item 0"),
    ([True, False], "item 0"),
    ([["read"]], "item 0"),
    (np.zeros((2, 3), np.int32), "1-D"),
    ([Event("read", tags=-1)], "item 0"),
])
def test_bad_input_is_a_clear_error(tiny_engine, bad, message):
    with pytest.raises(InputError, match=message):
        tiny_engine.detect(bad)


def test_bad_batches_name_the_sequence(tiny_engine):
    with pytest.raises(InputError, match="sequence 1: empty"):
        tiny_engine.detect_batch([["read"], []])
    with pytest.raises(InputError, match="list of sequences"):
        tiny_engine.detect_batch("read")
    with pytest.raises(InputError, match="2 sequences but 1"):
        tiny_engine.detect_batch([["read"], ["write"]], ["a"])
    with pytest.raises(InputError, match="architecture"):
        tiny_engine.detect([1, 2], arch="arm")
    assert tiny_engine.detect_batch([]) == []


def test_performance_stats_count_calls(tiny_run):
    engine = InferenceEngine(tiny_run / "checkpoints", batch_sizes=(8,))
    for length in (10, 20, 30):
        engine.detect(_sequence(length))
    engine.detect_batch([_sequence(5), _sequence(6)])
    stats = engine.get_performance_stats()
    assert stats["calls"] == 4 and stats["sequences"] == 5
    assert stats["windows"] == 1 + 2 + 3 + 2
    assert 0 < stats["p50_latency_ms"] <= stats["p99_latency_ms"]
    assert stats["p99_latency_ms"] <= stats["max_latency_ms"]
    # Batches of 8 were already compiled for this architecture, or are now.
    assert stats["throughput"] > 0 and stats["compilations"] <= 1


def test_missing_run_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        InferenceEngine(tmp_path / "nope")
    with pytest.raises(InputError, match="scorer"):
        InferenceEngine(tmp_path, scorer="magic")


def _write_equation(run_dir, equation: Equation) -> None:
    folder = run_dir / "symbolic"
    folder.mkdir(exist_ok=True)
    (folder / "equation.json").write_text(json.dumps(equation.to_json()))


def test_equation_scorer_scores_hist_rows(tiny_engine, tmp_path):
    index = tiny_engine.vocabulary.index
    channels = tiny_engine.channels
    read, remote = sympy.symbols("read socket_remote", real=True)
    remote_channel = len(tiny_engine.vocabulary) + 16  # tag bit 16
    expression = (sympy.Float(3.0) * remote - sympy.Float(0.5) * read
                  + SYMPY_PROTECTED["pdiv"](remote, read) + sympy.Float(-0.25))
    equation = Equation(expression, {read: index["read"], remote: remote_channel})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoints").symlink_to(tiny_engine.run.run_dir / "checkpoints")
    with pytest.raises(InputError, match="distil the run first"):
        InferenceEngine(run_dir, scorer="equation")
    _write_equation(run_dir, equation)

    engine = InferenceEngine(run_dir, scorer="equation")
    sequences = [_sequence(40, seed=1), _sequence(40, seed=1, attack=True)]
    results = engine.detect_batch(sequences)
    windows = encode_traces([Trace(tuple(e.name for e in s),
                                   np.array([e.tags for e in s]), 0)
                             for s in sequences], engine.vocabulary,
                            engine.time_steps, engine.stride, channels)
    expected = equation.score(windows.hist).astype(np.float32)
    np.testing.assert_array_equal(
        np.concatenate([r.window_scores for r in results]), expected)
    assert results[0].scorer == "equation" and engine.compilations == 0
    assert results[1].anomaly_score > results[0].anomaly_score
    # Deleting a socket_remote event lowers the score, so one drives it.
    assert "socket_remote" in results[1].top_events[0].tags


@given(st.lists(st.integers(0, 16), min_size=1, max_size=6), st.integers(0, 99))
def test_occlusion_deletes_each_event_once(lengths, seed):
    time_steps, vocabulary = 16, 12
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocabulary, (len(lengths), time_steps)).astype(np.int32)
    tags = rng.integers(0, 1 << 20, (len(lengths), time_steps)).astype(np.uint32)
    lengths = np.asarray(lengths)
    ids[np.arange(time_steps) >= lengths[:, None]] = 0
    tags[np.arange(time_steps) >= lengths[:, None]] = 0

    variant_ids, variant_tags, hist, source = occlusion_windows(
        ids, tags, lengths, vocabulary, vocabulary + 8)

    assert len(source) == lengths.sum()
    chex.assert_shape(hist, (len(source), vocabulary + 8))
    row = 0
    for window, length in enumerate(lengths):
        for deleted in range(length):
            expected = np.delete(ids[window, :length], deleted)
            np.testing.assert_array_equal(variant_ids[row, :length - 1], expected)
            assert not variant_ids[row, length - 1:].any()
            np.testing.assert_array_equal(
                variant_tags[row, :length - 1], np.delete(tags[window, :length],
                                                          deleted))
            assert source[row] == window
            row += 1
