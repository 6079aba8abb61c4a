"""``statx(2)`` through ctypes: everything ``lstat`` gives, plus birth time.

Python's ``os.stat`` has no birth time on Linux, and the file-integrity
validator needs it for its timestamp-forgery rules. ``statx`` returns it where
the filesystem records it (ext4, xfs, btrfs, tmpfs on recent kernels) and says
so in ``stx_mask``; elsewhere the birth time is ``None`` ("unknown"). Without a
``statx`` symbol in libc we fall back to ``os.lstat`` with no birth time.

Symlinks are never followed: every call passes ``AT_SYMLINK_NOFOLLOW``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import threading
from typing import NamedTuple

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
STATX_BASIC_STATS = 0x7FF
STATX_BTIME = 0x800

# stx_attributes bits worth naming in reports (linux/stat.h).
STATX_ATTRIBUTE_NAMES = {
    0x4: "compressed",
    0x10: "immutable",
    0x20: "append",
    0x40: "nodump",
    0x800: "encrypted",
    0x1000: "automount",
    0x2000: "mount_root",
    0x100000: "verity",
    0x200000: "dax",
}


# struct statx from linux/stat.h, the 144 bytes we read of its 256: mask,
# (blksize, skipped), attributes, nlink, uid, gid, mode, ino, size, blocks,
# attributes_mask, four (sec, nsec) timestamps (atime, btime, ctime, mtime),
# rdev major/minor, dev major/minor.
_LAYOUT = struct.Struct("<I4xQIIIHxxQQQQqIxxxxqIxxxxqIxxxxqIxxxxIIII")
_BUFFER_BYTES = 256


class StatResult(NamedTuple):
    """What ``statx`` says about one path (never following a symlink).

    Times are integer nanoseconds since the epoch; ``btime_ns`` is ``None``
    where the filesystem gives no birth time. ``device`` and ``rdev`` are
    encoded as ``os.makedev`` does, so they compare equal to ``os.fstat``.
    The fields up to ``attributes`` come in the order the integrity scan
    records them, so a record takes them as one slice.
    """

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
    blocks: int


def _load_statx():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.statx
    except (OSError, AttributeError):
        return None
    # No argtypes: ctypes then passes the int flags as C ints, the bytes path
    # and the buffer as pointers, a third faster than checking each argument.
    function.restype = ctypes.c_int
    return function


_STATX = _load_statx()
_BUFFERS = threading.local()
_MASK = STATX_BASIC_STATS | STATX_BTIME
_unpack = _LAYOUT.unpack_from
_makedev = os.makedev
_new_result = tuple.__new__


def has_statx() -> bool:
    """Whether libc exposes ``statx`` (glibc 2.28 and later)."""
    return _STATX is not None


def _thread_buffer() -> ctypes.Array:
    _BUFFERS.statx = ctypes.create_string_buffer(_BUFFER_BYTES)
    return _BUFFERS.statx


def lstatx(path: bytes) -> StatResult:
    """Stats ``path`` without following a final symlink.

    Called once per file by the integrity scan, so it is kept lean: one
    ``statx`` into a per-thread buffer, one ``unpack``, one tuple.

    Raises:
        OSError: as ``os.lstat`` would (``FileNotFoundError`` and so on).
    """
    if _STATX is None:
        return _from_lstat(os.lstat(path))
    if type(path) is not bytes:  # a str would reach C as a wide string
        path = os.fsencode(path)
    try:
        buffer = _BUFFERS.statx
    except AttributeError:
        buffer = _thread_buffer()
    if _STATX(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, _MASK, buffer):
        code = ctypes.get_errno()
        if code == errno.ENOSYS:  # old kernel under a new libc
            return _from_lstat(os.lstat(path))
        raise OSError(code, os.strerror(code), os.fsdecode(path))
    (mask, attributes, nlink, uid, gid, mode, inode, size, blocks,
     attributes_mask, a_sec, a_nsec, b_sec, b_nsec, c_sec, c_nsec, m_sec,
     m_nsec, rdev_major, rdev_minor, dev_major, dev_minor) = _unpack(buffer)
    # A zero birth time is a filesystem that stores none (images built from
    # archives), not a file born in 1970.
    btime = (b_sec * 1_000_000_000 + b_nsec
             if mask & STATX_BTIME and (b_sec or b_nsec) else None)
    # Only devices have an rdev; 0 is what makedev(0, 0) gives.
    rdev = _makedev(rdev_major, rdev_minor) if rdev_major or rdev_minor else 0
    return _new_result(StatResult, (
        size, mode, uid, gid, inode, _makedev(dev_major, dev_minor), nlink, rdev,
        a_sec * 1_000_000_000 + a_nsec, m_sec * 1_000_000_000 + m_nsec,
        c_sec * 1_000_000_000 + c_nsec, btime, attributes & attributes_mask,
        blocks))


def _from_lstat(result: os.stat_result) -> StatResult:
    return StatResult(
        mode=result.st_mode, inode=result.st_ino, device=result.st_dev,
        nlink=result.st_nlink, uid=result.st_uid, gid=result.st_gid,
        size=result.st_size, blocks=result.st_blocks,
        atime_ns=result.st_atime_ns, mtime_ns=result.st_mtime_ns,
        ctime_ns=result.st_ctime_ns, btime_ns=None, rdev=result.st_rdev,
        attributes=0)


def attribute_names(attributes: int) -> list[str]:
    """Names of the ``stx_attributes`` bits set in ``attributes``."""
    return [name for bit, name in STATX_ATTRIBUTE_NAMES.items() if attributes & bit]
