"""Builds the project's own labelled set of real strace captures.

Benign: record_profiles.py's everyday programs (the ones the synthetic
profiles were fitted on: shells, coreutils, tar/gzip, gcc, make, python3, an
http.server with a client, sqlite3, git, vi, dpkg/apt-cache, a cron-like
script, find/grep), each ``--repeats`` times, and programs the profiles never
saw (capture_benign.py). Attack: thirty-one harmless, real demonstrations of
the ten families in python3, C (compiled with cc here) and shell variants
(capture_attacks.py).

Everything runs inside a private mount and network namespace
(capture_sandbox.py): writes to system folders land in throw-away overlays,
the "remote" host lives on the namespace's own loopback, nothing leaves the
machine and nothing of it is changed. Without namespaces (``--no-sandbox``,
or no privilege for ``unshare``) the demos that write system paths are
skipped and the rest talk to 127.0.0.1.

Each program is recorded with the live monitor's strace flags
(``-f -q -ttt -yy -s 256``) into ``OUT/benign/`` or ``OUT/attack/``, and
``OUT/labels.csv`` lists them: file, label (benign|attack), family, variant,
program, command.

Usage:
  python scripts/build_captures.py                  # into cache/captures
  python scripts/build_captures.py --out DIR --only shell,inject_ptrace_c
  python scripts/build_captures.py --list
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import capture_sandbox
from capture_attacks import DEMOS, DemoContext, command_text
from capture_benign import BENIGN
from capture_programs import compile_programs
from record_profiles import PROFILES
from strace_tools import Tracer, use_tracer

from sentinel_jax.atomic import write_text_atomic
from sentinel_jax.monitor.strace_session import STRACE_FLAGS

logger = logging.getLogger("build_captures")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "cache" / "captures"
LABEL_COLUMNS = ("file", "label", "family", "variant", "program", "command")


@dataclass(frozen=True)
class CaptureTracer(Tracer):
    """The live monitor's strace flags; remembers the commands it traced."""

    commands: list = field(default_factory=list, compare=False, hash=False)

    def run(self, log, argv, cwd, **kwargs) -> int:
        self.commands.append(list(argv))
        return super().run(log, argv, cwd, **kwargs)

    def start(self, log, argv, cwd, env=None):
        self.commands.append(list(argv))
        return super().start(log, argv, cwd, env)


def benign_jobs(repeats: int) -> list[tuple[str, str, int, object]]:
    """(program, origin, repeat, recipe) for every benign capture."""
    jobs = [(name, "profile", k, recipe) for name, (_, recipe) in PROFILES.items()
            for k in range(repeats)]
    jobs += [(name, "unseen", k, recipe) for name, (_, recipe) in BENIGN.items()
             for k in range(max(1, repeats - 1))]
    return jobs


def _write_labels(out: Path, rows: list[dict[str, str]]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=LABEL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out / "labels.csv", text.getvalue())


