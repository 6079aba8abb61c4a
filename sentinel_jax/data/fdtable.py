"""Per-process descriptor tables, kept up to date from strace calls.

Tags such as "standard output on a socket" or "read of a credential file
through a descriptor" need to know what each descriptor refers to. A
:class:`ProcessState` holds, per traced process, its descriptors (file path,
socket family and peer scope, pipe), its working directory and its thread
group; :func:`apply_call` updates it from one completed call. Children
inherit a copy of the parent's table on ``clone``/``fork`` (or share it with
``CLONE_FILES``), ``execve`` drops close-on-exec descriptors, and ``-y``/
``-yy`` annotations, when present, override what the table believed.
"""

from __future__ import annotations

import posixpath
from array import array
from dataclasses import dataclass, field

from sentinel_jax.data.straceargs import (
    address_scope,
    annotation_path,
    annotation_peer,
    decode_string,
    parse_fd,
    parse_sockaddr,
    split_args,
)

FILE, SOCKET, PIPE, OTHER = "file", "socket", "pipe", "other"


@dataclass(frozen=True, slots=True)
class FdInfo:
    """What a descriptor refers to.

    Attributes:
        kind: ``file``, ``socket``, ``pipe`` or ``other``.
        path: absolute path (or ``./relative``) of a file; ``/memfd:NAME`` for
            a memfd; ``None`` otherwise.
        family: socket family (``AF_INET``...) or protocol (``TCP``) if known.
        scope: socket peer scope, ``loopback`` or ``remote``, once connected.
        cloexec: closed on a successful ``execve``.
    """

    kind: str
    path: str | None = None
    family: str | None = None
    scope: str | None = None
    cloexec: bool = False


@dataclass(slots=True, eq=False)
class ProcessState:
    """One traced process: descriptors, directory, thread group, pending call.

    ``fds`` may be the same dict object as another process's (threads and
    ``CLONE_FILES`` children share one table, as the kernel does).
    """

    pid: int
    tgid: int = -1
    fds: dict[int, FdInfo] = field(default_factory=dict)
    cwd: str | None = None
    # (raw name, argument text so far, timestamp, syscall number) of a call
    # printed "<unfinished ...>" and not yet resumed.
    pending: tuple | None = None
    adopted: bool = False
    # Names and tag masks of the calls seen so far, when the reader keeps them.
    names: list[str] | None = None
    tags: array | None = None

    def __post_init__(self) -> None:
        if self.tgid < 0:
            self.tgid = self.pid

    def is_self(self, pid: int) -> bool:
        return pid == self.pid or pid == self.tgid

    def resolve(self, path: str, dirfd: int | None = None) -> str:
        """An absolute, normalised path for ``path`` seen relative to ``dirfd``
        (``None``: the working directory); ``./path`` when the base is unknown.
        """
        if not path.startswith("/"):
            base = self.cwd
            if dirfd is not None:
                info = self.fds.get(dirfd)
                base = info.path if info is not None and info.kind == FILE else None
            if base is None or not base.startswith("/"):
                return "./" + path
            path = base + "/" + path
        if "/." in path or "//" in path:
            path = posixpath.normpath(path)
            if path.startswith("//"):
                path = path[1:]
        return path

    def learn(self, fd: int | None, annotation: str | None) -> FdInfo | None:
        """Records a ``-y`` annotation for ``fd``; returns the fd's info."""
        if fd is None:
            return None
        info = self.fds.get(fd)
        if annotation is None:
            return info
        learned = info_from_annotation(annotation)
        if learned is info:
            return info
        if (info is None or (learned.path, learned.kind) != (info.path, info.kind)
                or (learned.scope and learned.scope != info.scope)):
            if info is not None:
                learned = FdInfo(learned.kind, learned.path,
                                 learned.family or info.family,
                                 learned.scope or info.scope, info.cloexec)
            self.fds[fd] = learned
            return learned
        return info

    def child(self, pid: int, flags: str) -> ProcessState:
        """The state of a new process or thread made by ``clone(flags)``."""
        shares_files = "CLONE_FILES" in flags
        is_thread = "CLONE_THREAD" in flags
        return ProcessState(pid, self.tgid if is_thread else pid,
                            self.fds if shares_files else dict(self.fds), self.cwd)


