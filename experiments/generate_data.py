"""Build a dataset of encoded windows from one source of traces.

Sources:
  synthetic  the seeded generator of program behaviour and ten attack families
  adfa       the ADFA-LD folder (--input, or SENTINEL_ADFA_DIR)
  strace     an strace log, or a folder of logs with an optional labels.csv
             (columns file,label,family; label is benign or attack)
  pidnum     "PID SYSCALL_NUMBER" lines (--table TSV of number<TAB>name, or
             --arch for a kernel table)

Writes DIR/dataset.npz and DIR/metadata.json (vocabulary, families, counts per
split and family) and DIR/config.yaml.

Example:
  python experiments/generate_data.py --config configs/small.yaml --out runs/data
  python experiments/generate_data.py --source adfa --out runs/adfa
"""

from __future__ import annotations

import csv
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sentinel_jax.cli import UsageError, make_parser, resolve_config, run_main
from sentinel_jax.config import Config, apply_overrides, config_to_dict, save_config
from sentinel_jax.data.store import Dataset, build_dataset, save_dataset
from sentinel_jax.data.traces import NORMAL, Trace

logger = logging.getLogger("generate_data")


def _labelled_logs(folder: Path) -> list[tuple[Path, int, str]]:
    """(log, label, family) for each log of a capture folder."""
    labels_file = folder / "labels.csv"
    if not labels_file.exists():
        return [
            (path, 0, NORMAL)
            for path in sorted(folder.iterdir())
            if path.is_file() and path.suffix in (".log", ".txt", ".strace")
        ]
    rows = []
    with labels_file.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        missing = {"file", "label"} - set(reader.fieldnames or ())
        if missing:
            raise UsageError(
                f"{labels_file}: missing columns {sorted(missing)}; "
                "expected file,label,family"
            )
        for line, row in enumerate(reader, start=2):
            label_text = (row["label"] or "").strip().lower()
            if label_text not in ("benign", "attack", "0", "1"):
                raise UsageError(
                    f"{labels_file}:{line}: label {row['label']!r}; "
                    "expected benign or attack"
                )
            label = int(label_text in ("attack", "1"))
            family = (row.get("family") or "").strip() or (
                "attack" if label else NORMAL
            )
            rows.append((folder / row["file"], label, NORMAL if not label else family))
    return rows


def load_source_traces(
    config: Config,
    source: str,
    input_path: str | None,
    *,
    table: str | None = None,
    arch: str = "x86_64",
    dedupe: bool = False,
) -> list[Trace]:
    """The traces of one source, ready for :func:`build_dataset`."""
    if source == "synthetic":
        from sentinel_jax.data.synthetic import SyntheticDatasetGenerator

        return list(SyntheticDatasetGenerator(config).generate_traces())
    if source == "adfa":
        from sentinel_jax.data.adfa import default_adfa_dir, drop_duplicates, load_adfa

        root = Path(input_path) if input_path else default_adfa_dir()
        if root is None:
            raise UsageError(
                "no ADFA-LD folder: pass --input PATH or set SENTINEL_ADFA_DIR"
            )
        items = load_adfa(root)
        if dedupe:
            items = drop_duplicates(items)
        return [item.trace for item in items]
    if not input_path:
        raise UsageError(f"--source {source} needs --input PATH")
    path = Path(input_path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    if source == "strace":
        from sentinel_jax.data.strace import read_strace_traces

        logs = _labelled_logs(path) if path.is_dir() else [(path, 0, NORMAL)]
        traces: list[Trace] = []
        for log, label, family in logs:
            traces.extend(read_strace_traces(log, label=label, family=family))
        return traces
    if source == "pidnum":
        from sentinel_jax.data.pidnum import read_pidnum_traces, read_table

        number_table = read_table(table) if table else None
        return read_pidnum_traces(path, table=number_table, arch=arch)
    raise UsageError(f"unknown source {source!r}")


def generate(
    config: Config,
    out: Path,
    *,
    source: str,
    input_path: str | None,
    table: str | None = None,
    arch: str = "x86_64",
    dedupe: bool = False,
) -> Dataset:
    """Loads a source, builds the dataset and writes it to ``out``."""
    started = time.perf_counter()
    traces = load_source_traces(
        config, source, input_path, table=table, arch=arch, dedupe=dedupe
    )
    if not traces:
        raise UsageError(f"source {source!r} gave no traces")
    dataset = build_dataset(
        traces,
        **config.data.dataset_layout(),
        info={"source": source, "input": input_path or "", "dedupe": dedupe,
              "config": config_to_dict(config)},
    )
    save_dataset(dataset, out)
    save_config(config, out / "config.yaml")
    logger.info(
        "%d traces -> %d windows in %.1f s",
        len(traces),
        len(dataset),
        time.perf_counter() - started,
    )
    return dataset


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument(
        "--source",
        choices=("synthetic", "adfa", "strace", "pidnum"),
        help="where traces come from (default: data.source)",
    )
    parser.add_argument(
        "--input",
        metavar="PATH",
        help="ADFA-LD folder, strace log or folder, pid-number file",
    )
    parser.add_argument("--table", metavar="TSV", help="pidnum: number<TAB>name table")
    parser.add_argument(
        "--arch",
        default="x86_64",
        choices=("x86_64", "i386"),
        help="pidnum: kernel table when --table is not given",
    )
    parser.add_argument(
        "--dedupe",
        action="store_true",
        help="adfa: drop byte-identical duplicate traces",
    )
    args = parser.parse_args(argv)
    config = resolve_config(args)
    if args.source:
        config = apply_overrides(config, [f"data.source={args.source}"])
    input_path = args.input or config.data.input or None
    out = Path(args.out)
    dataset = generate(
        config,
        out,
        source=config.data.source,
        input_path=input_path,
        table=args.table,
        arch=args.arch,
        dedupe=args.dedupe,
    )
    counts = dataset.counts()
    print(
        f"dataset: {len(dataset)} windows of {dataset.time} events, "
        f"{dataset.channels} channels ({dataset.name_channels} names)"
    )
    for split, count in counts.items():
        print(
            f"  {split:5s} {count['windows']:7d} windows, {count['attack']:6d} attack"
        )
    print(f"written to {out / 'dataset.npz'} and {out / 'metadata.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
