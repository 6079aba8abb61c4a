"""The integrity baseline as an SQLite file, written atomically, optionally
signed with an HMAC so a tampered baseline is refused.

Layout: a ``meta`` table (``key``, ``value`` text) and an ``entries`` table
with one row per path (``path`` is a BLOB: Linux names are bytes) and one
column per :class:`FileEntry` field; ``xattrs`` is packed as length-prefixed
name/value pairs. The file is built under a temporary name in the same folder
and renamed over the old baseline, so a crash never leaves half a baseline.

With a key, ``meta.hmac`` holds HMAC-SHA256 over the meta rows and every entry
row in path order. Loading checks it before anything is used; a signed
baseline without a key, or an unsigned one with a key, is refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import operator
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from sentinel_jax.monitor.integrity_entry import ENTRY_FIELDS, FileEntry

SCHEMA_VERSION = "1"
_COLUMNS = ", ".join(ENTRY_FIELDS)
_CREATE = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE entries (
    path BLOB PRIMARY KEY, file_type TEXT NOT NULL, size INTEGER NOT NULL,
    mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
    inode INTEGER NOT NULL, device INTEGER NOT NULL, nlink INTEGER NOT NULL,
    rdev INTEGER NOT NULL, atime_ns INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL, btime_ns INTEGER, attributes INTEGER NOT NULL,
    link_target BLOB, xattrs BLOB NOT NULL, sha256 TEXT, digest TEXT NOT NULL,
    status TEXT NOT NULL, note TEXT NOT NULL
) WITHOUT ROWID;
"""
_INSERT = (f"INSERT INTO entries ({_COLUMNS}) "
           f"VALUES ({', '.join('?' * len(ENTRY_FIELDS))})")
assert _COLUMNS.split(", ") == list(ENTRY_FIELDS)


class BaselineError(ValueError):
    """A baseline file is missing, unreadable or of an unknown format."""


class BaselineTamperedError(BaselineError):
    """A baseline's HMAC does not verify, or signing does not match the key."""


def _pack_xattrs(pairs: tuple[tuple[bytes, bytes], ...]) -> bytes:
    out = bytearray()
    for name, value in pairs:
        out += len(name).to_bytes(4, "little") + name
        out += len(value).to_bytes(4, "little") + value
    return bytes(out)


def _unpack_xattrs(blob: bytes) -> tuple[tuple[bytes, bytes], ...]:
    pairs, index = [], 0
    while index < len(blob):
        items = []
        for _ in range(2):
            length = int.from_bytes(blob[index:index + 4], "little")
            items.append(bytes(blob[index + 4:index + 4 + length]))
            index += 4 + length
        pairs.append((items[0], items[1]))
    return tuple(pairs)


def _row(entry: FileEntry) -> tuple:
    if not entry.xattrs and entry.inode < 1 << 63:  # nearly every entry
        return entry[:16] + (b"",) + entry[17:]
    row = entry._replace(xattrs=_pack_xattrs(entry.xattrs))
    if entry.inode >= 1 << 63:  # SQLite integers are signed 64-bit
        row = row._replace(inode=entry.inode - (1 << 64))
    return tuple(row)


def _entry(row: tuple) -> FileEntry:
    entry = FileEntry._make(row)
    changes = {"xattrs": _unpack_xattrs(entry.xattrs)} if entry.xattrs else {
        "xattrs": ()}
    if entry.inode < 0:
        changes["inode"] = entry.inode + (1 << 64)
    return entry._replace(**changes)


_path_of = operator.itemgetter(0)  # a row's path, the sort key


