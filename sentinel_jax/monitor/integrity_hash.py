"""Opening and hashing one listed regular file, and reading extended attributes.

Files are opened with ``O_NOFOLLOW | O_NONBLOCK | O_NOCTTY`` (and
``O_NOATIME`` where allowed), so a symlink swapped in fails to open and a FIFO
or terminal swapped in neither blocks nor becomes our terminal; the caller
checks with ``fstat`` that the open fd is the regular file it listed.

Small files are read with one ``read`` of ``size + 1`` bytes: getting exactly
``size`` bytes back means the file ended where ``fstat`` said, and the
caller's ``fstat`` after hashing catches a writer that got in meanwhile.
Large files stream through a reused 1 MiB buffer; ``hashlib`` and ``os.readv``
release the GIL, so threads hash several large files at once.
"""

from __future__ import annotations

import errno
import hashlib
import os

OPEN_FLAGS = (os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
              | os.O_CLOEXEC)
_NOATIME = getattr(os, "O_NOATIME", 0)
SMALL_FILE = 1 << 20
_CHUNK = 1 << 20


def open_listed(path: bytes) -> int:
    """Opens a listed regular file for reading, never following a symlink.

    Raises:
        OSError: as ``os.open`` (``ELOOP`` for a symlink swapped in).
    """
    try:
        return os.open(path, OPEN_FLAGS | _NOATIME)
    except PermissionError:
        if not _NOATIME:
            raise
        # O_NOATIME needs ownership; retry without it.
        return os.open(path, OPEN_FLAGS)


def read_xattrs(target: int | bytes) -> tuple[tuple[bytes, bytes], ...]:
    """Extended attributes, sorted by name, of an open fd or (unfollowed) a path."""
    follow = not isinstance(target, bytes)
    try:
        names = os.listxattr(target, follow_symlinks=follow)
    except OSError:  # ENOTSUP, EPERM on some symlinks, vanished
        return ()
    if not names:
        return ()
    pairs = []
    for name in sorted(names):
        try:
            value = os.getxattr(target, name, follow_symlinks=follow)
        except OSError:
            continue
        pairs.append((os.fsencode(name), value))
    return tuple(pairs)


def hash_stream(fd: int, size: int) -> tuple[str, int]:
    """SHA-256 of everything readable from ``fd`` and the bytes read.

    Args:
        fd: a regular file open for reading, at offset 0.
        size: its size as ``fstat`` gave it just before.
    """
    if size < SMALL_FILE:
        data = os.read(fd, size + 1)
        total = len(data)
        digest = hashlib.sha256(data)
        if total == size:
            return digest.hexdigest(), total
        while data:  # a short read or a file that grew: read to the end
            data = os.read(fd, _CHUNK)
            total += len(data)
            digest.update(data)
        return digest.hexdigest(), total
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    total = 0
    while count := os.readv(fd, [buffer]):
        digest.update(view[:count])
        total += count
    return digest.hexdigest(), total


def hash_extents(fd: int, size: int) -> str:
    """SHA-256 over the size and each data extent: holes are never read.

    Args:
        fd: a regular file open for reading.
        size: its size as ``fstat`` gave it.
    """
    digest = hashlib.sha256(b"sha256-extents\0" + size.to_bytes(8, "little"))
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as error:
            if error.errno == errno.ENXIO:  # only a hole is left
                break
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        digest.update(start.to_bytes(8, "little") + (end - start).to_bytes(8, "little"))
        os.lseek(fd, start, os.SEEK_SET)
        remaining = end - start
        while remaining > 0:
            count = os.readv(fd, [view[:min(remaining, _CHUNK)]])
            if count == 0:
                break
            digest.update(view[:count])
            remaining -= count
        offset = end
    return digest.hexdigest()
