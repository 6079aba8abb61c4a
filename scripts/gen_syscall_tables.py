"""Regenerates the committed syscall tables from the kernel UAPI headers.

Usage: python scripts/gen_syscall_tables.py [INCLUDE_DIR]

Reads ``asm/unistd_64.h`` and ``asm/unistd_32.h`` (Debian's linux-libc-dev puts
them under ``/usr/include/x86_64-linux-gnu``) and writes
``sentinel_jax/data/tables/syscalls_{x86_64,i386}.tsv`` as ``number<TAB>name``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DEFINE = re.compile(r"^#define\s+__NR_(\w+)\s+(\d+)\s*$")
TABLES = {"x86_64": "unistd_64.h", "i386": "unistd_32.h"}


def parse_header(text: str) -> dict[int, str]:
    """Maps syscall numbers to names from ``#define __NR_name number`` lines."""
    table = {}
    for line in text.splitlines():
        match = DEFINE.match(line)
        if match:
            table[int(match.group(2))] = match.group(1)
    return table


def main(argv: list[str]) -> int:
    include = Path(argv[1]) if len(argv) > 1 else Path("/usr/include/x86_64-linux-gnu")
    out_dir = Path(__file__).resolve().parent.parent / "sentinel_jax/data/tables"
    for arch, header in TABLES.items():
        table = parse_header((include / "asm" / header).read_text())
        lines = [f"{number}\t{name}" for number, name in sorted(table.items())]
        (out_dir / f"syscalls_{arch}.tsv").write_text("\n".join(lines) + "\n")
        print(f"{arch}: {len(table)} calls from {include / 'asm' / header}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
