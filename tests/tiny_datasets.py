"""Tiny hand-made datasets and configs for the training and evaluation tests.

Normal traces draw from a handful of everyday calls. Attack traces are normal
ones with a short injected burst of a family's calls and tags: a reverse shell
(socket, connect, dup2 onto stdio, execve) or a privilege escalation
(setuid to 0, ptrace). A working detector separates them easily, so a short
training run must drive the loss down and the AUC up.
"""

from __future__ import annotations

import numpy as np

from sentinel_jax.config import Config, apply_overrides
from sentinel_jax.data.store import Dataset, build_dataset
from sentinel_jax.data.tags import tag_mask
from sentinel_jax.data.traces import Trace

NORMAL_CALLS = ("read", "write", "openat", "close", "mmap", "fstat", "brk",
                "futex", "lseek", "getpid")
BURSTS = {
    "reverse_shell": [("socket", ()), ("connect", ("socket_remote",)),
                      ("dup2", ("stdio_socket",)), ("execve", ())],
    "privilege_escalation": [("setuid", ("uid_zero",)), ("ptrace", ("ptrace_write",)),
                             ("openat", ("cred_read",))],
}
TIME, STRIDE, CHANNELS, NAME_CHANNELS = 16, 8, 48, 16


def make_traces(seed: int = 0, normal: int = 40, attacks_per_family: int = 12,
                length: int = 48) -> list[Trace]:
    """Normal and attack traces; attack events are marked in ``attack_mask``."""
    rng = np.random.default_rng(seed)
    traces = []
    for index in range(normal):
        names = list(rng.choice(NORMAL_CALLS, size=length))
        traces.append(Trace(names=tuple(names), tags=np.zeros(length, np.uint32),
                            label=0, trace_id=f"normal-{index}", source="test"))
    for family, burst in BURSTS.items():
        for index in range(attacks_per_family):
            names = list(rng.choice(NORMAL_CALLS, size=length))
            tags = [0] * length
            mask = np.zeros(length, bool)
            # Several bursts so that every window holds attack events.
            for start in range(2, length - len(burst), 10):
                for offset, (name, tag_set) in enumerate(burst):
                    names[start + offset] = name
                    tags[start + offset] = tag_mask(tag_set)
                    mask[start + offset] = True
            traces.append(Trace(names=tuple(names), tags=np.asarray(tags, np.uint32),
                                label=1, family=family,
                                trace_id=f"{family}-{index}", source="test",
                                attack_mask=mask))
    return traces


def make_dataset(seed: int = 0, **kwargs) -> Dataset:
    """The tiny dataset, split 60/20/20 by trace."""
    return build_dataset(make_traces(seed, **kwargs), name_channels=NAME_CHANNELS,
                         channels=CHANNELS, time=TIME, stride=STRIDE,
                         val_fraction=0.2, test_fraction=0.2, seed=seed)


def make_config(*overrides: str) -> Config:
    """A small model and a short schedule matching :func:`make_dataset`."""
    return apply_overrides(Config(), [
        f"data.sequence_length={TIME}", f"data.stride={STRIDE}",
        f"data.feature_dim={CHANNELS}", f"data.name_channels={NAME_CHANNELS}",
        "model.snn_hidden=[16]", "model.kan_hidden=[8]", "model.fusion_hidden=[8]",
        "model.grid_size=3", "training.epochs=6", "training.batch_size=32",
        "training.learning_rate=0.01", "training.warmup_epochs=1",
        "training.progress=false", "training.early_stopping_patience=0",
        *overrides])
