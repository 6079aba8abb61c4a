"""Linux path names as bytes, and one reversible way to show them as text.

A Linux file name is any bytes but ``/`` and NUL: invalid UTF-8, newlines,
terminal escapes and backslashes all occur, by accident or on purpose (a name
with a newline can forge a line in a naive report). The monitors keep paths as
``bytes`` end to end and only escape them for reports: printable UTF-8 stays
as it is; a backslash becomes ``\\\\``; ``\\n``, ``\\t`` and ``\\r`` keep
their C spelling; every other control character or byte that is not valid
UTF-8 becomes ``\\xNN``. The escaping is reversible (:func:`unescape_path`).
"""

from __future__ import annotations

import os
import re

_NAMED = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_PLAIN = re.compile(r"[^\\\x00-\x1f\x7f-\x9f\udc80-\udcff\u2028\u2029]*\Z")
_ESCAPE = re.compile(rb"\\(\\|n|t|r|x[0-9a-fA-F]{2})")
_UNNAMED = {b"\\": b"\\", b"n": b"\n", b"t": b"\t", b"r": b"\r"}


def escape_path(path: bytes) -> str:
    """A printable, single-line, reversible rendering of ``path``."""
    text = path.decode("utf-8", "surrogateescape")
    if _PLAIN.match(text):
        return text
    pieces = []
    for char in text:
        code = ord(char)
        if char in _NAMED:
            pieces.append(_NAMED[char])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that is not valid UTF-8
            pieces.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or 0x7F <= code <= 0x9F:
            pieces.append(f"\\x{code:02x}")
        elif code in (0x2028, 0x2029):  # line breaks to some readers
            pieces.append("".join(f"\\x{byte:02x}" for byte in char.encode()))
        else:
            pieces.append(char)
    return "".join(pieces)


def unescape_path(text: str) -> bytes:
    """The bytes that :func:`escape_path` rendered as ``text``."""
    raw = text.encode("utf-8")

    def replace(match: re.Match[bytes]) -> bytes:
        token = match.group(1)
        if token[:1] == b"x":
            return bytes([int(token[1:], 16)])
        return _UNNAMED[token]

    return _ESCAPE.sub(replace, raw)


def as_bytes_path(path: str | bytes | os.PathLike) -> bytes:
    """``path`` as bytes, made absolute and normalised (no symlinks resolved).

    Raises:
        ValueError: if ``path`` is empty or holds a NUL byte.
    """
    raw = os.fsencode(path)
    if not raw:
        raise ValueError("empty path: expected a file or folder to watch")
    if b"\0" in raw:
        raise ValueError(f"path {escape_path(raw)!r} holds a NUL byte")
    return os.path.normpath(os.path.abspath(raw))
