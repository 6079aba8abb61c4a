"""orbax checkpoints of a run, and loading a trained run for inference.

Layout of ``RUN/checkpoints/``::

    config.yaml         the resolved config of the run
    vocabulary.json     the name channels the model was trained on
    spec.json           the model's HybridSpec (branches included)
    latest.json         pointer: which folder is the latest state, its meta
    latest-00000120/    orbax: TrainState (step, params, optimiser state)
    best.json           pointer to the best parameters so far, its meta
    best-00000100/      orbax: parameters only
    threshold.json      decision threshold chosen on validation

A checkpoint is written to a fresh folder first; only then is its pointer
file replaced atomically (temporary name, rename) and the previous folder
removed. A crash at any moment leaves the last complete checkpoint in force.
Every pointer records a SHA-256 digest of the saved arrays, checked on
restore, so a corrupt or foreign checkpoint is a :class:`CheckpointError`
rather than a silent restart.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import shutil
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from sentinel_jax.atomic import write_json_atomic
from sentinel_jax.config import Config, ConfigError, config_to_dict, load_config
from sentinel_jax.data.syscalls import Vocabulary
from sentinel_jax.models.hybrid import HybridSpec
from sentinel_jax.training.predict import predict_scores

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
LATEST, BEST = "latest", "best"
FORMAT = "sentinel_jax.checkpoint"
FORMAT_VERSION = 1
# Keys that may change between a run and its resumption.
RESUMABLE_KEYS = ("training.progress",)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not match the run."""


def tree_digest(tree: Any) -> str:
    """SHA-256 over the leaves' dtypes, shapes and bytes, in tree order."""
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        array = np.asarray(leaf)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not readable JSON ({error})") from None


