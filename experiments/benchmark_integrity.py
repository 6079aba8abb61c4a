"""Speed of the integrity validator, with AIDE side by side when installed.

Builds a tree of ``--files`` small files (1-4 KiB, 1,000 per folder) and one
``--large-mb`` file, then times ``baseline`` and ``check`` on each: ours
through IntegrityValidator, and Debian's ``aide --init`` / ``aide --check``
with a rule recording the same attributes and SHA-256, on the same tree in
the same run, so ratios compare like with like. Writes
DIR/benchmark_integrity.json.

Full size, as in the issue::

    python experiments/benchmark_integrity.py --out runs/bench_integrity

A short run::

    python experiments/benchmark_integrity.py --files 20000 --large-mb 256 \
        --out runs/bench_integrity
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sentinel_jax.atomic import write_json_atomic
from sentinel_jax.cli import UsageError, make_parser, resolve_config, run_main
from sentinel_jax.monitor.integrity import IntegrityValidator
from sentinel_jax.monitor.integrity_scan import ScanOptions

_PER_FOLDER = 1000
_AIDE_RULE = "p+i+n+u+g+s+m+c+sha256+xattrs+ftype"


def make_small_tree(root: Path, count: int, seed: int = 0) -> int:
    """``count`` files of 1-4 KiB under ``root``; returns their total bytes."""
    block = os.urandom(8192) if seed else bytes(range(256)) * 32
    total = 0
    for index in range(count):
        folder = root / f"d{index // _PER_FOLDER:04d}"
        if index % _PER_FOLDER == 0:
            folder.mkdir(parents=True)
        size = 1024 + (index * 7919) % 3072
        start = index % 4096
        (folder / f"f{index:06d}").write_bytes(
            index.to_bytes(8, "little") + block[start:start + size - 8])
        total += size
    return total


def make_large_file(root: Path, megabytes: int) -> int:
    """One file of ``megabytes`` MiB of random-looking bytes."""
    root.mkdir(parents=True)
    chunk = os.urandom(1 << 20)
    with open(root / "large.bin", "wb") as stream:
        for _ in range(megabytes):
            stream.write(chunk)
    return megabytes << 20


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def bench_ours(tree: Path, work: Path, threads: int, processes: int = 1,
               ) -> dict[str, float]:
    options = ScanOptions(hash_threads=threads, processes=processes)
    validator = IntegrityValidator([tree], work / "ours.sqlite", scan_options=options)
    baseline = _timed(validator.build_baseline)
    check = _timed(validator.run_integrity_check)
    return {"baseline_s": baseline, "check_s": check}


def bench_aide(aide: str, tree: Path, work: Path) -> dict[str, float]:
    config = work / "aide.conf"
    database = work / "aide.db"
    config.write_text(
        f"database_in=file:{database}\ndatabase_out=file:{database}.new\n"
        f"gzip_dbout=no\nreport_url=file:{work / 'aide.log'}\n"
        f"Bench = {_AIDE_RULE}\n{tree} Bench\n")

    def run(*args: str) -> None:
        done = subprocess.run([aide, f"--config={config}", *args],
                              capture_output=True, text=True)
        if done.returncode >= 14:  # 0-7 are change bits
            raise RuntimeError(f"aide {' '.join(args)} failed: {done.stderr[-500:]}")

    baseline = _timed(lambda: run("--init"))
    os.replace(f"{database}.new", database)
    check = _timed(lambda: run("--check"))
    return {"baseline_s": baseline, "check_s": check}


def _rates(times: dict[str, float], files: int, size: int) -> dict[str, float]:
    out = {}
    for phase in ("baseline", "check"):
        seconds = times[f"{phase}_s"]
        out[f"{phase}_s"] = round(seconds, 3)
        out[f"{phase}_files_per_s"] = round(files / seconds, 1)
        out[f"{phase}_mb_per_s"] = round(size / 1e6 / seconds, 1)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__, out_default="runs/bench_integrity")
    parser.add_argument("--files", type=int, default=100_000,
                        help="small files in the tree (default 100000)")
    parser.add_argument("--large-mb", type=int, default=1024,
                        help="size of the large file in MiB (default 1024)")
    parser.add_argument("--threads", type=int, default=2,
                        help="our threads for large files (default 2)")
    parser.add_argument("--processes", type=int,
                        default=ScanOptions().processes,
                        help="our processes for big trees, workers forked only "
                        "for idle CPUs (default %(default)s)")
    parser.add_argument("--workdir", help="where to build the trees "
                        "(default: a temporary folder, removed afterwards)")
    parser.add_argument("--no-aide", action="store_true",
                        help="skip AIDE even when it is installed")
    args = parser.parse_args(argv)
    resolve_config(args)
    if min(args.files, args.large_mb, args.threads, args.processes) < 1:
        raise UsageError(
            "--files, --large-mb, --threads and --processes must be positive")
    aide = None if args.no_aide else shutil.which("aide")
    work = Path(tempfile.mkdtemp(prefix="bench_integrity_", dir=args.workdir))
    results = []
    try:
        cases = [("small_files", args.files, lambda root: make_small_tree(
                     root, args.files)),
                 ("large_file", 1, lambda root: make_large_file(root, args.large_mb))]
        for name, files, build in cases:
            tree = work / name
            size = build(tree)
            os.sync()  # no writeback of the new tree during the timings
            print(f"{name}: {files} files, {size / 1e6:.0f} MB", flush=True)
            row = {"case": name, "files": files, "bytes": size,
                   "ours": _rates(bench_ours(tree, work, args.threads,
                                             args.processes), files, size)}
            if aide:
                row["aide"] = _rates(bench_aide(aide, tree, work), files, size)
                row["speedup"] = {
                    phase: round(row["aide"][f"{phase}_s"] / row["ours"][f"{phase}_s"],
                                 2) for phase in ("baseline", "check")}
            results.append(row)
            print(f"  ours: {row['ours']}")
            if aide:
                print(f"  aide: {row['aide']}\n  speedup: {row['speedup']}")
            shutil.rmtree(tree)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    version = None
    if aide:
        version = subprocess.run([aide, "--version"], capture_output=True,
                                 text=True).stdout.splitlines()[:1]
    out = Path(args.out)
    write_json_atomic(out / "benchmark_integrity.json", {
        "threads": args.threads, "processes": args.processes,
        "cpus": os.cpu_count(), "aide": version,
        "aide_rule": _AIDE_RULE if aide else None, "results": results})
    print(f"wrote {out / 'benchmark_integrity.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
