"""Normal program behaviour as phase-structured Markov models over events.

A *profile* describes how one kind of program (a shell, a web server, a
compiler...) behaves under ``strace -f``: three phases, start-up (dynamic
loading, ``execve``, ``mmap``, ``rseq``...), work loop and shutdown, each a
first-order Markov chain over *tokens*. A token is one event: a canonical
syscall name plus its tag mask, written ``name`` or ``name+tag+tag``.

The tables are fitted to real recordings by ``scripts/record_profiles.py`` and
stored as JSON in ``sentinel_jax/data/profiles/``; one file per profile::

    {"format": "sentinel_jax.profile", "version": 1, "name": "shell",
     "tokens": ["execve+exec_shell", "brk", ...],
     "phases": {"startup": {"lengths": {...}, "start": [[token, count]...],
                            "transitions": [[from, to, count]...]},
                "loop": {...}, "shutdown": {...}},
     "excerpts": ["0 1 2 1 ...", ...]}

``excerpts`` are verbatim stretches of the recorded processes (token indices
separated by spaces); the generator replays them for a share of the benign
processes, which keeps real order longer than one step.

Sampling is vectorised over traces: all chains of one phase step together, and
each step draws the next token of every chain with one ``searchsorted`` over
the stacked cumulative transition rows. Per-trace variation comes from
``variants`` resampled copies of each transition table (Dirichlet around the
fitted counts) and from per-trace phase lengths.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from sentinel_jax.data.syscalls import canonical_name
from sentinel_jax.data.tags import TAG_NAMES, tag_mask, tag_names

PROFILE_FORMAT = "sentinel_jax.profile"
PROFILE_VERSION = 1
PHASES = ("startup", "loop", "shutdown")


def parse_token(token: str) -> tuple[str, int]:
    """``"openat+cred_read"`` -> (canonical name, tag mask).

    Raises:
        ValueError: on an empty name or an unknown tag.
    """
    name, *tags = token.split("+")
    if not name:
        raise ValueError(f"token {token!r}: expected name or name+tag+tag")
    try:
        return canonical_name(name), tag_mask(tags)
    except KeyError as error:
        raise ValueError(f"token {token!r}: {error.args[0]}") from None


def format_token(name: str, mask: int) -> str:
    """(name, tag mask) -> ``"name+tag+tag"`` (tags in bit order)."""
    return "+".join([name, *tag_names(int(mask))])


class TokenTable:
    """The global set of tokens: one id per distinct (name, tag mask).

    Profiles and attack motifs intern their tokens here, so every sampled
    event is an ``int32`` token id until the very end, where
    :meth:`names_of` and :attr:`masks` turn ids into a trace.
    """

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self._names: list[str] = []
        self._masks: list[int] = []

    def intern(self, token: str) -> int:
        """The id of ``token``, adding it when new."""
        name, mask = parse_token(token)
        key = format_token(name, mask)
        if key not in self._index:
            self._index[key] = len(self._names)
            self._names.append(name)
            self._masks.append(mask)
        return self._index[key]

    def __len__(self) -> int:
        return len(self._names)

    @property
    def names(self) -> np.ndarray:
        """Name of each token, ``object [tokens]``."""
        return np.asarray(self._names, dtype=object)

    @property
    def masks(self) -> np.ndarray:
        """Tag mask of each token, ``uint32 [tokens]``."""
        return np.asarray(self._masks, dtype=np.uint32)

    def token(self, token_id: int) -> str:
        return format_token(self._names[token_id], self._masks[token_id])


# TODO: phases are first-order Markov chains, so structure longer than one
# step (an fd opened, read to the end, then closed) is only kept on average;
# a higher-order or fd-aware model would make long windows more realistic.
@dataclass(frozen=True)
class PhaseModel:
    """One phase of a profile, over global token ids.

    Attributes:
        tokens: global ids of the phase's local states, ``int32 [states]``.
        start: start probabilities, ``float64 [states]``.
        cumulative: per variant, cumulative transition rows offset by row
            number so they stack into one sorted array,
            ``float64 [variants * states * states]``.
        length_median: median events in the phase.
        length_log_std: spread of the log-normal length.
        length_min, length_max: clip of the length.
    """

    tokens: np.ndarray
    start: np.ndarray
    cumulative: np.ndarray
    length_median: float
    length_log_std: float
    length_min: int
    length_max: int

    @property
    def states(self) -> int:
        return int(self.tokens.shape[0])

    def sample_lengths(self, rng: np.random.Generator, count: int,
                       scale: float = 1.0) -> np.ndarray:
        """Log-normal phase lengths, ``int64 [count]``."""
        logs = rng.normal(np.log(self.length_median * scale), self.length_log_std,
                          count)
        return np.clip(np.rint(np.exp(logs)), self.length_min,
                       max(self.length_min, self.length_max * scale)).astype(np.int64)

    def sample(self, rng: np.random.Generator, lengths: np.ndarray,
               variants: np.ndarray) -> np.ndarray:
        """Markov chains of the given lengths, all stepped together.

        Args:
            rng: random generator.
            lengths: events per chain, ``int [chains]``.
            variants: transition-table variant of each chain, ``int [chains]``.

        Returns:
            Global token ids, ``int32 [chains, max(lengths)]``, padded with -1.
        """
        chains = len(lengths)
        width = int(lengths.max()) if chains else 0
        out = np.full((chains, width), -1, dtype=np.int32)
        if width == 0:
            return out
        # Longest chains first, so the active chains at step t are a prefix.
        order = np.argsort(-lengths, kind="stable")
        sorted_lengths = lengths[order]
        states_count = self.states
        row_base = variants[order].astype(np.int64) * states_count
        state = np.searchsorted(np.cumsum(self.start), rng.random(chains) *
                                self.start.sum(), side="right")
        state = np.minimum(state, states_count - 1)
        # Chains still running at each step: those longer than the step.
        active_counts = np.searchsorted(-sorted_lengths, -np.arange(width),
                                        side="left")
        draws = rng.random((width, chains))
        states = np.empty((chains, width), dtype=np.int64)
        states[:, 0] = state
        for step in range(1, width):
            active = int(active_counts[step])
            if active == 0:
                break
            rows = row_base[:active] + state[:active]
            target = rows + draws[step, :active]
            # Each stacked row spans [row, row + 1); the index inside it is
            # the next state.
            position = self.cumulative.searchsorted(target, side="right")
            state[:active] = np.minimum(position - rows * states_count,
                                        states_count - 1)
            states[:active, step] = state[:active]
        local = np.where(np.arange(width) < sorted_lengths[:, None], states, -1)
        out[order] = np.where(local >= 0, self.tokens[np.maximum(local, 0)], -1)
        return out


@dataclass(frozen=True)
class Profile:
    """A program profile: its phases, its loop unigram (for mimicry and
    noise) and verbatim excerpts of its recordings (``int32 [events]`` each,
    global token ids) for :func:`sample_normal_tokens` to replay."""

    name: str
    description: str
    phases: Mapping[str, PhaseModel]
    loop_tokens: np.ndarray
    loop_weights: np.ndarray
    excerpts: tuple[np.ndarray, ...] = ()


def _phase_counts(name: str, phase: str, raw: Mapping[str, Any],
                  states: int) -> tuple[np.ndarray, np.ndarray]:
    """(start counts [states], transition counts [states, states])."""
    start = np.zeros(states)
    transitions = np.zeros((states, states))
    try:
        for token, count in raw["start"]:
            start[int(token)] += float(count)
        for source, target, count in raw["transitions"]:
            transitions[int(source), int(target)] += float(count)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise ValueError(f"profile {name!r}, phase {phase!r}: bad start or "
                         f"transitions ({error!r})") from None
    if start.sum() <= 0:
        raise ValueError(f"profile {name!r}, phase {phase!r}: no start counts")
    return start, transitions


def build_phase(name: str, phase: str, raw: Mapping[str, Any],
                token_ids: np.ndarray, rng: np.random.Generator,
                variants: int, concentration: float) -> PhaseModel:
    """A :class:`PhaseModel` from a profile file's phase entry.

    Only the tokens the phase uses become its states. Rows never left in the
    recordings (the phase's last event) restart from the start distribution.
    Each variant resamples every row from a Dirichlet centred on the fitted
    counts, keeping their support, so traces differ as real runs do.
    """
    start, transitions = _phase_counts(name, phase, raw, len(token_ids))
    used = np.flatnonzero((start > 0) | (transitions.sum(0) > 0) |
                          (transitions.sum(1) > 0))
    start, transitions = start[used], transitions[np.ix_(used, used)]
    states = len(used)
    dead = transitions.sum(1) == 0
    transitions[dead] = start
    tables = np.empty((variants, states, states))
    for variant in range(variants):
        if variant == 0:
            tables[variant] = transitions
            continue
        support = transitions > 0
        alpha = transitions / transitions.sum(1, keepdims=True) * concentration
        tables[variant] = np.where(support, rng.gamma(np.maximum(alpha, 1e-3)), 0.0)
    tables /= tables.sum(-1, keepdims=True)
    cumulative = np.cumsum(tables, axis=-1)
    cumulative[..., -1] = 1.0
    rows = np.arange(variants * states, dtype=np.float64).reshape(variants, states, 1)
    lengths = raw.get("lengths", {})
    try:
        median = float(lengths.get("median", 10))
        log_std = float(lengths.get("log_std", 0.3))
        low, high = int(lengths.get("min", 1)), int(lengths.get("max", 4 * median))
    except (TypeError, ValueError) as error:
        raise ValueError(f"profile {name!r}, phase {phase!r}: bad lengths "
                         f"({error!r})") from None
    return PhaseModel(
        tokens=token_ids[used].astype(np.int32), start=start / start.sum(),
        cumulative=(cumulative + rows).reshape(-1), length_median=max(median, 1.0),
        length_log_std=max(log_std, 0.0), length_min=max(low, 1),
        length_max=max(high, low, 1))


def build_profile(raw: Mapping[str, Any], table: TokenTable, seed: int,
                  variants: int = 8, concentration: float = 30.0) -> Profile:
    """A :class:`Profile` from a parsed profile file, tokens interned in ``table``.

    Raises:
        ValueError: naming the profile and what was wrong.
    """
    name = str(raw.get("name", "?"))
    if raw.get("format") != PROFILE_FORMAT or raw.get("version") != PROFILE_VERSION:
        raise ValueError(f"profile {name!r}: expected format {PROFILE_FORMAT!r} "
                         f"version {PROFILE_VERSION}")
    token_ids = np.array([table.intern(token) for token in raw["tokens"]],
                         dtype=np.int32)
    rng = np.random.default_rng(seed)
    missing = [phase for phase in PHASES if phase not in raw.get("phases", {})]
    if missing:
        raise ValueError(f"profile {name!r}: missing phases {missing}")
    phases = {phase: build_phase(name, phase, raw["phases"][phase], token_ids, rng,
                                 variants, concentration) for phase in PHASES}
    start, transitions = _phase_counts(name, "loop", raw["phases"]["loop"],
                                       len(token_ids))
    unigram = start + transitions.sum(0)
    used = np.flatnonzero(unigram > 0)
    try:
        excerpts = tuple(token_ids[np.array(excerpt.split(), dtype=np.int64)]
                         for excerpt in raw.get("excerpts", ()) if excerpt.strip())
    except (AttributeError, ValueError, IndexError) as error:
        raise ValueError(f"profile {name!r}: bad excerpts ({error!r}); expected "
                         f"strings of token indices separated by spaces") from None
    return Profile(name=name, description=str(raw.get("description", "")),
                   phases=phases, loop_tokens=token_ids[used],
                   loop_weights=unigram[used] / unigram[used].sum(),
                   excerpts=excerpts)


@functools.lru_cache(maxsize=1)
def load_profile_files() -> tuple[Mapping[str, Any], ...]:
    """The fitted profile tables shipped with the package, sorted by name."""
    folder = resources.files("sentinel_jax.data").joinpath("profiles")
    raws = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if not entry.name.endswith(".json"):
            continue
        try:
            raw = json.loads(entry.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"profile file {entry.name}: not valid JSON "
                             f"({error})") from None
        if raw.get("format") == PROFILE_FORMAT:
            raws.append(raw)
    if not raws:
        raise ValueError("no profile tables in sentinel_jax/data/profiles; run "
                         "scripts/record_profiles.py")
    return tuple(sorted(raws, key=lambda raw: raw["name"]))


def sample_normal_tokens(profile: Profile, rng: np.random.Generator,
                         count: int, variants: int,
                         loop_scale: float = 1.0,
                         replay: float = 0.0) -> list[np.ndarray]:
    """Whole benign traces of one profile: start-up, loop, shutdown.

    A ``replay`` share of the traces begin with a verbatim excerpt of the
    profile's recordings instead (when it has any), as long as the Markov
    trace or the excerpt, whichever is shorter, the chain's events after it
    kept: real order beyond the one step a first-order chain keeps.

    Args:
        profile: the program profile.
        rng: random generator.
        count: traces to sample.
        variants: transition-table variants to draw from.
        loop_scale: multiplies the work-loop lengths.
        replay: share of traces replayed from recordings, in [0, 1].

    Returns:
        ``count`` arrays of global token ids, ``int32 [time]`` each.
    """
    variant = rng.integers(0, variants, count)
    parts = []
    for phase in PHASES:
        model = profile.phases[phase]
        scale = loop_scale if phase == "loop" else 1.0
        lengths = model.sample_lengths(rng, count, scale)
        parts.append((model.sample(rng, lengths, variant), lengths))
    traces = [np.concatenate([tokens[row, :lengths[row]]
                              for tokens, lengths in parts])
              for row in range(count)]
    if replay <= 0 or not profile.excerpts:
        return traces
    chosen = rng.integers(0, len(profile.excerpts), count)
    for row in np.flatnonzero(rng.random(count) < replay):
        excerpt = profile.excerpts[chosen[row]]
        length = min(len(traces[row]), len(excerpt))
        begin = int(rng.integers(0, len(excerpt) - length + 1))
        # An excerpt shorter than the trace is continued by the chain, so
        # trace lengths keep their fitted distribution.
        traces[row] = np.concatenate([excerpt[begin:begin + length],
                                      traces[row][length:]]).astype(np.int32)
    return traces


def tag_summary(profiles: Sequence[Profile], table: TokenTable) -> dict[str, float]:
    """Share of loop events carrying each tag, averaged over profiles."""
    masks = table.masks
    rates = np.zeros(len(TAG_NAMES))
    for profile in profiles:
        bits = (masks[profile.loop_tokens, None] >> np.arange(len(TAG_NAMES))) & 1
        rates += (profile.loop_weights[:, None] * bits).sum(0)
    return {name: float(rate / max(len(profiles), 1))
            for name, rate in zip(TAG_NAMES, rates, strict=True)}
