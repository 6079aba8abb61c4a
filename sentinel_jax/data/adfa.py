"""Reader for the ADFA Linux Dataset (ADFA-LD, Creech & Hu, UNSW Canberra).

Layout as published::

    Training_Data_Master/UTD-0001.txt ...        833 normal traces
    Validation_Data_Master/UVD-0001.txt ...    4,372 normal traces
    Attack_Data_Master/<Family>_<run>/UAD-*.txt  746 attack traces, 60 runs

Each file is one line of space-separated **i386** system-call numbers, with
no pid, time or arguments, so ADFA-LD events carry no tags. The family and
the attack run are kept per trace: a run is the unit a leak-free split keeps
together. The dataset is never copied into the project; pass its folder, or
set ``SENTINEL_ADFA_DIR``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sentinel_jax.data.syscalls import names_from_numbers
from sentinel_jax.data.traces import NORMAL, Trace
from sentinel_jax.errors import InputError

logger = logging.getLogger(__name__)

TRAINING = "Training_Data_Master"
VALIDATION = "Validation_Data_Master"
ATTACK = "Attack_Data_Master"
PARTS = (TRAINING, VALIDATION, ATTACK)
FAMILIES = (
    "Adduser",
    "Hydra_FTP",
    "Hydra_SSH",
    "Java_Meterpreter",
    "Meterpreter",
    "Web_Shell",
)
ENV_VARIABLE = "SENTINEL_ADFA_DIR"
_RUN_FOLDER = re.compile(r"^(?P<family>[A-Za-z_]+?)_(?P<run>\d+)$")


class AdfaError(InputError):
    """The folder is not an ADFA-LD copy, or a trace file is unreadable."""


@dataclass(frozen=True)
class AdfaTrace:
    """One ADFA-LD trace with where it came from.

    Attributes:
        trace: the trace (canonical names, no tags).
        part: ``Training_Data_Master``, ``Validation_Data_Master`` or
            ``Attack_Data_Master``.
        run: the attack run folder (``Hydra_FTP_3``), empty for normal traces.
        digest: SHA-256 of the file's bytes, for finding duplicate traces.
    """

    trace: Trace
    part: str
    run: str
    digest: str


def default_adfa_dir() -> Path | None:
    """``SENTINEL_ADFA_DIR``, else ``../shared/datasets/adfa-ld`` beside the
    project if it exists, else ``None``."""
    from_env = os.environ.get(ENV_VARIABLE)
    if from_env:
        return Path(from_env)
    beside = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "adfa-ld"
    return beside if beside.is_dir() else None


def _parse_numbers(path: Path, text: str) -> list[int]:
    try:
        return [int(token) for token in text.split()]
    except ValueError:
        bad = next(t for t in text.split() if not t.lstrip("-").isdigit())
        raise AdfaError(
            f"{path}: expected space-separated syscall numbers, found {bad[:40]!r}"
        ) from None


def _read_trace(
    path: Path, *, label: int, family: str, group: str, part: str, run: str
) -> AdfaTrace:
    data = path.read_bytes()
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise AdfaError(f"{path}: not ASCII; expected syscall numbers") from None
    names = names_from_numbers(_parse_numbers(path, text), arch="i386")
    trace = Trace.from_names(
        names,
        label=label,
        family=family,
        trace_id=f"{part}/{run + '/' if run else ''}{path.name}",
        group=group,
        source="adfa",
    )
    return AdfaTrace(
        trace=trace, part=part, run=run, digest=hashlib.sha256(data).hexdigest()
    )


def _run_family(folder_name: str) -> str:
    match = _RUN_FOLDER.match(folder_name)
    if not match or match.group("family") not in FAMILIES:
        raise AdfaError(
            f"attack folder {folder_name!r}: expected <Family>_<run> "
            f"with a family among {', '.join(FAMILIES)}"
        )
    return match.group("family")


def iter_adfa(root: str | os.PathLike[str]) -> Iterator[AdfaTrace]:
    """Yields every trace of an ADFA-LD folder in a stable order.

    Normal traces form one group each; attack traces are grouped by their run
    folder, so a split keeps a run on one side.

    Raises:
        AdfaError: if a part folder is missing or a file is not a trace.
    """
    root = Path(root)
    for part in PARTS:
        if not (root / part).is_dir():
            raise AdfaError(
                f"{root}: missing {part}/; expected an ADFA-LD folder with "
                f"{', '.join(PARTS)}"
            )
    for part in (TRAINING, VALIDATION):
        for path in sorted((root / part).glob("*.txt")):
            yield _read_trace(
                path,
                label=0,
                family=NORMAL,
                group=f"{part}/{path.stem}",
                part=part,
                run="",
            )
    for run_folder in sorted(p for p in (root / ATTACK).iterdir() if p.is_dir()):
        family = _run_family(run_folder.name)
        for path in sorted(run_folder.glob("*.txt")):
            yield _read_trace(
                path,
                label=1,
                family=family,
                group=f"{ATTACK}/{run_folder.name}",
                part=ATTACK,
                run=run_folder.name,
            )


def load_adfa(root: str | os.PathLike[str]) -> list[AdfaTrace]:
    """All traces of an ADFA-LD folder (see :func:`iter_adfa`)."""
    traces = list(iter_adfa(root))
    logger.info("ADFA-LD %s: %d traces", root, len(traces))
    return traces


def drop_duplicates(traces: list[AdfaTrace]) -> list[AdfaTrace]:
    """Keeps the first trace of each distinct content (in reading order).

    Reading order puts training before validation before attacks, so a trace
    identical to an earlier one is dropped from the later part. Attack files
    byte-identical to normal traces are dropped too: no detector can separate
    them.
    """
    seen: set[str] = set()
    kept = []
    for item in traces:
        if item.digest not in seen:
            seen.add(item.digest)
            kept.append(item)
    return kept
