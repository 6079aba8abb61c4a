"""System-call tables, spelling aliases and the name vocabulary.

Three jobs, one concept (what a call is called):

* number -> name for x86_64 and i386, from tables generated out of the kernel
  UAPI headers (``scripts/gen_syscall_tables.py`` rebuilds them);
* :func:`canonical_name` folds old and new spellings of the same operation
  (``mmap2`` -> ``mmap``, ``open`` -> ``openat``, ``stat64`` -> ``stat``...) so
  a model trained on one source can score another;
* :class:`Vocabulary` maps canonical names to the name channels of a model.

Unknown numbers and names become ``UNKNOWN``; nothing here raises on data.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np

UNKNOWN = "UNKNOWN"
PAD = "<pad>"
OTHER = "OTHER"
PAD_ID = 0
OTHER_ID = 1

ARCHES = ("x86_64", "i386")

# Old or architecture-specific spellings folded onto one canonical name. The
# canonical name is the one a modern x86_64 glibc program shows under strace
# where that is unambiguous. Suffixes ``32`` (16-bit uid era) and ``_time64``
# (y2038 variants) are stripped by rule in :func:`canonical_name`.
ALIASES: Mapping[str, str] = {
    # memory
    "mmap2": "mmap",
    "old_mmap": "mmap",
    # files: modern glibc opens everything through openat
    "open": "openat",
    "openat2": "openat",
    "creat": "openat",
    "_llseek": "lseek",
    "llseek": "lseek",
    "stat64": "stat",
    "oldstat": "stat",
    "newstat": "stat",
    "lstat64": "lstat",
    "oldlstat": "lstat",
    "newlstat": "lstat",
    "fstat64": "fstat",
    "oldfstat": "fstat",
    "newfstat": "fstat",
    "fstatat64": "newfstatat",
    "statfs64": "statfs",
    "fstatfs64": "fstatfs",
    "fcntl64": "fcntl",
    "truncate64": "truncate",
    "ftruncate64": "ftruncate",
    "sendfile64": "sendfile",
    "getdents": "getdents64",
    "readdir": "getdents64",
    "pread": "pread64",
    "pwrite": "pwrite64",
    "mkdirat": "mkdir",
    "unlinkat": "unlink",
    "renameat": "rename",
    "renameat2": "rename",
    "linkat": "link",
    "symlinkat": "symlink",
    "readlinkat": "readlink",
    "fchmodat": "chmod",
    "fchmodat2": "chmod",
    "fchownat": "chown",
    "lchown": "chown",
    "mknodat": "mknod",
    "faccessat": "access",
    "faccessat2": "access",
    "utime": "utimensat",
    "utimes": "utimensat",
    "futimesat": "utimensat",
    "umount": "umount2",
    "oldumount": "umount2",
    # processes: glibc's fork() and posix_spawn() are clones; clone3 is the new
    # spelling
    "clone3": "clone",
    "fork": "clone",
    "vfork": "clone",
    "waitpid": "wait4",
    "signal": "rt_sigaction",
    "sigaction": "rt_sigaction",
    "sigprocmask": "rt_sigprocmask",
    "sigreturn": "rt_sigreturn",
    "sigsuspend": "rt_sigsuspend",
    "sigpending": "rt_sigpending",
    "ugetrlimit": "prlimit64",
    "getrlimit": "prlimit64",
    "setrlimit": "prlimit64",
    "old_getrlimit": "prlimit64",
    # descriptors and events
    "dup3": "dup2",
    "pipe2": "pipe",
    "accept4": "accept",
    "_newselect": "select",
    "oldselect": "select",
    "epoll_pwait": "epoll_wait",
    "epoll_pwait2": "epoll_wait",
    "epoll_create1": "epoll_create",
    "eventfd2": "eventfd",
    "signalfd4": "signalfd",
    "inotify_init1": "inotify_init",
    "ppoll": "poll",
    "pselect6": "select",
    "send": "sendto",
    "recv": "recvfrom",
    # i386 y2038 spellings that do not end in _time64
    "clock_gettime64": "clock_gettime",
    "clock_settime64": "clock_settime",
    "clock_adjtime64": "clock_adjtime",
    "timer_gettime64": "timer_gettime",
    "timer_settime64": "timer_settime",
    "timerfd_gettime64": "timerfd_gettime",
    "timerfd_settime64": "timerfd_settime",
}

_SUFFIX_32 = re.compile(r"^(.*[a-z])32$")
_SUFFIX_TIME64 = re.compile(r"^(.*)_time64$")
_UID_CALLS_32 = {
    "getuid32",
    "geteuid32",
    "getgid32",
    "getegid32",
    "setuid32",
    "setgid32",
    "setreuid32",
    "setregid32",
    "setresuid32",
    "getresuid32",
    "setresgid32",
    "getresgid32",
    "getgroups32",
    "setgroups32",
    "fchown32",
    "lchown32",
    "chown32",
    "setfsuid32",
    "setfsgid32",
}


@functools.lru_cache(maxsize=4096)
def canonical_name(name: str) -> str:
    """Folds a syscall spelling onto its canonical name.

    Strips strace's ``SYS_`` prefix, the i386 ``32`` and ``_time64`` suffixes,
    then applies :data:`ALIASES`. Empty or non-identifier names give
    ``UNKNOWN``.
    """
    name = name.strip()
    if name.startswith("SYS_"):
        # strace -n prints unknown calls as syscall_0x1b4 or SYS_nnn.
        name = name[4:]
    if (
        not name
        or not (name[0].isalpha() or name[0] == "_")
        or not name.replace("_", "a").isalnum()
    ):
        return UNKNOWN
    if name in _UID_CALLS_32:
        name = _SUFFIX_32.sub(r"\1", name)
    match = _SUFFIX_TIME64.match(name)
    if match:
        name = match.group(1)
    name = ALIASES.get(name, name)
    return ALIASES.get(name, name)


@functools.cache
def syscall_table(arch: str) -> dict[int, str]:
    """Number -> raw name for ``arch`` (``x86_64`` or ``i386``).

    Raises:
        ValueError: if ``arch`` is not one of :data:`ARCHES`.
    """
    if arch not in ARCHES:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {ARCHES}")
    text = (
        resources.files("sentinel_jax.data") / "tables" / f"syscalls_{arch}.tsv"
    ).read_text(encoding="ascii")
    table = {}
    for line in text.splitlines():
        number, name = line.split("\t")
        table[int(number)] = name
    return table


@functools.cache
def _number_index(arch: str) -> dict[str, int]:
    return {name: number for number, name in syscall_table(arch).items()}


def syscall_name(number: int, arch: str = "x86_64") -> str:
    """Canonical name of syscall ``number`` on ``arch``; ``UNKNOWN`` if none."""
    raw = syscall_table(arch).get(int(number))
    return canonical_name(raw) if raw is not None else UNKNOWN


def syscall_number(name: str, arch: str = "x86_64") -> int | None:
    """The number of raw name ``name`` on ``arch``, or ``None``."""
    return _number_index(arch).get(name)


def names_from_numbers(
    numbers: Iterable[int], arch: str = "i386", table: Mapping[int, str] | None = None
) -> list[str]:
    """Canonical names for a sequence of syscall numbers.

    Args:
        numbers: syscall numbers as the source wrote them.
        arch: the kernel table to use when ``table`` is not given.
        table: a user-supplied number -> name table that overrides ``arch``.
    """
    lookup = table if table is not None else syscall_table(arch)
    cache: dict[int, str] = {}
    names = []
    for number in numbers:
        name = cache.get(number)
        if name is None:
            raw = lookup.get(number)
            name = canonical_name(raw) if raw is not None else UNKNOWN
            cache[number] = name
        names.append(name)
    return names


@dataclass(frozen=True)
class Vocabulary:
    """Canonical syscall names -> name channels.

    Channel 0 is padding (short windows are right-padded and the padding is
    never counted), channel 1 is ``OTHER`` (rare, unseen and ``UNKNOWN``
    names), and channels ``2 .. name_channels - 1`` hold the most frequent
    names of the training traces, most frequent first.

    A vocabulary built from few distinct names still spans all its
    ``channels``: the unused ones stay empty, so the tag channels that follow
    in ``hist`` sit at the same place for every dataset and model.

    Attributes:
        names: the named channels, ``names[0] == PAD``, ``names[1] == OTHER``.
        channels: the name channels in all, ``>= len(names)``; ``len()`` of a
            vocabulary is this number. 0 means ``len(names)``.
    """

    names: tuple[str, ...]
    channels: int = 0

    def __post_init__(self) -> None:
        if len(self.names) < 2 or self.names[:2] != (PAD, OTHER):
            raise ValueError(
                f"a vocabulary starts with {PAD!r}, {OTHER!r}; got {self.names[:2]}"
            )
        if len(set(self.names)) != len(self.names):
            raise ValueError("vocabulary names must be unique")
        if self.channels == 0:
            object.__setattr__(self, "channels", len(self.names))
        if self.channels < len(self.names):
            raise ValueError(
                f"a vocabulary of {len(self.names)} names needs at least as many "
                f"channels, got {self.channels}"
            )

    @classmethod
    def build(
        cls, traces_names: Iterable[Sequence[str]], name_channels: int
    ) -> Vocabulary:
        """Builds a vocabulary from the names of training traces.

        Ties in frequency are broken by name so the result is deterministic.

        Args:
            traces_names: per trace, its canonical syscall names.
            name_channels: channels for names, including PAD and OTHER.
        """
        if name_channels < 2:
            raise ValueError(f"name_channels must be >= 2, got {name_channels}")
        counts: Counter[str] = Counter()
        for names in traces_names:
            counts.update(names)
        counts.pop(UNKNOWN, None)
        counts.pop(OTHER, None)
        counts.pop(PAD, None)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = [name for name, _ in ranked[: name_channels - 2]]
        return cls(names=(PAD, OTHER, *kept), channels=name_channels)

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """Name -> channel."""
        return {name: channel for channel, name in enumerate(self.names)}

    def __len__(self) -> int:
        return self.channels

    def __contains__(self, name: object) -> bool:
        return name in self.index

    def lookup(self, names: Iterable[str]) -> np.ndarray:
        """Channels of ``names`` as ``int32 [time]``; unknown names -> OTHER."""
        index = self.index
        return np.fromiter(
            (index.get(name, OTHER_ID) for name in names), dtype=np.int32
        )

    def to_json(self) -> dict[str, object]:
        return {"names": list(self.names), "channels": self.channels}

    @classmethod
    def from_json(cls, raw: Mapping[str, object] | Sequence[str]) -> Vocabulary:
        """Reads :meth:`to_json` output (or a bare list of names)."""
        if isinstance(raw, Mapping):
            return cls(names=tuple(raw["names"]), channels=int(raw["channels"]))
        return cls(names=tuple(raw))
