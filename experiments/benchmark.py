"""Speed benchmarks: samples/s, latency, FLOPs and share of matmul peak.

Sections are selected with ``--only`` (default: all). Each section appends
rows to ``DIR/benchmark.json``:
``{"peak_gflops": ..., "results": [{model, encoding, phase, batch,
samples_per_s, p50_ms, p99_ms, flops_per_sample, peak_fraction, compile_s,
...}]}``.

``forward`` times the inference path:
:func:`sentinel_jax.models.prepared_logits` on parameters prepared once
(:func:`~sentinel_jax.models.prepare_hybrid`), as ``InferenceEngine`` loads
them (batches of up to ``BAKED_MAX_BATCH`` with the parameters compiled in, as
its small buckets are); ``train`` times the training loop's jitted step,
several steps per call as the loop runs them (``--steps-per-call``, default 8;
the loop runs 32): a call of one step also pays for its fresh buffers' page
faults, which on the 2-core CPU made an event-encoded step at batch 256 look
about 1.7x slower than it is in the loop. Its figures are per step (a call's
time divided by its steps).

``peak_gflops`` is this machine's float32 matmul rate, measured in the same
run (a square jitted matmul). ``peak_fraction`` divides the FLOPs a model
actually needs (counted by hand, :func:`sentinel_jax.models.forward_flops`;
a training step counts 3x forward) by that peak. XLA's own count is kept
beside it as ``xla_flops_per_sample``.

With ``--cpu-devices 0`` the CPU runs as one JAX device per core and every
batch the devices can split evenly is split over them (parameters copied to
each; the train step is :func:`sentinel_jax.training.steps.data_parallel_grad`);
batch 1 runs on one device.

Example::

    python experiments/benchmark.py --out runs/bench --only models \\
        --batches 1,1024 --repeats 20
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from sentinel_jax.atomic import write_json_atomic
from sentinel_jax.cli import UsageError, make_parser, resolve_config, run_main
from sentinel_jax.config import Config, TrainingConfig
from sentinel_jax.models import (
    HybridSpec,
    forward_flops,
    init_hybrid,
    prepare_hybrid,
    prepared_logits,
)
from sentinel_jax.scoring import BAKED_MAX_BATCH, compile_window_scores
from sentinel_jax.training.losses import LossWeights
from sentinel_jax.training.sharding import make_mesh, replicate, shard_batch
from sentinel_jax.training.state import init_train_state, make_optimizer
from sentinel_jax.training.steps import make_run_steps, make_train_step

TRAIN_FLOPS_FACTOR = 3  # backward ~ 2x forward


def time_calls(fn: Callable[[], object], repeats: int) -> np.ndarray:
    """Wall seconds of ``repeats`` calls, each waited on, after one warm-up."""
    jax.block_until_ready(fn())
    seconds = np.empty(repeats)
    for index in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        seconds[index] = time.perf_counter() - start
    return seconds


def pin_to_cpus(cpus: Sequence[int]) -> None:
    """Confines every thread of this process, and those it starts later,
    to ``cpus``.

    Why it matters for latency: at batch 1, XLA hands work between its
    threads several times per call. On a virtual machine an idle CPU wakes
    slowly, so those hand-overs cost more than the work; on one CPU they are
    a switch between threads of one core. Measured here: batch-1 p50 about
    half with ``--cpus 0`` (throughput at large batches halves too).

    Raises:
        UsageError: a CPU this process may not run on.
    """
    allowed = os.sched_getaffinity(0)
    if not set(cpus) <= allowed:
        raise UsageError(f"--cpus {','.join(map(str, cpus))}: this process may "
                         f"only run on CPUs {sorted(allowed)}")
    for thread in os.listdir("/proc/self/task"):  # threads JAX already runs
        os.sched_setaffinity(int(thread), set(cpus))


def measure_peak_gflops(size: int = 1024, repeats: int = 10) -> float:
    """Float32 matmul GFLOP/s of this machine (best of ``repeats``)."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    matmul = jax.jit(jnp.matmul).lower(a, b).compile()
    best = time_calls(lambda: matmul(a, b), repeats).min()
    return 2 * size**3 / best / 1e9


