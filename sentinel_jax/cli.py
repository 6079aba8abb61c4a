"""The command-line contract shared by every experiment script.

Every script takes ``--config FILE``, repeatable ``--set section.key=value``,
``--out DIR``, ``--quiet`` and ``--help``; it exits 0 on success and 2 on bad
usage or bad input, with one clear message on stderr.

Usage in a script::

    def main(argv=None) -> int:
        parser = make_parser(__doc__)
        parser.add_argument("--data", required=True)
        args = parser.parse_args(argv)
        config = resolve_config(args)
        ...

    if __name__ == "__main__":
        sys.exit(run_main(main))
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from sentinel_jax.config import Config, apply_overrides, load_config
from sentinel_jax.errors import InputError

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
RULE = "=" * 72


class UsageError(InputError):
    """Bad command-line usage or bad input given on the command line."""


def make_parser(
    description: str | None, *, out_default: str | None = None, config: bool = True
) -> argparse.ArgumentParser:
    """An argparse parser with the shared flags already added."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if config:
        parser.add_argument(
            "--config",
            metavar="FILE",
            help="YAML preset from configs/ (default: built-in "
            "reference-scale settings)",
        )
        parser.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="SECTION.KEY=VALUE",
            help="override one config value; repeatable",
        )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=out_default,
        required=out_default is None,
        help="folder for what this script writes",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars, warnings only in the log",
    )
    parser.add_argument(
        "--cpu-devices",
        type=int,
        metavar="N",
        action=_CpuDevices,
        help="split the CPU into N JAX devices, 0 for one per core (default "
        "1): each batch is then split over the cores (faster batched scoring; "
        "training was no faster on 2 cores)",
    )
    return parser


class _CpuDevices(argparse.Action):
    """Applies ``--cpu-devices`` as soon as it is parsed, before JAX starts."""

    def __call__(self, parser, namespace, value, option_string=None) -> None:
        from sentinel_jax.training.sharding import use_cpu_devices

        try:
            setattr(namespace, self.dest, use_cpu_devices(value))
        except ValueError as error:
            raise UsageError(f"{option_string} {value}: {error}") from None


def resolve_config(args: argparse.Namespace) -> Config:
    """The config named by ``--config`` with the ``--set`` overrides applied.

    ``--quiet`` also turns training progress bars off. Configures logging.
    """
    setup_logging(args.quiet)
    config = load_config(args.config)
    overrides = list(args.overrides)
    if args.quiet:
        overrides.append("training.progress=false")
    return apply_overrides(config, overrides)


def setup_logging(quiet: bool = False) -> None:
    """INFO to stderr (WARNING with ``quiet``), one short line per record."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname).1s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    for noisy in ("jax", "absl", "orbax", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def bad_input_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean bad input (exit status 2), not a bug."""
    return (
        InputError,
        FileNotFoundError,
        NotADirectoryError,
        IsADirectoryError,
        PermissionError,
    )


def run_main(
    main: Callable[[Sequence[str] | None], int | None],
    argv: Sequence[str] | None = None,
) -> int:
    """Runs a script's ``main`` and turns bad input into one message, exit 2."""
    try:
        return int(main(argv) or 0)
    except bad_input_errors() as error:
        name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "sentinel_jax"
        print(f"{name}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def load_experiment(name: str) -> ModuleType:
    """Imports ``experiments/NAME.py`` of this checkout as a module.

    The pipeline and the menu run the scripts' own ``main`` functions, so every
    way of starting a job goes through the same code.
    """
    path = EXPERIMENTS / f"{name}.py"
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: missing; jobs run the experiment scripts of a source checkout"
        )
    spec = importlib.util.spec_from_file_location(f"sentinel_experiments.{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def banner() -> str:
    """The start banner: versions, backend and devices."""
    import jax

    devices = jax.devices()
    kinds = sorted({device.device_kind for device in devices})
    return "\n".join([
        RULE,
        "  SENTINEL JAX - neuromorphic host intrusion detection",
        "  SNN-KAN hybrid | symbolic distillation | Rust detector | host monitors",
        RULE,
        f"  JAX {jax.__version__} | backend: {jax.default_backend()} | "
        f"devices: {len(devices)} x {', '.join(kinds)}",
        RULE,
    ])