# Annotation text -> FdInfo. With -y every read and write names its
# descriptor's file again; the info is immutable, so one object serves all.
_ANNOTATION_CACHE: dict[str, FdInfo] = {}
_ANNOTATION_CACHE_SIZE = 1 << 14


def info_from_annotation(annotation: str) -> FdInfo:
    """An :class:`FdInfo` from a ``-y``/``-yy`` annotation text."""
    info = _ANNOTATION_CACHE.get(annotation)
    if info is not None:
        return info
    if annotation.startswith("/"):
        info = FdInfo(FILE, annotation_path(annotation))
    elif annotation.startswith("pipe:"):
        info = FdInfo(PIPE)
    else:
        peer = annotation_peer(annotation)
        if peer is not None:
            info = FdInfo(SOCKET, family=peer[0] if peer[0] != "socket" else None,
                          scope=peer[1])
        else:
            info = FdInfo(OTHER)
    if len(_ANNOTATION_CACHE) >= _ANNOTATION_CACHE_SIZE:
        _ANNOTATION_CACHE.clear()
    _ANNOTATION_CACHE[annotation] = info
    return info


def _result_fd(result: int | None) -> int | None:
    return result if result is not None and result >= 0 else None


def _open_info(state: ProcessState, args: list[str], dirfd_arg: int | None,
               path_arg: int, flags_arg: int | None) -> FdInfo | None:
    if len(args) <= path_arg:
        return None
    path = decode_string(args[path_arg])
    if path is None:
        return None
    dirfd = None
    if dirfd_arg is not None:
        dirfd, annotation = parse_fd(args[dirfd_arg])
        if dirfd is None and annotation and annotation.startswith("/"):
            state.cwd = annotation_path(annotation)
        state.learn(dirfd, annotation)
    flags = args[flags_arg] if flags_arg is not None and len(args) > flags_arg else ""
    return FdInfo(FILE, state.resolve(path, dirfd), cloexec="O_CLOEXEC" in flags)


# Raw call -> (dirfd arg, path arg, flags arg) for calls that open a file.
_OPENERS = {"open": (None, 0, 1), "openat": (0, 1, 2), "openat2": (0, 1, 2),
            "creat": (None, 0, None)}
# Calls whose non-negative result is a descriptor of another kind.
_OTHER_CREATORS = frozenset({
    "eventfd", "eventfd2", "epoll_create", "epoll_create1", "signalfd",
    "signalfd4", "timerfd_create", "inotify_init", "inotify_init1",
    "fanotify_init", "userfaultfd", "perf_event_open", "bpf", "pidfd_open",
    "open_tree", "fsopen", "fsmount"})
_DUPS = {"dup": (0, -1), "dup2": (0, 1), "dup3": (0, 1)}
#: Raw call names :func:`apply_call` acts on; others leave the state alone.
EFFECT_CALLS = frozenset({
    *_OPENERS, *_DUPS, *_OTHER_CREATORS, "close", "fcntl", "fcntl64", "socket",
    "connect", "accept", "accept4", "pipe", "pipe2", "socketpair",
    "memfd_create", "chdir", "fchdir", "execve", "execveat", "close_range"})