def build(out: Path, *, repeats: int = 3, only: set[str] | None = None,
          sandbox: capture_sandbox.Sandbox | None = None) -> list[dict[str, str]]:
    """Records every wanted program into ``out``; returns the labels rows.

    Args:
        out: capture folder (``benign/``, ``attack/``, ``labels.csv``).
        repeats: recordings of each profile program (unseen ones get one less,
            at least one).
        only: program or demo names to record; all when ``None``.
        sandbox: the namespace's sandbox, set up; ``None`` to run without one.
    """
    if shutil.which("strace") is None:
        raise SystemExit("build_captures needs strace on PATH")
    out.mkdir(parents=True, exist_ok=True)
    work_root = out / ".work"
    bins = Path(tempfile.mkdtemp(prefix="sentinel-bins-"))
    drop = sandbox.tmp if sandbox else Path(tempfile.mkdtemp(prefix="sentinel-drop-"))
    home = sandbox.home if sandbox else Path(os.environ.get("HOME", "/root"))
    remote = capture_sandbox.REMOTE_HOST if sandbox else "127.0.0.1"
    tracer = CaptureTracer(STRACE_FLAGS)
    victim = subprocess.Popen(["sleep", "600"])
    rows: list[dict[str, str]] = []
    try:
        compile_programs(bins)
        with use_tracer(tracer):
            for program, origin, k, recipe in benign_jobs(repeats):
                if only and program not in only:
                    continue
                log = out / "benign" / f"{program}-{k}.strace"
                if _record(lambda w, log=log, r=recipe, k=k: r(log, w, k),
                           f"{program} run {k}", log, work_root, tracer, sandbox):
                    rows.append({"file": str(log.relative_to(out)),
                                 "label": "benign", "family": "normal",
                                 "variant": origin, "program": program,
                                 "command": command_text(tracer.commands[-1])})
            for demo in DEMOS:
                if only and demo.name not in only:
                    continue
                if demo.needs_sandbox and sandbox is None:
                    logger.warning("skipped %s: it needs the sandbox", demo.name)
                    continue
                log = out / "attack" / f"{demo.name}.strace"
                context = DemoContext(log=log, work=work_root, tmp=drop, bins=bins,
                                      remote=remote, home=home, victim=victim.pid)

                def run(work: Path, demo=demo, context=context) -> None:
                    context.work = work
                    demo.run(context)

                if _record(run, demo.name, log, work_root, tracer, sandbox):
                    rows.append({"file": str(log.relative_to(out)),
                                 "label": "attack", "family": demo.family,
                                 "variant": demo.variant, "program": demo.name,
                                 "command": command_text(context.command)})
    finally:
        victim.kill()
        victim.wait()
        shutil.rmtree(bins, ignore_errors=True)
        shutil.rmtree(work_root, ignore_errors=True)
        if sandbox is None:
            shutil.rmtree(drop, ignore_errors=True)
    _write_labels(out, rows)
    return rows


def _record(run, name: str, log: Path, work_root: Path, tracer: CaptureTracer,
            sandbox: capture_sandbox.Sandbox | None) -> bool:
    """Runs one recording in a fresh scratch folder; False when it failed."""
    if sandbox is not None:
        sandbox.reset()
    work_root.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    began = time.perf_counter()
    before = len(tracer.commands)
    with tempfile.TemporaryDirectory(prefix="cap-", dir=work_root) as work:
        try:
            run(Path(work))
        except (RuntimeError, subprocess.SubprocessError, OSError) as error:
            logger.warning("%s failed: %s", name, error)
            return False
    if len(tracer.commands) == before or not log.exists():
        logger.warning("%s recorded nothing", name)
        return False
    logger.info("recorded %s in %.1fs", name, time.perf_counter() - began)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"capture folder (default {DEFAULT_OUT})")
    parser.add_argument("--repeats", type=int, default=3,
                        help="recordings per profile program (default 3)")
    parser.add_argument("--only", default="",
                        help="comma-separated program and demo names")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run without the namespace (skips system-path demos)")
    parser.add_argument("--list", action="store_true",
                        help="list the programs and demos, then exit")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(message)s")
    if args.list:
        for name, (description, _) in {**PROFILES, **BENIGN}.items():
            print(f"benign  {name:24s} {description}")
        for demo in DEMOS:
            print(f"attack  {demo.name:24s} {demo.family}/{demo.variant}: "
                  f"{demo.mirrors}")
        return 0
    only = {name for name in args.only.split(",") if name} or None
    known = set(PROFILES) | set(BENIGN) | {demo.name for demo in DEMOS}
    if only and only - known:
        parser.error(f"unknown names in --only: {sorted(only - known)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    out = args.out.resolve()
    if not args.no_sandbox and not capture_sandbox.inside():
        if capture_sandbox.sandbox_available():
            script = str(Path(__file__).resolve())
            raw = list(sys.argv[1:] if argv is None else argv)
            return capture_sandbox.reexec_inside([script, *raw, "--out", str(out)])
        logger.warning("no namespaces here (unshare failed): recording without "
                       "the sandbox; demos that write system paths are skipped")
    sandbox = None
    if capture_sandbox.inside():
        sandbox = capture_sandbox.Sandbox()
        sandbox.setup()
    began = time.perf_counter()
    try:
        rows = build(out, repeats=args.repeats, only=only, sandbox=sandbox)
    finally:
        if sandbox is not None:
            sandbox.close()
    attacks = sum(row["label"] == "attack" for row in rows)
    print(f"{len(rows) - attacks} benign and {attacks} attack captures in "
          f"{time.perf_counter() - began:.0f}s; labels in {out / 'labels.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