def xla_flops(compiled) -> float:
    """FLOPs of a compiled function by XLA's cost analysis (nan if absent)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list | tuple):
        analysis = analysis[0] if analysis else {}
    return float((analysis or {}).get("flops", float("nan")))


def random_windows(spec: HybridSpec, batch: int, seed: int = 0):
    """ids, tags, hist and labels shaped like real encoded windows."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, spec.name_channels, (batch, spec.time), dtype=np.int32)
    tags = np.where(rng.random((batch, spec.time)) < 0.1,
                    rng.integers(1, 1 << 16, (batch, spec.time)), 0).astype(np.uint32)
    hist = rng.dirichlet(np.full(spec.channels, 0.3), batch).astype(np.float32)
    labels = rng.integers(0, 2, batch).astype(np.int32)
    return tuple(map(jnp.asarray, (ids, tags, hist, labels)))


def make_run_step(spec: HybridSpec, training: TrainingConfig, mesh: Mesh):
    """The training loop's own jitted step (loss terms, clipping, schedule).

    Returns:
        ``(run_steps, weights)``: :func:`make_run_steps` over the real train
        step, which takes a stack of batches.
    """
    optimizer = make_optimizer(training.learning_rate, training.weight_decay,
                               training.clip_norm, warmup_steps=100,
                               total_steps=10_000)
    step = make_train_step(spec, optimizer, LossWeights.from_config(training),
                           mesh)
    return make_run_steps(step), optimizer


def batch_mesh(batch: int) -> Mesh:
    """All devices when they split ``batch`` evenly, else the first alone
    (batch 1 always runs on one device)."""
    devices = jax.devices()
    return make_mesh(devices if batch % len(devices) == 0 else devices[:1])


def bench_model(spec: HybridSpec, model: str, phase: str, batch: int, repeats: int,
                peak_gflops: float, training: TrainingConfig | None = None,
                steps_per_call: int = 8) -> dict:
    """One result row: times ``phase`` (forward or train) at ``batch``;
    a train call runs ``steps_per_call`` steps and counts per step."""
    params = init_hybrid(jax.random.key(0), spec)
    mesh = batch_mesh(batch)
    ids, tags, hist, labels = random_windows(spec, batch)
    start = time.perf_counter()
    if phase == "forward":
        # The inference path: parameters prepared once, as InferenceEngine
        # does at load, then only the per-window work is timed.
        prepared = replicate(jax.jit(prepare_hybrid, static_argnums=1)(params, spec),
                             mesh)
        placed = shard_batch({"ids": ids, "tags": tags, "hist": hist}, mesh)
        ids, tags, hist = placed["ids"], placed["tags"], placed["hist"]
        if batch <= BAKED_MAX_BATCH:
            # As InferenceEngine compiles its small buckets: parameters baked in.
            compiled, _ = compile_window_scores(prepared, spec, batch, baked=True)
            arguments = (ids, tags, hist)
        else:
            forward = jax.jit(lambda p, i, t, h: prepared_logits(p, spec, i, t, h))
            arguments = (prepared, ids, tags, hist)
            compiled = forward.lower(*arguments).compile()
        compile_s = time.perf_counter() - start
        seconds = time_calls(lambda: compiled(*arguments), repeats)
        hand = forward_flops(spec)
    else:
        run_steps, optimizer = make_run_step(spec, training or TrainingConfig(),
                                             mesh)
        holder = {"state": replicate(init_train_state(params, optimizer), mesh)}
        stack = {"ids": ids, "tags": tags, "hist": hist, "labels": labels,
                 "mask": jnp.ones((batch,), jnp.float32)}
        stack = shard_batch({name: np.repeat(np.asarray(array)[None],
                                             steps_per_call, axis=0)
                             for name, array in stack.items()}, mesh, 1)
        compiled = run_steps.lower(holder["state"], stack).compile()
        compile_s = time.perf_counter() - start

        def run():
            holder["state"], metrics = compiled(holder["state"], stack)
            return metrics["loss"]

        seconds = time_calls(run, repeats) / steps_per_call
        hand = TRAIN_FLOPS_FACTOR * forward_flops(spec)
    p50 = float(np.percentile(seconds, 50))
    samples_per_s = batch / p50
    return {
        "model": model, "encoding": spec.encoding, "phase": phase, "batch": batch,
        "samples_per_s": samples_per_s, "p50_ms": 1e3 * p50,
        "p99_ms": 1e3 * float(np.percentile(seconds, 99)),
        "flops_per_sample": hand,
        # XLA's count is of one device's share of the batch, and counts a
        # scan's body once: a call of 8 train steps counts as one step.
        "xla_flops_per_sample": xla_flops(compiled) * mesh.devices.size / batch,
        "peak_fraction": hand * samples_per_s / (peak_gflops * 1e9),
        "compile_s": compile_s, "repeats": repeats,
        "devices": int(mesh.devices.size),
        "steps_per_call": steps_per_call if phase == "train" else 1,
    }