def save_tree(folder: Path, kind: str, tree: Any, meta: Mapping[str, Any]) -> Path:
    """Saves ``tree`` as the ``kind`` checkpoint (``latest`` or ``best``).

    Args:
        folder: the run's ``checkpoints`` folder.
        kind: ``latest`` or ``best``.
        tree: a pytree of arrays.
        meta: JSON-able facts stored in the pointer (epoch, metrics...);
            must hold ``step``.

    Returns:
        The orbax folder written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{kind}-{int(meta['step']):08d}"
    pointer = folder / f"{kind}.json"
    previous = _pointed_folder(folder, kind)
    if target.exists():
        # Left by a run killed before it could update the pointer.
        shutil.rmtree(target)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(target.absolute(), tree)
        checkpointer.wait_until_finished()
    write_json_atomic(pointer, {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "folder": target.name, "digest": tree_digest(tree), "meta": dict(meta)})
    if previous is not None and previous != target and previous.exists():
        shutil.rmtree(previous)
    return target


class CheckpointWriter:
    """Writes checkpoints on one background thread, in the order given.

    The training loop hands a checkpoint over and goes on with the next
    epoch while it is written (two synchronous orbax saves cost ~0.3 s per
    epoch on 2 cores, a quarter of a rate-mode epoch). Each tree is copied
    into fresh buffers when handed over, so the train step may donate and
    overwrite the live state meanwhile. The loop calls :meth:`wait` before it
    hands over an epoch's saves, so saves never fall more than one epoch
    behind (a kill loses at most that epoch, which a resumed run recomputes
    exactly). A failed save is raised by the next :meth:`save` or by
    :meth:`wait`.

    With several processes (multi-host) orbax saves are collective, so they
    stay synchronous, as they do with ``background=False``.

    Usage::

        with CheckpointWriter() as writer:
            writer.save(folder, LATEST, state, meta)
            ...
            writer.wait()  # before reading a checkpoint back
    """

    def __init__(self, background: bool = True):
        self.background = background and jax.process_count() == 1
        self._pool = (ThreadPoolExecutor(1, thread_name_prefix="checkpoint")
                      if self.background else None)
        self._pending: collections.deque[Future] = collections.deque()

    def save(self, folder: Path, kind: str, tree: Any,
             meta: Mapping[str, Any]) -> None:
        """Saves ``tree`` as :func:`save_tree` does, now or in the background."""
        if self._pool is None:
            save_tree(folder, kind, tree, meta)
            return
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()
        snapshot = jax.tree.map(lambda leaf: leaf.copy(), tree)
        self._pending.append(self._pool.submit(
            save_tree, folder, kind, snapshot, json.loads(json.dumps(meta))))

    def wait(self) -> None:
        """Blocks until every save handed over is written; raises a failure."""
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        """Waits for the pending saves and stops the thread."""
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown()

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
            return
        try:  # already failing: finish what was handed over, keep that error
            self.close()
        except Exception as error:  # noqa: BLE001
            logger.error("a checkpoint save failed as well: %s", error)


def _pointed_folder(folder: Path, kind: str) -> Path | None:
    try:
        record = _read_json(folder / f"{kind}.json")
    except (FileNotFoundError, CheckpointError):
        return None
    name = record.get("folder") if isinstance(record, dict) else None
    return folder / name if isinstance(name, str) else None


def has_checkpoint(folder: Path, kind: str = LATEST) -> bool:
    """Whether ``folder`` holds a ``kind`` pointer or checkpoint folder."""
    return ((folder / f"{kind}.json").exists()
            or any(folder.glob(f"{kind}-*")))


def restore_tree(folder: Path, kind: str, template: Any) -> tuple[Any, dict]:
    """Restores the ``kind`` checkpoint into the structure of ``template``.

    Args:
        folder: the run's ``checkpoints`` folder.
        kind: ``latest`` or ``best``.
        template: a pytree of arrays (or ``jax.ShapeDtypeStruct``) with the
            expected structure, shapes, dtypes and shardings.

    Returns:
        ``(tree, meta)``.

    Raises:
        CheckpointError: when the pointer is missing or unreadable, the
            folder is missing, orbax cannot restore it, the structure or
            shapes differ from ``template``, or the digest does not match.
    """
    pointer = folder / f"{kind}.json"
    try:
        record = _read_json(pointer)
    except FileNotFoundError:
        raise CheckpointError(
            f"{pointer}: missing; {folder} holds no complete {kind} checkpoint"
        ) from None
    if (not isinstance(record, dict) or record.get("format") != FORMAT
            or record.get("format_version") != FORMAT_VERSION):
        raise CheckpointError(f"{pointer}: not a {FORMAT} version "
                              f"{FORMAT_VERSION} pointer")
    target = folder / str(record.get("folder", ""))
    if not target.is_dir() or target == folder:
        raise CheckpointError(f"{pointer}: names {target}, which is missing")
    abstract = jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(np.shape(leaf), leaf.dtype,
                                          sharding=getattr(leaf, "sharding", None)),
        template)
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            tree = checkpointer.restore(target.absolute(), abstract)
    except Exception as error:  # orbax raises many types for bad folders.
        raise CheckpointError(
            f"{target}: cannot restore the {kind} checkpoint "
            f"({type(error).__name__}: {str(error)[:300]}); it is corrupt or was "
            f"written by a different model") from None
    if (jax.tree.structure(tree) != jax.tree.structure(template)
            or any(np.shape(a) != np.shape(b) for a, b in
                   zip(jax.tree.leaves(tree), jax.tree.leaves(template),
                       strict=True))):
        raise CheckpointError(f"{target}: holds a different model (parameter "
                              f"structure or shapes differ from the config's)")
    if tree_digest(tree) != record.get("digest"):
        raise CheckpointError(f"{target}: digest mismatch; the checkpoint is "
                              f"corrupt (its arrays differ from those saved)")
    return tree, dict(record.get("meta", {}))


def spec_to_json(spec: HybridSpec) -> dict[str, Any]:
    return dataclasses.asdict(spec)


def spec_from_json(raw: Mapping[str, Any]) -> HybridSpec:
    """Rebuilds a :class:`HybridSpec`; lists become tuples again."""
    fields = {field.name for field in dataclasses.fields(HybridSpec)}
    unknown = set(raw) - fields
    if unknown:
        raise CheckpointError(f"spec.json: unknown model fields {sorted(unknown)}")
    values = {key: tuple(value) if isinstance(value, list) else value
              for key, value in raw.items()}
    return HybridSpec(**values)


def write_run_files(folder: Path, config: Config, vocabulary: Vocabulary,
                    spec: HybridSpec) -> None:
    """Writes config, vocabulary and spec beside the checkpoints."""
    from sentinel_jax.config import save_config

    folder.mkdir(parents=True, exist_ok=True)
    save_config(config, folder / "config.yaml")
    write_json_atomic(folder / "vocabulary.json", vocabulary.to_json())
    write_json_atomic(folder / "spec.json", spec_to_json(spec))


def _flatten(raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def check_run_files(folder: Path, config: Config, vocabulary: Vocabulary,
                    spec: HybridSpec) -> None:
    """Checks that a checkpoint folder belongs to this config, data and model.

    Raises:
        CheckpointError: naming the first keys that differ.
    """
    try:
        saved_config = load_config(folder / "config.yaml")
    except ConfigError as error:
        raise CheckpointError(f"cannot resume: {error}") from None
    saved, current = _flatten(config_to_dict(saved_config)), _flatten(
        config_to_dict(config))
    changed = sorted(key for key in set(saved) | set(current)
                     if key not in RESUMABLE_KEYS
                     and saved.get(key) != current.get(key))
    if changed:
        details = ", ".join(f"{key}: {saved.get(key)!r} -> {current.get(key)!r}"
                            for key in changed[:5])
        raise CheckpointError(f"cannot resume {folder}: the config differs from "
                              f"the checkpoint's ({details})")
    try:
        saved_vocabulary = _read_json(folder / "vocabulary.json")
        saved_spec = _read_json(folder / "spec.json")
    except FileNotFoundError as error:
        raise CheckpointError(f"cannot resume: {error.filename} is missing") from None
    if Vocabulary.from_json(saved_vocabulary) != vocabulary:
        raise CheckpointError(f"cannot resume {folder}: the dataset's vocabulary "
                              f"differs from the checkpoint's")
    if saved_spec != json.loads(json.dumps(spec_to_json(spec))):
        raise CheckpointError(f"cannot resume {folder}: the model (spec.json) "
                              f"differs from this run's")


@dataclass(frozen=True)
class TrainedRun:
    """A trained detector, ready to score windows.

    Attributes:
        params: the best parameters (by the validation metric).
        spec: the model description.
        vocabulary: the name channels of the training data.
        threshold: decision threshold on :meth:`score`, chosen on validation.
        config: the resolved config of the run.
        run_dir: the run folder.
        meta: facts about the best checkpoint (epoch, step, metrics).
    """

    params: Any
    spec: HybridSpec
    vocabulary: Vocabulary
    threshold: float
    config: Config
    run_dir: Path
    meta: Mapping[str, Any]

    def score(self, ids: np.ndarray, tags: np.ndarray, hist: np.ndarray,
              batch_size: int = 1024) -> np.ndarray:
        """Anomaly scores ``float32 [batch]``: ``logit[attack] - logit[normal]``.

        This is the attack log-odds; a window is flagged when
        ``score >= threshold``.

        Args:
            ids: ``int32 [batch, time]``.
            tags: ``uint32 [batch, time]``.
            hist: ``float32 [batch, channels]``.
            batch_size: windows per device call.
        """
        return predict_scores(self.params, self.spec, ids, tags, hist,
                              batch_size=batch_size)


def load_run(run_dir: str | Path) -> TrainedRun:
    """Loads the best parameters of a finished run and all that goes with them.

    Raises:
        CheckpointError: when the run folder, its checkpoint or its threshold
            is missing or corrupt.
    """
    from sentinel_jax.models.hybrid import init_hybrid

    run_dir = Path(run_dir)
    folder = run_dir / CHECKPOINTS
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: missing; expected a run folder written "
                              f"by train.py")
    try:
        config = load_config(folder / "config.yaml")
        vocabulary = Vocabulary.from_json(_read_json(folder / "vocabulary.json"))
        spec = spec_from_json(_read_json(folder / "spec.json"))
        threshold_record = _read_json(folder / "threshold.json")
    except FileNotFoundError as error:
        raise CheckpointError(f"{error.filename}: missing; did training finish?"
                              ) from None
    except (ConfigError, ValueError, TypeError) as error:
        raise CheckpointError(f"{folder}: bad run file ({error})") from None
    template = jax.eval_shape(lambda: init_hybrid(jax.random.PRNGKey(0), spec))
    template = jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype,
                                          sharding=jax.sharding.SingleDeviceSharding(
                                              jax.devices()[0])), template)
    params, meta = restore_tree(folder, BEST, template)
    return TrainedRun(params=params, spec=spec, vocabulary=vocabulary,
                      threshold=float(threshold_record["threshold"]),
                      config=config, run_dir=run_dir, meta=meta)
