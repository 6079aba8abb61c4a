"""Reading strace's argument text: split, strings, numbers, flags, addresses.

strace prints arguments as C-like text: quoted strings with escapes, flag sets
(``O_RDONLY|O_CLOEXEC``), structures in braces, arrays in brackets, socket
addresses (``{sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr(...)}``)
and, with ``-y``/``-yy``, descriptors annotated with what they are
(``3</etc/passwd>``, ``4<TCP:[10.0.0.1:5555->1.2.3.4:80]>``). These helpers
read just enough of it for the descriptor table and the tag rules, and never
raise on malformed text: they return ``None`` or an empty result instead.
"""

from __future__ import annotations

import codecs
import re

# Characters that open or close a nesting level, separate arguments or start a
# string or a descriptor annotation.
_SPECIAL = re.compile(r'["\[\]{}(),<]')
# Text that may need the full scan: nesting, annotations or escapes.
_NESTING = re.compile(r"[\[\]{}()<\\]")
# The rest of a quoted string; truncated text may end inside it, even on a
# dangling backslash.
_STRING_TAIL = re.compile(r'(?:[^"\\]|\\.)*(?:"|\\?$)', re.S)
# A -y annotation: any text without angle brackets, where [...] (socket
# endpoints such as "1.2.3.4:5->6.7.8.9:10") may hold a '>', and -yy's device
# numbers may follow in a nested <char 1:3>.
_ANNOTATION = re.compile(r"<(?:[^<>\[\]]|\[[^\]]*\])*(?:<[^<>]*>)?>")
_DEVICE_SUFFIX = re.compile(r"<(?:char|block) \d+:\d+>$")
_FD = re.compile(r"\s*(-?\d+|AT_FDCWD)(?:<(.*)>)?")
_INT = re.compile(r"\s*(-?)(0x[0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\s*$")
_FLAG_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|0x[0-9a-fA-F]+|\d+")
_FLAG_EXPR = re.compile(r"[\w|~ ]+$")
_FLAGS_FIELD = re.compile(r"\bflags=([\w|]+)")
_FAMILY = re.compile(r"sa_family=(AF_\w+)")
_INET4 = re.compile(r'inet_addr\("([^"]*)"\)')
_INET6 = re.compile(r'inet_pton\(AF_INET6,\s*"([^"]*)"')
_PORT = re.compile(r"sin6?_port=htons\((\d+)\)")
_ENDPOINTS = re.compile(r"^(\w[\w-]*)(?:v6)?:\[(.*)\]$")


def split_args(text: str) -> list[str]:
    """Splits argument text at top-level commas, respecting nesting.

    Quotes (with backslash escapes), ``()``, ``[]``, ``{}`` and ``-y``
    annotations (``<...>`` right after a descriptor) keep their commas.
    Unbalanced text is split as well as it can be.

    Returns:
        The arguments, stripped; ``[]`` for empty text.
    """
    if _NESTING.search(text) is None:
        # Flat text: only commas inside quotes could mislead a plain split.
        pieces = text.split('"')
        if len(pieces) % 2 and not any("," in piece for piece in pieces[1::2]):
            return ([arg.strip() for arg in text.split(",")]
                    if "," in text or text.strip() else [])
    args: list[str] = []
    depth = 0
    start = 0
    pos = 0
    search = _SPECIAL.search
    while True:
        match = search(text, pos)
        if match is None:
            break
        char = match.group()
        index = match.start()
        pos = index + 1
        if char == '"':
            pos = _STRING_TAIL.match(text, pos).end()
        elif char == "<":
            if index and (text[index - 1].isalnum()):
                annotation = _ANNOTATION.match(text, index)
                if annotation is not None:
                    pos = annotation.end()
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1 if depth else 0
        elif depth == 0:
            args.append(text[start:index].strip())
            start = pos
    tail = text[start:].strip()
    if tail or args:
        args.append(tail)
    return args


def decode_string(token: str) -> str | None:
    """The text of a quoted strace string, escapes decoded; ``None`` if the
    token is not a string (``NULL``, an address)."""
    token = token.strip()
    if not token.startswith('"'):
        return None
    end = _STRING_TAIL.match(token, 1).end()
    body = token[1:end - 1] if token[end - 1:end] == '"' and end > 1 else token[1:end]
    if "\\" not in body:
        return body
    try:
        raw = codecs.escape_decode(body.encode("utf-8", "surrogateescape"))[0]
    except ValueError:  # a dangling backslash in truncated text
        return body
    return raw.decode("utf-8", "surrogateescape")