MODELS = {"hybrid": ("snn", "kan"), "snn": ("snn",), "kan": ("kan",)}


def models_section(config: Config, args, peak_gflops: float) -> list[dict]:
    """The detector's models: each encoding, phase and batch size."""
    rows = []
    base = HybridSpec.from_config(config.model, config.data)
    for model in args.models:
        for encoding in args.encodings:
            spec = dataclasses.replace(base, encoding=encoding,
                                       branches=MODELS[model])
            for phase in args.phases:
                for batch in args.batches:
                    repeats = args.repeats * (10 if batch == 1 else 1)
                    row = bench_model(spec, model, phase, batch, repeats,
                                      peak_gflops, config.training,
                                      args.steps_per_call)
                    rows.append(row)
                    if not args.quiet:
                        print(f"{model:6s} {encoding:5s} {phase:7s} b={batch:<5d} "
                              f"{row['samples_per_s']:>10.0f}/s "
                              f"p50 {row['p50_ms']:8.3f} ms "
                              f"p99 {row['p99_ms']:8.3f} ms "
                              f"peak {100 * row['peak_fraction']:5.1f}% "
                              f"compile {row['compile_s']:.1f}s", flush=True)
    return rows


SECTIONS = {"models": models_section}


def _csv(kind: Callable[[str], object], choices: Sequence | None = None):
    def parse(text: str) -> list:
        values = [kind(part) for part in text.split(",") if part]
        bad = [v for v in values if choices is not None and v not in choices]
        if not values or bad:
            allowed = f" of {', '.join(map(str, choices))}" if choices else ""
            raise UsageError(f"expected a comma-separated list{allowed}, got {text!r}")
        return values
    return parse


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__, out_default="runs/benchmark")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"sections to run, of {', '.join(SECTIONS)}")
    parser.add_argument("--batches", default="1,256,1024")
    parser.add_argument("--encodings", default="event,rate")
    parser.add_argument("--phases", default="forward,train")
    parser.add_argument("--models", default="hybrid",
                        help=f"models, of {', '.join(MODELS)}")
    parser.add_argument("--repeats", type=int, default=20,
                        help="timed calls per row (10x at batch 1)")
    parser.add_argument("--steps-per-call", type=int, default=8,
                        help="train steps per timed call, as the training loop "
                             "scans them (figures are per step)")
    parser.add_argument("--cpus", default=None,
                        help="pin every thread of this run to these CPUs, e.g. 0 "
                             "(lowest batch-1 latency on a virtual machine)")
    args = parser.parse_args(argv)
    try:
        args.only = _csv(str, tuple(SECTIONS))(args.only)
        args.batches = _csv(int)(args.batches)
        args.encodings = _csv(str, ("event", "rate"))(args.encodings)
        args.phases = _csv(str, ("forward", "train"))(args.phases)
        args.models = _csv(str, tuple(MODELS))(args.models)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.repeats < 1 or min(args.batches) < 1 or args.steps_per_call < 1:
        raise UsageError("--repeats, --steps-per-call and every batch size must "
                         "be >= 1")
    config = resolve_config(args)
    if args.cpus is not None:
        pin_to_cpus(_csv(int)(args.cpus))
    peak = measure_peak_gflops()
    if not args.quiet:
        print(f"float32 matmul peak: {peak:.1f} GFLOP/s on {jax.devices()[0]}")
    results = []
    for name in args.only:
        results.extend(SECTIONS[name](config, args, peak))
    out = {"peak_gflops": peak, "device": str(jax.devices()[0]),
           "cpus": sorted(os.sched_getaffinity(0)), "results": results}
    path = f"{args.out}/benchmark.json"
    write_json_atomic(path, out)
    if not args.quiet:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
