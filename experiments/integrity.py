"""File-integrity baseline and check, with timestamp-forgery detection.

    python experiments/integrity.py baseline --db DB [PATH ...]
    python experiments/integrity.py check --db DB [--json FILE]

``baseline`` records every entry under the paths (default: the config's
``monitor.integrity_paths``) into the SQLite file DB, atomically; ``check``
scans the baseline's paths again and reports what was added, removed or
changed, attribute changes and forged timestamps, each with its reason.
``--hmac-key-file`` signs the baseline, and a check refuses a baseline whose
signature does not verify.

Exit status, AIDE style: the sum of 1 (added), 2 (removed), 4 (changed) and
8 (forged timestamps); 16 for bad usage or input, 17 for a baseline refused
as tampered, 18 for an I/O error. Paths in reports are escaped: invalid
UTF-8 and control bytes as \\xNN, newline as \\n, backslash as \\\\.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from sentinel_jax.atomic import write_json_atomic
from sentinel_jax.cli import UsageError, make_parser, resolve_config
from sentinel_jax.config import ConfigError
from sentinel_jax.monitor.integrity import IntegrityReport, IntegrityValidator
from sentinel_jax.monitor.integrity_scan import ScanOptions
from sentinel_jax.monitor.integrity_store import BaselineError, BaselineTamperedError
from sentinel_jax.monitor.pathnames import escape_path

EXIT_USAGE, EXIT_TAMPERED, EXIT_IO = 16, 17, 18
_SHOWN = 20


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting 2 (2 means "removed" here)."""

    def error(self, message: str):  # noqa: D102 - argparse hook
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    base = make_parser(__doc__, out_default="")
    parser = _Parser(description=__doc__, parents=[base], add_help=False,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("baseline", "check"))
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="files or folders to watch (baseline only)")
    parser.add_argument("--db", required=True, metavar="DB",
                        help="the baseline SQLite file")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON")
    parser.add_argument("--hmac-key-file", metavar="FILE",
                        help="file holding the key that signs the baseline")
    parser.add_argument("--threads", type=int, default=2,
                        help="hashing threads (default 2)")
    parser.add_argument("--exclude", action="append", default=[], metavar="PATH",
                        help="path never entered or recorded; repeatable")
    parser.add_argument("--one-filesystem", action="store_true",
                        help="stay on the filesystem of each watched path")
    return parser


def _read_key(path: str | None) -> bytes | None:
    if path is None:
        return None
    key = Path(path).read_bytes().strip()
    if not key:
        raise UsageError(f"{path}: HMAC key file is empty")
    return key


def _print_summary(report: IntegrityReport) -> None:
    summary = report.summary()
    print(f"{report.command}: {summary['entries']} entries in "
          f"{summary['seconds']:.2f} s ({summary['entries_per_s']:.0f} entries/s, "
          f"{summary['mb_per_s']:.0f} MB/s); added {summary['added']}, removed "
          f"{summary['removed']}, changed {summary['changed']}, attributes "
          f"{summary['attribute_changes']}, forged timestamps "
          f"{summary['forgeries']}, errors {summary['errors']}")
    groups = [("added", report.added), ("removed", report.removed),
              ("changed", report.changed), ("attributes", report.attribute_changes),
              ("forged", report.forgeries), ("error", report.errors)]
    for label, items in groups:
        for item in items[:_SHOWN]:
            print(f"  {label}: {escape_path(item.path)}: {item.reason}")
        if len(items) > _SHOWN:
            print(f"  ... and {len(items) - _SHOWN} more {label} (see --json)")


def _run(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    options = ScanOptions(hash_threads=args.threads, one_filesystem=args.one_filesystem,
                          skip_paths=tuple(os.fsencode(p) for p in args.exclude))
    key = _read_key(args.hmac_key_file)
    progress = not args.quiet and sys.stderr.isatty()
    if args.command == "baseline":
        paths = args.paths or config.monitor.integrity_paths
        missing = [path for path in paths if not os.path.lexists(path)]
        if missing:
            raise UsageError(f"{missing[0]}: no such file or folder to watch")
        validator = IntegrityValidator(paths, args.db, hmac_key=key,
                                       scan_options=options, progress=progress)
        report = validator.build_baseline()
    else:
        if args.paths:
            raise UsageError("check takes no paths: it scans the baseline's paths")
        validator = IntegrityValidator.from_baseline(
            args.db, hmac_key=key, scan_options=options, progress=progress)
        report = validator.run_integrity_check()
    if args.json:
        write_json_atomic(args.json, report.to_json())
    if args.out:
        write_json_atomic(Path(args.out) / f"integrity_{args.command}.json",
                          report.to_json())
    if not args.quiet:
        _print_summary(report)
    return report.exit_status


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``baseline`` or ``check``; returns the AIDE-style exit status."""
    try:
        args = _parser().parse_intermixed_args(argv)
        return _run(args)
    except BaselineTamperedError as error:
        print(f"integrity: refused: {error}", file=sys.stderr)
        return EXIT_TAMPERED
    except (UsageError, ConfigError, BaselineError, ValueError) as error:
        print(f"integrity: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        logging.getLogger(__name__).debug("I/O error", exc_info=True)
        print(f"integrity: I/O error: {error}", file=sys.stderr)
        return EXIT_IO


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