def parse_int(token: str) -> int | None:
    """A decimal, hex (``0x``) or octal (leading ``0``) integer, or ``None``."""
    match = _INT.match(token)
    if match is None:
        return None
    sign, digits = match.groups()
    if digits.startswith("0x"):
        value = int(digits, 16)
    elif len(digits) > 1 and digits[0] == "0":
        value = int(digits, 8)
    else:
        value = int(digits)
    return -value if sign else value


def parse_fd(token: str) -> tuple[int | None, str | None]:
    """A descriptor argument: ``(fd, annotation)``.

    ``AT_FDCWD`` gives fd ``None``; the annotation is the ``-y`` text between
    the angle brackets (``/etc/passwd``, ``TCP:[...]``) or ``None``.
    """
    match = _FD.match(token)
    if match is None:
        return None, None
    number, annotation = match.groups()
    return (None if number == "AT_FDCWD" else int(number)), annotation


def parse_flags(token: str, bits: dict[str, int] | None = None) -> tuple[
        frozenset[str], int]:
    """The flag names and numeric bits of a flag argument.

    Reads ``A|B|0x10``, bare numbers (``04755``, ``0x7``) and ``flags=A|B``
    fields inside structures (``clone3``). Numbers only count where the
    argument is a flag expression, never inside a structure.

    Args:
        token: one argument's text.
        bits: name -> bit values; names found are also OR-ed into the bits.

    Returns:
        ``(names, value)``: the symbolic names and the numeric value.
    """
    token = token.strip()
    if "=" in token:
        field = _FLAGS_FIELD.search(token)
        if field is None:
            return frozenset(), 0
        token = field.group(1)
    if not _FLAG_EXPR.match(token):
        return frozenset(), 0
    names = set()
    value = 0
    for item in _FLAG_TOKEN.findall(token):
        if item[0].isdigit():
            number = parse_int(item)
            value |= number if number is not None and number > 0 else 0
        else:
            names.add(item)
            if bits is not None:
                value |= bits.get(item, 0)
    return frozenset(names), value


def address_scope(address: str) -> str | None:
    """``loopback`` or ``remote`` for an IPv4/IPv6 address text, else ``None``."""
    address = address.strip().strip("[]")
    if not address:
        return None
    if address.startswith("::ffff:"):
        address = address[7:]
    if address.startswith("127.") or address in ("::1", "0.0.0.0", "::"):
        return "loopback"
    if "." in address or ":" in address:
        return "remote"
    return None


def parse_sockaddr(token: str) -> tuple[str, str | None] | None:
    """A socket address structure: ``(family, address)``.

    The family is the ``AF_*`` name; the address is the IP text for Internet
    families and ``None`` for others. ``None`` when the token is no address
    (``NULL``, a pointer).
    """
    family = _FAMILY.search(token)
    if family is None:
        return None
    name = family.group(1)
    if name == "AF_INET":
        address = _INET4.search(token)
    elif name == "AF_INET6":
        address = _INET6.search(token)
    else:
        return name, None
    return name, address.group(1) if address else None


def annotation_path(annotation: str) -> str:
    """The path of a file annotation, without ``-yy`` device numbers and the
    `` (deleted)`` mark."""
    return _DEVICE_SUFFIX.sub("", annotation).removesuffix(" (deleted)")


def annotation_peer(annotation: str) -> tuple[str, str | None] | None:
    """A ``-yy`` socket annotation as ``(protocol, peer scope)``.

    ``TCP:[10.0.0.1:5555->1.2.3.4:80]`` gives ``("TCP", "remote")``;
    ``TCP:[1234]`` (not connected) ``("TCP", None)``; ``None`` when the
    annotation is not a socket (a path, a pipe).
    """
    match = _ENDPOINTS.match(annotation)
    if match is None:
        return None
    protocol, inside = match.groups()
    if protocol in ("pipe", "anon_inode", "eventfd", "signalfd", "timerfd"):
        return None
    if protocol.startswith("socket"):
        return "socket", None
    if "->" not in inside:
        return protocol, None
    peer = inside.rsplit("->", 1)[1]
    host = peer.rsplit(":", 1)[0] if ":" in peer and not peer.isdigit() else peer
    return protocol, address_scope(host) if "." in host or "[" in host else None
