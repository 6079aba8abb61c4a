"""Encoding windows into ids, tags and hist, and the dataset files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentinel_jax.data.encode import encode_traces, histogram
from sentinel_jax.data.store import (
    DatasetError,
    build_dataset,
    load_dataset,
    save_dataset,
)
from sentinel_jax.data.syscalls import PAD_ID, Vocabulary
from sentinel_jax.data.tags import tag_mask
from sentinel_jax.data.traces import Trace

NAMES = ["read", "write", "openat", "close", "mmap", "execve", "connect", "dup2"]


def make_traces(count: int, seed: int = 0) -> list[Trace]:
    rng = np.random.default_rng(seed)
    traces = []
    for index in range(count):
        attack = index % 4 == 0
        names = [NAMES[i] for i in rng.integers(0, 6, rng.integers(5, 90))]
        tags = np.zeros(len(names), np.uint32)
        if attack:
            names[len(names) // 2] = "dup2"
            tags[len(names) // 2] = tag_mask(["stdio_socket"])
        traces.append(
            Trace(
                names=tuple(names),
                tags=tags,
                label=int(attack),
                family="reverse_shell" if attack else "normal",
                trace_id=f"t{index}",
            )
        )
    return traces


@given(
    st.lists(
        st.lists(st.sampled_from(NAMES), min_size=1, max_size=40),
        min_size=1,
        max_size=8,
    ),
    st.integers(1, 16),
    st.integers(1, 16),
)
def test_hist_is_a_frequency_table_of_each_window(trace_names, time, stride):
    vocabulary = Vocabulary.build(trace_names, name_channels=6)
    traces = [
        Trace.from_names(names, trace_id=str(i)) for i, names in enumerate(trace_names)
    ]
    windows = encode_traces(traces, vocabulary, time, stride, channels=10)
    assert windows.ids.dtype == np.int32 and windows.hist.dtype == np.float32
    assert windows.ids.shape == windows.tags.shape == (len(windows), time)
    np.testing.assert_allclose(windows.hist[:, :6].sum(axis=1), 1.0, rtol=1e-5)
    assert windows.hist[:, PAD_ID].max() == 0.0
    assert np.all(
        (windows.ids == PAD_ID) == (np.arange(time) >= windows.lengths[:, None])
    )
    for row in range(len(windows)):
        trace = traces[windows.trace_index[row]]
        start = windows.starts[row]
        expected = vocabulary.lookup(trace.names[start : start + time])
        assert windows.ids[row, : windows.lengths[row]].tolist() == expected.tolist()


def test_tag_channels_count_the_share_of_tagged_events():
    ids = np.array([[2, 3, 2, 0]], np.int32)
    tags = np.array(
        [[tag_mask(["cred_read"]), tag_mask(["cred_read", "denied"]), 0, 0]], np.uint32
    )
    hist = histogram(ids, tags, np.array([3]), name_channels=4, channels=40)
    np.testing.assert_allclose(hist[0, :4], [0, 0, 2 / 3, 1 / 3])
    cred, denied = 4 + 1, 4 + 22
    np.testing.assert_allclose(hist[0, [cred, denied]], [2 / 3, 1 / 3])
    assert hist[0].sum() == pytest.approx(2.0)


def test_attack_mask_labels_only_windows_holding_attack_events():
    names = ("read",) * 40
    mask = np.zeros(40, bool)
    mask[35] = True
    trace = Trace(
        names=names,
        tags=np.zeros(40, np.uint32),
        label=1,
        family="rootkit",
        trace_id="a",
        attack_mask=mask,
    )
    vocabulary = Vocabulary.build([names], 4)
    windows = encode_traces([trace], vocabulary, time=10, stride=10, channels=8)
    assert windows.starts.tolist() == [0, 10, 20, 30]
    assert windows.labels.tolist() == [0, 0, 0, 1]


def test_dataset_round_trip_and_leak_free_splits(tmp_path):
    traces = make_traces(80)
    dataset = build_dataset(
        traces,
        name_channels=8,
        channels=40,
        time=16,
        stride=8,
        val_fraction=0.2,
        test_fraction=0.2,
        seed=3,
    )
    groups_by_split = [
        {dataset.traces[i]["group"] for i in dataset.trace_index[dataset.splits == s]}
        for s in range(3)
    ]
    assert not (groups_by_split[0] & groups_by_split[1])
    assert not (groups_by_split[0] & groups_by_split[2])
    assert not (groups_by_split[1] & groups_by_split[2])
    # the vocabulary is learnt on training traces only
    train_names = {
        n
        for t, r in zip(traces, dataset.traces, strict=True)
        if r["split"] == "train"
        for n in t.names
    }
    assert set(dataset.vocabulary.names[2:]) <= train_names

    save_dataset(dataset, tmp_path / "d")
    loaded = load_dataset(tmp_path / "d")
    for name in ("ids", "tags", "hist", "labels", "families", "splits", "trace_index"):
        assert np.array_equal(getattr(loaded, name), getattr(dataset, name))
    assert loaded.vocabulary == dataset.vocabulary
    assert loaded.family_names == ("normal", "reverse_shell")
    metadata = json.loads((tmp_path / "d" / "metadata.json").read_text())
    assert metadata["counts"]["test"]["windows"] == int((dataset.splits == 2).sum())
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "dataset.npz",
        "metadata.json",
    ]
    assert len(loaded.subset("val")) == int((dataset.splits == 1).sum())


def test_bad_dataset_files_are_clear_errors(tmp_path):
    dataset = build_dataset(
        make_traces(20),
        name_channels=8,
        channels=40,
        time=16,
        stride=8,
        val_fraction=0.2,
        test_fraction=0.2,
        seed=0,
    )
    folder = save_dataset(dataset, tmp_path / "d")
    with pytest.raises(DatasetError, match="metadata.json: missing"):
        load_dataset(tmp_path / "nowhere")

    blob = (folder / "dataset.npz").read_bytes()
    (folder / "dataset.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DatasetError, match="truncated or not an .npz"):
        load_dataset(folder)

    with zipfile.ZipFile(folder / "dataset.npz", "w") as archive:
        archive.writestr("ids.npy", b"not numpy")
    with pytest.raises(DatasetError, match="dataset.npz"):
        load_dataset(folder)

    (folder / "metadata.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(DatasetError, match="not a sentinel_jax dataset"):
        load_dataset(folder)

    # an object array would need pickle to load: refused, not executed
    save_dataset(dataset, folder)
    with np.load(folder / "dataset.npz") as archive:
        arrays = dict(archive)
    arrays["labels"] = np.array([object()] * len(dataset), dtype=object)
    np.savez(folder / "dataset.npz", **arrays)
    with pytest.raises(DatasetError):
        load_dataset(folder)