def apply_call(state: ProcessState, name: str, args: list[str] | None,
               args_text: str, result: int | None,
               result_annotation: str | None) -> None:
    """Updates ``state`` with the effect of one completed call.

    Process creation is handled by the parser (it needs the table of all
    processes); everything else about descriptors and directories is here.

    Args:
        state: the calling process.
        name: raw syscall name.
        args: split arguments, or ``None`` to split ``args_text`` on demand.
        args_text: raw argument text.
        result: return value, ``None`` if unknown.
        result_annotation: the ``-y`` annotation of the result, if any.
    """
    if result is not None and result < 0:
        return
    fds = state.fds
    if name == "close":
        fds.pop(int(args_text) if args_text.isdecimal()
                else parse_fd(args_text)[0], None)
        return
    if args is None:
        args = split_args(args_text)
    new_fd = _result_fd(result)
    if name in _OPENERS:
        if new_fd is not None:
            info = _open_info(state, args, *_OPENERS[name])
            fds[new_fd] = info if info is not None else FdInfo(FILE)
            state.learn(new_fd, result_annotation)
    elif name in _DUPS:
        source_arg, target_arg = _DUPS[name]
        if len(args) > max(source_arg, target_arg):
            source, annotation = parse_fd(args[source_arg])
            info = state.learn(source, annotation)
            target = new_fd if target_arg < 0 else parse_fd(args[target_arg])[0]
            if target is not None:
                cloexec = name == "dup3" and "O_CLOEXEC" in args_text
                if info is None:
                    fds.pop(target, None)
                else:
                    fds[target] = FdInfo(info.kind, info.path, info.family,
                                         info.scope, cloexec)
    elif name in ("fcntl", "fcntl64"):
        _apply_fcntl(state, args, new_fd)
    elif name == "socket":
        if new_fd is not None and args:
            fds[new_fd] = FdInfo(SOCKET, family=args[0],
                                 cloexec="SOCK_CLOEXEC" in args_text)
    elif name in ("connect", "accept", "accept4"):
        _apply_socket_peer(state, name, args, new_fd)
    elif name in ("pipe", "pipe2", "socketpair"):
        kind = PIPE if name.startswith("pipe") else SOCKET
        pair = args[0] if kind == PIPE else (args[3] if len(args) > 3 else "")
        cloexec = "CLOEXEC" in args_text
        for item in split_args(pair.strip("[]")):
            fd, _ = parse_fd(item)
            if fd is not None:
                fds[fd] = FdInfo(kind, cloexec=cloexec)
    elif name == "memfd_create":
        if new_fd is not None and args:
            label = decode_string(args[0]) or ""
            fds[new_fd] = FdInfo(FILE, "/memfd:" + label,
                                 cloexec="MFD_CLOEXEC" in args_text)
    elif name in ("chdir", "fchdir"):
        _apply_chdir(state, name, args)
    elif name in ("execve", "execveat"):
        for fd in [fd for fd, info in fds.items() if info.cloexec]:
            del fds[fd]
        state.tgid = state.pid
    elif name == "close_range":
        first, last = (parse_fd(args[0])[0], parse_fd(args[1])[0]) if len(
            args) > 1 else (None, None)
        if first is not None and last is not None:
            cloexec_only = "CLOSE_RANGE_CLOEXEC" in args_text
            for fd in [fd for fd in fds if first <= fd <= (last & 0x7FFFFFFF)]:
                if cloexec_only:
                    info = fds[fd]
                    fds[fd] = FdInfo(info.kind, info.path, info.family,
                                     info.scope, True)
                else:
                    del fds[fd]
    elif name in _OTHER_CREATORS and new_fd is not None:
        fds[new_fd] = FdInfo(OTHER, cloexec="CLOEXEC" in args_text)


def _apply_fcntl(state: ProcessState, args: list[str], new_fd: int | None) -> None:
    if len(args) < 2:
        return
    fd, annotation = parse_fd(args[0])
    info = state.learn(fd, annotation)
    command = args[1]
    if command.startswith("F_DUPFD") and new_fd is not None and info is not None:
        state.fds[new_fd] = FdInfo(info.kind, info.path, info.family, info.scope,
                                   command == "F_DUPFD_CLOEXEC")
    elif command == "F_SETFD" and info is not None and len(args) > 2:
        state.fds[fd] = FdInfo(info.kind, info.path, info.family, info.scope,
                               "FD_CLOEXEC" in args[2] or args[2].strip() == "1")


def _apply_socket_peer(state: ProcessState, name: str, args: list[str],
                       new_fd: int | None) -> None:
    if len(args) < 2:
        return
    fd, annotation = parse_fd(args[0])
    info = state.learn(fd, annotation)
    address = parse_sockaddr(args[1])
    scope = address_scope(address[1]) if address and address[1] else None
    family = address[0] if address else (info.family if info else None)
    if name == "connect":
        if fd is not None:
            state.fds[fd] = FdInfo(SOCKET, None, family, scope,
                                   info.cloexec if info else False)
    elif new_fd is not None:
        state.fds[new_fd] = FdInfo(SOCKET, None, family, scope,
                                   name == "accept4" and "SOCK_CLOEXEC" in args[-1])


def _apply_chdir(state: ProcessState, name: str, args: list[str]) -> None:
    if not args:
        return
    if name == "chdir":
        path = decode_string(args[0])
        if path is not None:
            resolved = state.resolve(path)
            state.cwd = resolved if resolved.startswith("/") else None
    else:
        fd, annotation = parse_fd(args[0])
        info = state.learn(fd, annotation)
        state.cwd = info.path if info is not None and info.kind == FILE else None
