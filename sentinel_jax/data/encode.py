"""Windows of traces -> model inputs: ids, tags and hist.

One path for every source: synthetic, ADFA-LD and strace traces all pass
through :func:`encode_traces`.

* ``ids int32 [batch, time]``: name channel of each event (0 is padding);
* ``tags uint32 [batch, time]``: tag mask of each event;
* ``hist float32 [batch, channels]``: the window as channel frequencies,
  name channels first (they sum to 1 over the real events), then one channel
  per tag (the share of events carrying it);
* ``lengths int32 [batch]``: real events per window (the rest is padding).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sentinel_jax.data.syscalls import PAD_ID, Vocabulary
from sentinel_jax.data.tags import NUM_TAGS
from sentinel_jax.data.traces import Trace, window_starts

_CHUNK = 8192


@dataclass(frozen=True)
class Windows:
    """Encoded windows and where each came from.

    Attributes:
        ids: ``int32 [batch, time]``.
        tags: ``uint32 [batch, time]``.
        hist: ``float32 [batch, channels]``.
        lengths: ``int32 [batch]``.
        labels: ``int32 [batch]``, 1 if the window holds attack events.
        trace_index: ``int32 [batch]``, index of the source trace.
        starts: ``int64 [batch]``, offset of the window in its trace.
    """

    ids: np.ndarray
    tags: np.ndarray
    hist: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    trace_index: np.ndarray
    starts: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def histogram(
    ids: np.ndarray,
    tags: np.ndarray,
    lengths: np.ndarray,
    name_channels: int,
    channels: int,
) -> np.ndarray:
    """Channel frequencies of windows.

    Args:
        ids: ``int32 [batch, time]`` name channels, 0 for padding.
        tags: ``uint32 [batch, time]`` tag masks.
        lengths: ``int32 [batch]`` real events per window.
        name_channels: channels for names (the first ones).
        channels: all channels; the last ``channels - name_channels`` are tags.

    Returns:
        ``float32 [batch, channels]``.
    """
    batch, time = ids.shape
    tag_channels = min(channels - name_channels, NUM_TAGS)
    hist = np.zeros((batch, channels), dtype=np.float32)
    denominator = np.maximum(lengths, 1).astype(np.float32)[:, None]
    bits = np.arange(tag_channels, dtype=np.uint32)
    for begin in range(0, batch, _CHUNK):
        end = min(begin + _CHUNK, batch)
        chunk_ids = ids[begin:end]
        rows = np.repeat(np.arange(end - begin), time)
        counts = np.zeros((end - begin, name_channels), dtype=np.float32)
        np.add.at(counts, (rows, chunk_ids.reshape(-1)), 1.0)
        counts[:, PAD_ID] = 0.0
        hist[begin:end, :name_channels] = counts
        if tag_channels:
            tag_bits = (tags[begin:end, :, None] >> bits) & 1  # [chunk, time, tag]
            hist[begin:end, name_channels : name_channels + tag_channels] = (
                tag_bits.sum(axis=1, dtype=np.float32)
            )
    hist /= denominator
    return hist


def encode_traces(
    traces: Sequence[Trace],
    vocabulary: Vocabulary,
    time: int,
    stride: int,
    channels: int,
    max_windows_per_trace: int | None = None,
) -> Windows:
    """Cuts traces into windows and encodes them.

    A window is labelled attack when its trace is an attack and, if the trace
    says which events the attack injected (``attack_mask``), at least one of
    them falls inside the window.

    Args:
        traces: the traces to encode.
        vocabulary: name -> channel; its size is the number of name channels.
        time: events per window.
        stride: events between window starts.
        channels: all input channels (names + tags).
        max_windows_per_trace: if set, keep at most this many windows of each
            trace, chosen evenly spaced (a long benign log must not swamp a
            dataset).
    """
    name_channels = len(vocabulary)
    if name_channels > channels:
        raise ValueError(
            f"vocabulary has {name_channels} names but only {channels} channels"
        )
    per_trace_starts = []
    for trace in traces:
        starts = window_starts(len(trace), time, stride)
        if max_windows_per_trace is not None and len(starts) > max_windows_per_trace:
            keep = np.linspace(0, len(starts) - 1, max_windows_per_trace).round()
            starts = starts[np.unique(keep.astype(np.int64))]
        per_trace_starts.append(starts)
    total = sum(len(s) for s in per_trace_starts)

    ids = np.zeros((total, time), dtype=np.int32)
    tags = np.zeros((total, time), dtype=np.uint32)
    lengths = np.zeros(total, dtype=np.int32)
    labels = np.zeros(total, dtype=np.int32)
    trace_index = np.zeros(total, dtype=np.int32)
    all_starts = np.zeros(total, dtype=np.int64)
    offsets = np.arange(time)
    row = 0
    for index, (trace, starts) in enumerate(zip(traces, per_trace_starts, strict=True)):
        if not len(starts):
            continue
        trace_ids = vocabulary.lookup(trace.names)
        count = len(starts)
        length = len(trace)
        positions = starts[:, None] + offsets  # [windows, time]
        valid = positions < length
        clipped = np.minimum(positions, length - 1)
        ids[row : row + count] = np.where(valid, trace_ids[clipped], PAD_ID)
        tags[row : row + count] = np.where(valid, trace.tags[clipped], 0)
        lengths[row : row + count] = valid.sum(axis=1)
        if trace.label and trace.attack_mask is not None:
            mask = np.asarray(trace.attack_mask, dtype=bool)
            labels[row : row + count] = (mask[clipped] & valid).any(axis=1)
        else:
            labels[row : row + count] = trace.label
        trace_index[row : row + count] = index
        all_starts[row : row + count] = starts
        row += count

    hist = histogram(ids, tags, lengths, name_channels, channels)
    return Windows(
        ids=ids,
        tags=tags,
        hist=hist,
        lengths=lengths,
        labels=labels,
        trace_index=trace_index,
        starts=all_starts,
    )
