"""Datasets: encoded windows with their splits, saved as ``.npz`` + JSON.

A dataset folder holds ``dataset.npz`` (plain arrays, never pickles) and
``metadata.json`` (format version, vocabulary, tag names, families, source,
the trace table, counts per split and family, and whatever config built it).
Both are written to a temporary name and renamed; loading checks every array
name, dtype and shape and fails with one clear :class:`DatasetError`.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sentinel_jax.atomic import write_bytes_atomic, write_json_atomic
from sentinel_jax.data.encode import encode_traces
from sentinel_jax.data.syscalls import Vocabulary
from sentinel_jax.data.tags import TAG_NAMES
from sentinel_jax.data.traces import NORMAL, SPLITS, Trace, split_traces
from sentinel_jax.errors import InputError

FORMAT = "sentinel_jax.dataset"
FORMAT_VERSION = 1
DATASET_FILE = "dataset.npz"
METADATA_FILE = "metadata.json"

# name -> (dtype, rank); the first axis of each is the window.
_ARRAYS = {
    "ids": (np.int32, 2),
    "tags": (np.uint32, 2),
    "hist": (np.float32, 2),
    "lengths": (np.int32, 1),
    "labels": (np.int32, 1),
    "families": (np.int32, 1),
    "trace_index": (np.int32, 1),
    "splits": (np.int8, 1),
}


class DatasetError(InputError):
    """A dataset folder is missing, truncated, foreign or inconsistent."""


@dataclass(frozen=True)
class Dataset:
    """Encoded windows of all splits.

    Attributes:
        ids: ``int32 [batch, time]`` name channels.
        tags: ``uint32 [batch, time]`` tag masks.
        hist: ``float32 [batch, channels]``.
        lengths: ``int32 [batch]`` real events per window.
        labels: ``int32 [batch]`` 0 benign, 1 attack.
        families: ``int32 [batch]`` index into ``family_names``.
        trace_index: ``int32 [batch]`` row of the window's trace in ``traces``.
        splits: ``int8 [batch]`` index into :data:`SPLITS`.
        vocabulary: the name channels.
        family_names: ``family_names[0] == "normal"``.
        traces: one record per trace: trace_id, group, family, label, source,
            length, split.
        info: free-form metadata (source, config, generator settings).
    """

    ids: np.ndarray
    tags: np.ndarray
    hist: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    families: np.ndarray
    trace_index: np.ndarray
    splits: np.ndarray
    vocabulary: Vocabulary
    family_names: tuple[str, ...]
    traces: tuple[Mapping[str, Any], ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def time(self) -> int:
        return int(self.ids.shape[1])

    @property
    def channels(self) -> int:
        return int(self.hist.shape[1])

    @property
    def name_channels(self) -> int:
        return len(self.vocabulary)

    def subset(self, split: str | int) -> Dataset:
        """The windows of one split (``train``, ``val`` or ``test``)."""
        code = SPLITS.index(split) if isinstance(split, str) else int(split)
        return self.select(self.splits == code)

    def select(self, rows: np.ndarray) -> Dataset:
        """The windows at ``rows`` (a boolean mask or indices)."""
        return replace(self, **{name: getattr(self, name)[rows] for name in _ARRAYS})

    def family_of(self) -> np.ndarray:
        """Family name of each window, ``object [batch]``."""
        return np.asarray(self.family_names, dtype=object)[self.families]

    def counts(self) -> dict[str, dict[str, int]]:
        """Windows per split and family."""
        result: dict[str, dict[str, int]] = {}
        for code, split in enumerate(SPLITS):
            rows = self.splits == code
            names = Counter(self.family_names[f] for f in self.families[rows])
            result[split] = {
                "windows": int(rows.sum()),
                "attack": int(self.labels[rows].sum()),
                "by_family": dict(sorted(names.items())),
            }
        return result


def build_dataset(
    traces: Sequence[Trace],
    *,
    name_channels: int,
    channels: int,
    time: int,
    stride: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    vocabulary: Vocabulary | None = None,
    splits: np.ndarray | None = None,
    max_windows_per_trace: int | None = None,
    info: Mapping[str, Any] | None = None,
) -> Dataset:
    """Splits traces by group, builds the vocabulary on training traces only,
    and encodes every window.

    Args:
        traces: all traces of the source.
        name_channels: channels for names (padding and OTHER included).
        channels: all input channels.
        time: events per window.
        stride: events between window starts.
        val_fraction: share of each family's groups for validation.
        test_fraction: share for test.
        seed: split seed.
        vocabulary: a fixed vocabulary (e.g. a trained model's); built from
            the training split when ``None``.
        splits: a fixed split per trace (``int8 [traces]``), e.g. an ADFA-LD
            protocol's; computed when ``None``.
        max_windows_per_trace: cap on windows taken from one trace.
        info: metadata stored with the dataset.
    """
    if not traces:
        raise DatasetError("no traces to build a dataset from")
    if splits is None:
        splits = split_traces(traces, val_fraction, test_fraction, seed)
    splits = np.asarray(splits, dtype=np.int8)
    if vocabulary is None:
        vocabulary = Vocabulary.build(
            (t.names for t, s in zip(traces, splits, strict=True) if s == 0),
            name_channels,
        )
    windows = encode_traces(
        traces,
        vocabulary,
        time,
        stride,
        channels,
        max_windows_per_trace=max_windows_per_trace,
    )
    family_names = (NORMAL, *sorted({t.family for t in traces} - {NORMAL}))
    family_code = {name: code for code, name in enumerate(family_names)}
    trace_family = np.array([family_code[t.family] for t in traces], dtype=np.int32)
    families = np.where(windows.labels == 1, trace_family[windows.trace_index], 0)
    records = tuple(
        {
            "trace_id": t.trace_id,
            "group": t.group,
            "family": t.family,
            "label": int(t.label),
            "source": t.source,
            "length": len(t),
            "split": SPLITS[int(s)],
        }
        for t, s in zip(traces, splits, strict=True)
    )
    return Dataset(
        ids=windows.ids,
        tags=windows.tags,
        hist=windows.hist,
        lengths=windows.lengths,
        labels=windows.labels,
        families=families.astype(np.int32),
        trace_index=windows.trace_index,
        splits=splits[windows.trace_index],
        vocabulary=vocabulary,
        family_names=family_names,
        traces=records,
        info=dict(info or {}),
    )


def save_dataset(dataset: Dataset, folder: str | os.PathLike[str]) -> Path:
    """Writes ``dataset.npz`` and ``metadata.json`` into ``folder`` atomically.

    Returns:
        The folder.
    """
    folder = Path(folder)
    buffer = io.BytesIO()
    np.savez(buffer, **{name: getattr(dataset, name) for name in _ARRAYS})
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "windows": len(dataset),
        "time": dataset.time,
        "channels": dataset.channels,
        "name_channels": dataset.name_channels,
        "vocabulary": dataset.vocabulary.to_json(),
        "tag_names": list(TAG_NAMES),
        "families": list(dataset.family_names),
        "counts": dataset.counts(),
        "info": dict(dataset.info),
        "traces": list(dataset.traces),
    }
    write_bytes_atomic(folder / DATASET_FILE, buffer.getvalue())
    write_json_atomic(folder / METADATA_FILE, metadata)
    return folder


def load_dataset(folder: str | os.PathLike[str]) -> Dataset:
    """Reads a dataset folder written by :func:`save_dataset`.

    Raises:
        DatasetError: naming the file and what was wrong with it.
    """
    folder = Path(folder)
    metadata_path, arrays_path = folder / METADATA_FILE, folder / DATASET_FILE
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(
            f"{metadata_path}: missing; expected a dataset folder "
            f"written by generate_data.py"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{metadata_path}: not readable JSON ({error})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise DatasetError(
            f"{metadata_path}: not a sentinel_jax dataset (expected format {FORMAT!r})"
        )
    if metadata.get("format_version") != FORMAT_VERSION:
        raise DatasetError(
            f"{metadata_path}: format version "
            f"{metadata.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    if list(metadata.get("tag_names", [])) != list(TAG_NAMES):
        raise DatasetError(
            f"{metadata_path}: tag table differs from this version's; "
            f"regenerate the dataset"
        )
    try:
        with np.load(arrays_path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in _ARRAYS if name in archive.files}
    except FileNotFoundError:
        raise DatasetError(f"{arrays_path}: missing") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DatasetError(
            f"{arrays_path}: truncated or not an .npz file ({error})"
        ) from None
    missing = sorted(set(_ARRAYS) - set(arrays))
    if missing:
        raise DatasetError(f"{arrays_path}: missing arrays {missing}")
    windows = int(metadata.get("windows", -1))
    for name, (dtype, rank) in _ARRAYS.items():
        array = arrays[name]
        if array.dtype != dtype or array.ndim != rank or array.shape[0] != windows:
            raise DatasetError(
                f"{arrays_path}: array {name!r} is {array.dtype}{list(array.shape)}, "
                f"expected {np.dtype(dtype)} of rank {rank} with {windows} windows"
            )
    try:
        vocabulary = Vocabulary.from_json(metadata["vocabulary"])
        families = tuple(metadata["families"])
    except (KeyError, TypeError, ValueError) as error:
        raise DatasetError(
            f"{metadata_path}: bad vocabulary or families ({error})"
        ) from None
    return Dataset(
        **arrays,
        vocabulary=vocabulary,
        family_names=families,
        traces=tuple(metadata.get("traces", ())),
        info=metadata.get("info", {}),
    )
