"""The interactive SELECT + ENTER menu (``python -m sentinel_jax``).

Each option asks a few questions, each with a default in brackets (ENTER takes
it), then runs the same ``main`` as the experiment script of that job, so the
menu and the scripts can never drift apart. It reads plain lines, so it can be
driven from a pipe::

    printf '1\\nconfigs/tiny.yaml\\nruns/menu-data\\n0\\n' | python -m sentinel_jax

A bad choice asks again; Ctrl-C inside a job returns to the menu; Ctrl-C or
end of input at the menu exits with status 0.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import yaml

from sentinel_jax.cli import banner, load_experiment, run_main
from sentinel_jax.config import (
    ConfigError,
    apply_overrides,
    config_to_dict,
    load_config,
    save_config,
)

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


class InputClosedError(Exception):
    """Standard input closed: leave the menu."""


@dataclass
class Session:
    """Input and output streams of one menu session."""

    stdin: TextIO
    stdout: TextIO

    def say(self, text: str = "") -> None:
        print(text, file=self.stdout, flush=True)

    def ask(self, question: str, default: str = "") -> str:
        """One line of input; ``default`` when the line is empty."""
        suffix = f" [{default}]" if default else ""
        self.stdout.write(f"  {question}{suffix}: ")
        self.stdout.flush()
        line = self.stdin.readline()
        if not line:
            raise InputClosedError
        answer = line.strip()
        if not self.stdin.isatty():
            self.stdout.write(answer + "\n")
        return answer or default


def _run(session: Session, script: str, argv: Sequence[str]) -> int:
    session.say(f"\n  $ python experiments/{script}.py {shlex.join(argv)}\n")
    module = load_experiment(script)
    try:
        status = run_main(module.main, list(argv))
    except SystemExit as exit_:  # argparse exits on bad flags
        status = int(exit_.code or 0)
    session.say(f"\n  finished with status {status}")
    return status


def _preset(session: Session) -> str:
    return session.ask("config preset", str(CONFIGS.relative_to(REPO) / "small.yaml"))


def generate(session: Session) -> int:
    source = session.ask("source (synthetic, adfa, strace, pidnum)", "synthetic")
    argv = ["--config", _preset(session), "--source", source]
    if source != "synthetic":
        argv += ["--input", session.ask("input path")]
    argv += ["--out", session.ask("output folder", "runs/menu/data")]
    return _run(session, "generate_data", argv)


def train(session: Session) -> int:
    argv = [
        "--config",
        _preset(session),
        "--data",
        session.ask("dataset folder", "runs/menu/data"),
        "--out",
        session.ask("run folder", "runs/menu"),
    ]
    return _run(session, "train", argv)


def pipeline(session: Session) -> int:
    argv = [
        "--config",
        _preset(session),
        "--out",
        session.ask("run folder", "runs/menu-pipeline"),
    ]
    return _run(session, "pipeline", argv)


def _trained_run_args(session: Session) -> list[str]:
    """``--run``, ``--data`` and ``--out`` for a job on a trained run."""
    run = session.ask("run folder", "runs/menu")
    data = session.ask("dataset folder", f"{run}/data")
    return ["--run", run, "--data", data, "--out", run]


def evaluate(session: Session) -> int:
    return _run(session, "evaluate", _trained_run_args(session))


def distill(session: Session, rust: bool = True) -> int:
    argv = _trained_run_args(session)
    return _run(session, "distill", argv if rust else [*argv, "--no-rust"])


def benchmark(session: Session) -> int:
    argv = [
        "--out",
        session.ask("output folder", "runs/menu-benchmark"),
        "--batches",
        session.ask("batch sizes", "1,256"),
    ]
    return _run(session, "benchmark", argv)


def live_monitor(session: Session) -> int:
    argv = [
        "--checkpoint",
        session.ask("run folder", "runs/menu"),
        "--out",
        session.ask("output folder", "runs/menu-monitor"),
    ]
    replay = session.ask("strace log to replay (empty: run a command)")
    if replay:
        return _run(session, "monitor", [*argv, "--replay", replay])
    command = session.ask("command to watch", "ls -la /tmp")
    return _run(session, "monitor", [*argv, "--", *shlex.split(command)])


def entropy(session: Session) -> int:
    argv = [
        "--seconds",
        session.ask("seconds", "10"),
        "--interval",
        session.ask("interval (s)", "0.5"),
        "--out",
        session.ask("output folder", "runs/menu-entropy"),
    ]
    return _run(session, "entropy", argv)


def integrity(session: Session) -> int:
    action = session.ask("baseline or check", "check")
    database = session.ask("baseline database", "runs/menu-integrity.sqlite")
    argv = [action, "--db", database]
    if action == "baseline":
        argv += shlex.split(session.ask("paths to watch", "/etc"))
    return _run(session, "integrity", argv)


def configuration(session: Session) -> int:
    """Shows a preset, applies ``section.key=value`` edits, saves it as YAML."""
    path = Path(_preset(session))
    try:
        config = load_config(path)
    except ConfigError as error:
        session.say(f"  {error}")
        return 2
    session.say(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    while True:
        edit = session.ask("edit section.key=value (empty to finish)")
        if not edit:
            break
        try:
            config = apply_overrides(config, [edit])
            session.say(f"  ok: {edit}")
        except ConfigError as error:
            session.say(f"  {error}")
    target = session.ask("save as", str(path))
    save_config(config, target)
    session.say(f"  saved {target}")
    return 0


@dataclass(frozen=True)
class Option:
    key: str
    title: str
    where: str
    action: Callable[[Session], int]


OPTIONS: tuple[Option, ...] = (
    Option("1", "Generate Dataset", "experiments/generate_data.py", generate),
    Option("2", "Train Model", "experiments/train.py", train),
    Option("3", "FULL PIPELINE (Auto)", "experiments/pipeline.py", pipeline),
    Option("4", "Evaluate", "experiments/evaluate.py", evaluate),
    Option(
        "5",
        "Symbolic Compression",
        "experiments/distill.py --no-rust",
        lambda session: distill(session, rust=False),
    ),
    Option("6", "Rust Export", "experiments/distill.py", distill),
    Option("7", "Inference Benchmark", "experiments/benchmark.py", benchmark),
    Option("8", "Live Monitor", "experiments/monitor.py", live_monitor),
    Option("9", "Entropy Monitor", "experiments/entropy.py", entropy),
    Option("10", "Integrity Check", "experiments/integrity.py", integrity),
    Option("11", "Configuration", "configs/*.yaml", configuration),
)


def render_menu() -> str:
    lines = ["", "  MAIN MENU - SELECT + ENTER", "  " + "-" * 40]
    for option in OPTIONS:
        lines.append(f"  [{option.key:>2}]  {option.title:<26}({option.where})")
    lines.append("  [ 0]  Exit")
    return "\n".join(lines)


def run_menu(stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Runs the menu until Exit, end of input or Ctrl-C at the prompt."""
    session = Session(stdin or sys.stdin, stdout or sys.stdout)
    session.say(banner())
    choices = {option.key: option for option in OPTIONS}
    while True:
        session.say(render_menu())
        try:
            choice = session.ask(f"Select [0-{len(OPTIONS)}]")
        except (InputClosedError, KeyboardInterrupt):
            session.say("\n  bye")
            return 0
        if choice in ("0", "q", "exit"):
            session.say("  bye")
            return 0
        option = choices.get(choice)
        if option is None:
            session.say(
                f"  {choice!r} is not an option; enter a number from 0 to "
                f"{len(OPTIONS)}"
            )
            continue
        try:
            option.action(session)
        except InputClosedError:
            session.say("\n  bye")
            return 0
        except KeyboardInterrupt:
            session.say("\n  interrupted; back to the menu")
        except (FileNotFoundError, ConfigError) as error:
            session.say(f"  {error}")