def _signature(key: bytes, meta: Mapping[str, str], rows: Iterable[tuple]) -> str:
    """HMAC-SHA256 over the meta items (but ``hmac``) and rows in order."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    signed_meta = {name: value for name, value in meta.items() if name != "hmac"}
    mac.update(json.dumps(signed_meta, sort_keys=True).encode() + b"\n")
    for row in rows:
        # repr of a tuple of int, str, bytes and None is canonical and unambiguous.
        mac.update(repr(row).encode("utf-8", "surrogateescape") + b"\n")
    return mac.hexdigest()


class BaselineWriter:
    """Takes entries as a scan records them; :meth:`commit` stores the meta
    rows and renames the finished file into place, :meth:`abort` (or an
    exception inside a ``with`` block) leaves the old baseline untouched.

    Entries are inserted as they come, so storing overlaps scanning when the
    scan runs workers. The temporary file needs no journal and no syncing
    while it is built (a crash leaves only a stray temporary file); it is
    synced once before the rename.

    Usage::

        with BaselineWriter(path, key) as writer:
            writer.add(entries)
            writer.commit(meta)
    """

    def __init__(self, path: str | os.PathLike, key: bytes | None = None):
        """Creates the temporary baseline beside ``path``.

        Args:
            path: the SQLite file to create or replace.
            key: HMAC key; ``None`` writes an unsigned baseline.
        """
        self.path = Path(path)
        self.key = key
        self._count = 0
        self._signed_rows: list[tuple] = []  # kept only to sign them
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, self._temporary = tempfile.mkstemp(
            prefix=f".{self.path.name}.", dir=self.path.parent)
        os.close(handle)
        try:
            self._connection = sqlite3.connect(self._temporary, isolation_level=None)
            self._connection.execute("PRAGMA journal_mode=OFF")
            self._connection.execute("PRAGMA synchronous=OFF")
            self._connection.executescript(_CREATE)
            self._connection.execute("BEGIN")
        except BaseException:
            self.abort()
            raise

    def add(self, entries: Iterable[FileEntry]) -> None:
        """Stores ``entries`` (paths not given before) in the baseline.

        Raises:
            sqlite3.IntegrityError: if a path was given before.
        """
        # Each batch in key order: runs of appends to the B-tree rather than
        # scattered inserts.
        rows = sorted(map(_row, entries), key=_path_of)
        self._connection.executemany(_INSERT, rows)
        self._count += len(rows)
        if self.key is not None:
            self._signed_rows.extend(rows)

    def commit(self, meta: Mapping[str, str]) -> Path:
        """Stores ``meta`` (with the entry count and the signature), syncs,
        and renames the file into place."""
        meta = {**meta, "schema_version": SCHEMA_VERSION,
                "entry_count": str(self._count)}
        if self.key is not None:
            # Batches come in walk order; the signature covers path order.
            self._signed_rows.sort(key=_path_of)
            meta["hmac"] = _signature(self.key, meta, self._signed_rows)
        else:
            meta["hmac"] = ""
        connection = self._connection
        connection.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        connection.execute("COMMIT")
        connection.close()
        with open(self._temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(self._temporary, self.path)
        return self.path

    def abort(self) -> None:
        """Drops the temporary file; the old baseline stays as it was."""
        connection = getattr(self, "_connection", None)
        if connection is not None:
            connection.close()
        Path(self._temporary).unlink(missing_ok=True)

    def __enter__(self) -> BaselineWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self.abort()


def write_baseline(path: str | os.PathLike, entries: Iterable[FileEntry],
                   meta: Mapping[str, str], key: bytes | None = None) -> Path:
    """Writes a baseline atomically; returns its path.

    Args:
        path: the SQLite file to create or replace.
        entries: what the scan recorded (one per path).
        meta: text facts stored beside the entries (watch paths, host ...).
        key: HMAC key; ``None`` writes an unsigned baseline.
    """
    with BaselineWriter(path, key) as writer:
        writer.add(entries)
        return writer.commit(meta)


def read_baseline(path: str | os.PathLike, key: bytes | None = None,
                  ) -> tuple[dict[str, str], dict[bytes, FileEntry]]:
    """Reads and verifies a baseline.

    Returns:
        ``(meta, entries by path)``.

    Raises:
        BaselineError: if the file is missing, not SQLite, or of another schema.
        BaselineTamperedError: if the HMAC fails or signing and key disagree.
    """
    path = Path(path)
    if not path.is_file():
        raise BaselineError(f"{path}: no baseline there; run `baseline` first")
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            meta = dict(connection.execute("SELECT key, value FROM meta"))
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM entries ORDER BY path").fetchall()
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise BaselineError(f"{path}: not a readable baseline ({error})") from None
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise BaselineError(
            f"{path}: baseline schema {meta.get('schema_version')!r}, expected "
            f"{SCHEMA_VERSION!r}; rebuild it with `baseline`")
    signature = meta.get("hmac", "")
    if key is None and signature:
        raise BaselineTamperedError(
            f"{path}: baseline is signed; give its HMAC key to verify it")
    if key is not None:
        if not signature:
            raise BaselineTamperedError(
                f"{path}: baseline is not signed but a key was given; refusing it")
        if not hmac.compare_digest(signature, _signature(key, meta, rows)):
            raise BaselineTamperedError(
                f"{path}: HMAC does not verify: the baseline was altered or the "
                "key is wrong")
    if meta.get("entry_count") != str(len(rows)):
        raise BaselineTamperedError(
            f"{path}: holds {len(rows)} entries, its meta says "
            f"{meta.get('entry_count')}")
    return meta, {bytes(row[0]): _entry(row) for row in rows}
