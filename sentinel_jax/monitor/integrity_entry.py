"""What the file-integrity scan records about one path, and its options.

Per entry: file type, size, mode, uid, gid, inode, device, link count, rdev,
atime/mtime/ctime in nanoseconds, birth time from ``statx`` (``None`` where the
filesystem has none), ``statx`` attribute bits (immutable, append-only ...),
symlink target, extended attributes, and the SHA-256 of regular files.
"""

from __future__ import annotations

import dataclasses
import stat
from typing import NamedTuple

from sentinel_jax.monitor.pathnames import escape_path

# Kernel-made trees: their contents are not files on a disk and reading some
# of them has side effects or never ends.
PSEUDO_FILESYSTEMS = frozenset({
    "proc", "sysfs", "devpts", "cgroup", "cgroup2", "securityfs", "debugfs",
    "tracefs", "pstore", "bpf", "configfs", "fusectl", "mqueue", "binfmt_misc",
    "efivarfs", "selinuxfs", "nsfs", "rpc_pipefs", "autofs", "hugetlbfs",
})

_S_IFMT = 0o170000  # the file-type bits of st_mode, as stat.S_IFMT masks them
_TYPE_NAMES = {
    stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
    stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "char",
    stat.S_IFBLK: "block",
}


class FileEntry(NamedTuple):
    """Everything recorded about one path.

    ``sha256`` is hex, or ``None`` for anything but a readable, stable regular
    file. ``digest`` names how it was computed: ``sha256`` of the bytes, or
    ``sha256-extents`` for large sparse files (a SHA-256 over the size and each
    data extent's offset, length and bytes, so holes are never read).
    ``status`` is ``ok``, ``unstable`` (changed while read) or ``unreadable``.
    A named tuple: hundreds of thousands are made per scan.
    """

    path: bytes
    file_type: str
    size: int
    mode: int
    uid: int
    gid: int
    inode: int
    device: int
    nlink: int
    rdev: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    btime_ns: int | None
    attributes: int
    link_target: bytes | None
    xattrs: tuple[tuple[bytes, bytes], ...]
    sha256: str | None
    digest: str
    status: str
    note: str


ENTRY_FIELDS = FileEntry._fields


@dataclasses.dataclass(frozen=True, slots=True)
class ScanIssue:
    """A path the scan could not record fully, and why."""

    path: bytes
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"path": escape_path(self.path), "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class ScanOptions:
    """How to walk and hash.

    Attributes:
        hash_threads: threads that hash large files (1 MiB and more) while the
            scan goes on; small files are cheaper to hash on the spot.
        processes: processes that record files once a tree proves big
            (``parallel_after`` files), this one included; 1 records
            everything here. Workers are forked only while this process runs
            a single thread and only for CPUs idle at that moment: on a
            saturated machine a worker adds its fork, page copies and pipe
            traffic and gains nothing (measured on the shared 2-core
            machine), so the scan then stays in one process.
        parallel_after: files recorded here before workers may be forked, so
            small trees never pay for a fork.
        skip_filesystems: filesystem types never entered.
        skip_paths: extra absolute paths never entered or recorded.
        one_filesystem: stay on each root's device (``find -xdev``).
        sparse_min_bytes: files at least this big with fewer allocated blocks
            than half their size are hashed by data extent.
        xattrs: record extended attributes.
    """

    hash_threads: int = 2
    processes: int = 2
    parallel_after: int = 4096
    skip_filesystems: frozenset[str] = PSEUDO_FILESYSTEMS
    skip_paths: tuple[bytes, ...] = ()
    one_filesystem: bool = False
    sparse_min_bytes: int = 64 << 20
    xattrs: bool = True


@dataclasses.dataclass
class ScanResult:
    """Entries by path (sorted), what could not be recorded, what was skipped."""

    entries: dict[bytes, FileEntry]
    errors: list[ScanIssue]
    skipped: list[ScanIssue]
    bytes_hashed: int
    seconds: float


def file_type_name(mode: int) -> str:
    """``file``, ``dir``, ``symlink``, ``fifo``, ``socket``, ``char``, ``block``."""
    return _TYPE_NAMES.get(mode & _S_IFMT, "unknown")  # once per entry: no call
