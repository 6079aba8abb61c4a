"""Evaluates the tag rule table on strace calls.

:mod:`sentinel_jax.data.tags` holds the rules as plain data; a
:class:`Tagger` compiles them once (globs to regular expressions, rules
indexed by call name, results cached per path) so that tagging a call costs a
dictionary lookup for the many calls no rule looks at, and little more for
the rest. The process state (descriptors, working directory, pid) comes from
:mod:`sentinel_jax.data.fdtable`.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Sequence

from sentinel_jax.data.fdtable import FILE, ProcessState
from sentinel_jax.data.straceargs import (
    address_scope,
    annotation_path,
    decode_string,
    parse_fd,
    parse_flags,
    parse_int,
    parse_sockaddr,
    split_args,
)
from sentinel_jax.data.tags import (
    FLAG_BITS,
    OPEN_FLAGS,
    PATH_ARGS,
    TAG_BIT,
    TAG_RULES,
    AddressRule,
    CallRule,
    DupRule,
    ErrnoRule,
    FlagRule,
    PathRule,
    TagRule,
    ValueRule,
)

_WRITE_BITS = (FLAG_BITS["O_WRONLY"] | FLAG_BITS["O_RDWR"] | FLAG_BITS["O_CREAT"]
               | FLAG_BITS["O_APPEND"] | FLAG_BITS["O_TRUNC"])
_PROC_PID = re.compile(r"/proc/(\d+|thread-self)(?=/|$)")
_PATH_CACHE_SIZE = 1 << 16
# A leading descriptor with its -y annotation, exactly as split_args cuts the
# first argument (the annotation's own commas and angle brackets kept).
_ANNOTATED_FD = re.compile(
    r"-?\d+(?><(?:[^<>\[\]]|\[[^\]]*\])*(?:<[^<>]*>)?>)(?=,|\Z)")


def _own_proc_as_self(path: str, state: ProcessState) -> str:
    """``/proc/<own pid or tid>/...`` written ``/proc/self/...``: a process
    reading its own maps or status is not reading another's."""
    if not path.startswith("/proc/"):
        return path
    return _PROC_PID.sub(
        lambda m: "/proc/self" if m.group(1) == "thread-self"
        or state.is_self(int(m.group(1))) else m.group(0), path, count=1)


def _glob_regex(patterns: Sequence[str]) -> re.Pattern | None:
    """One regex for a set of globs (``*`` also matches ``/``)."""
    if not patterns:
        return None
    return re.compile("|".join(fnmatch.translate(p) for p in patterns), re.S)


def open_accesses(flags: str) -> tuple[str, ...]:
    """The accesses an ``open`` flags argument asks for."""
    _, value = parse_flags(flags, FLAG_BITS)
    accesses = []
    if value & 3 != FLAG_BITS["O_WRONLY"]:
        accesses.append("read")
    if value & _WRITE_BITS:
        accesses.append("write")
    if value & FLAG_BITS["O_TRUNC"]:
        accesses.append("truncate")
    return tuple(accesses)


def _flags_hold(rule: FlagRule, token: str) -> bool:
    names, value = parse_flags(token, FLAG_BITS)

    def present(flag: str) -> bool:
        bit = FLAG_BITS.get(flag, 0)
        return flag in names or (bit != 0 and value & bit == bit)

    if rule.all_of and not all(present(flag) for flag in rule.all_of):
        return False
    return not rule.any_of or any(present(flag) for flag in rule.any_of)


class Tagger:
    """The rule table, compiled.

    Args:
        rules: the rules to apply; the default is :data:`TAG_RULES`.
    """

    def __init__(self, rules: Sequence[TagRule] = TAG_RULES) -> None:
        self.rules = tuple(rules)
        self._path_rules: list[tuple[int, frozenset[str], re.Pattern,
                                     re.Pattern | None]] = []
        self._by_call: dict[str, list[TagRule]] = {}
        self._errno_rules: list[ErrnoRule] = []
        for rule in self.rules:
            if isinstance(rule, PathRule):
                self._path_rules.append((1 << TAG_BIT[rule.tag], rule.access,
                                         _glob_regex(rule.include),
                                         _glob_regex(rule.exclude)))
            elif isinstance(rule, ErrnoRule):
                self._errno_rules.append(rule)
            else:
                by_call = (rule.calls if isinstance(rule, (CallRule, DupRule))
                           else rule.args)
                for call in by_call:
                    self._by_call.setdefault(call, []).append(rule)
        self._path_cache: dict[tuple[str, tuple[str, ...]], int] = {}
        self._errno_cache: dict[str, int] = {}
        #: Raw call names whose tags depend on their arguments.
        self.arg_calls = frozenset(self._by_call) | frozenset(PATH_ARGS)
        # Calls whose only input is the descriptor in front (read, write...):
        # they need no argument split, the commonest case of all.
        self._fd_only = {
            name: specs[0][0] for name, specs in PATH_ARGS.items()
            if len(specs) == 1 and specs[0][1:] == (0, None)
            and name not in self._by_call}
        #: Calls :meth:`tag` would split the arguments of.
        self.split_calls = self.arg_calls - frozenset(self._fd_only)

    def path_mask(self, path: str, accesses: tuple[str, ...]) -> int:
        """Tags of touching the (resolved) ``path`` with ``accesses``."""
        key = (path, accesses)
        mask = self._path_cache.get(key)
        if mask is None:
            mask = 0
            for bit, access, include, exclude in self._path_rules:
                if (not access.isdisjoint(accesses) and include.match(path)
                        and (exclude is None or not exclude.match(path))):
                    mask |= bit
            if len(self._path_cache) >= _PATH_CACHE_SIZE:
                self._path_cache.clear()
            self._path_cache[key] = mask
        return mask

    def errno_mask(self, errno: str) -> int:
        """Tags of failing with ``errno``."""
        mask = self._errno_cache.get(errno)
        if mask is None:
            mask = 0
            for rule in self._errno_rules:
                if (errno in rule.errnos) != rule.negate:
                    mask |= 1 << TAG_BIT[rule.tag]
            self._errno_cache[errno] = mask
        return mask

    def tag(self, name: str, args_text: str, result: int | None,
            errno: str | None, state: ProcessState,
            args: list[str] | None = None) -> int:
        """The tag mask of one call, made by the process ``state``.

        Call before the call's effect is applied to ``state`` (arguments name
        descriptors as they were before the call). Calls no rule reads the
        arguments of cost a set lookup, and calls whose only input is the
        descriptor in front (``read``, ``write``) are read without splitting;
        the result is always that of :meth:`tag_exhaustive`.

        Args:
            name: raw syscall name.
            args_text: raw argument text.
            result: return value, ``None`` if unknown.
            errno: error name or ``None``.
            state: the calling process.
            args: ``args_text`` already split, if the caller has it.
        """
        mask = self.errno_mask(errno) if errno is not None else 0
        if name not in self.arg_calls:
            return mask
        accesses = self._fd_only.get(name)
        if accesses is not None:
            comma = args_text.find(",")
            token = args_text[:comma] if comma >= 0 else args_text
            if token.isdecimal():
                info = state.fds.get(int(token))
            else:
                annotated = _ANNOTATED_FD.match(args_text)
                if annotated is None:
                    args = args if args is not None else split_args(args_text)
                    return mask | self._rules_mask(name, args, result, state)
                info = state.learn(*parse_fd(annotated.group()))
            if info is not None and info.kind == FILE and info.path is not None:
                mask |= self.path_mask(_own_proc_as_self(info.path, state), accesses)
            return mask
        if args is None:
            args = split_args(args_text)
        return mask | self._rules_mask(name, args, result, state)

    def tag_exhaustive(self, name: str, args: list[str], result: int | None,
                       errno: str | None, state: ProcessState) -> int:
        """:meth:`tag` with no shortcut: every rule naming the call evaluated
        on the split arguments ``args``. The reference :meth:`tag` is checked
        against."""
        mask = self.errno_mask(errno) if errno is not None else 0
        return mask | self._rules_mask(name, args, result, state)

    def _rules_mask(self, name: str, args: list[str], result: int | None,
                    state: ProcessState) -> int:
        """Tags of the path and argument rules for call ``name``."""
        mask = 0
        specs = PATH_ARGS.get(name)
        if specs is not None:
            for accesses, dirfd_arg, path_arg in specs:
                if accesses == ("open",):
                    flags_arg = OPEN_FLAGS[name]
                    accesses = open_accesses(
                        args[flags_arg] if len(args) > flags_arg else "")
                path = self._path_of(state, args, dirfd_arg, path_arg)
                if path is not None:
                    mask |= self.path_mask(path, accesses)
        for rule in self._by_call.get(name, ()):
            if self._holds(rule, name, args, result, state):
                mask |= 1 << TAG_BIT[rule.tag]
        return mask

    @staticmethod
    def _path_of(state: ProcessState, args: list[str], dirfd_arg: int | None,
                 path_arg: int | None) -> str | None:
        path = None
        if path_arg is not None:
            if len(args) <= path_arg:
                return None
            path = decode_string(args[path_arg])
        dirfd = None
        if dirfd_arg is not None and len(args) > dirfd_arg:
            dirfd, annotation = parse_fd(args[dirfd_arg])
            if dirfd is None and annotation and annotation.startswith("/"):
                state.cwd = annotation_path(annotation)
            info = state.learn(dirfd, annotation)
            if not path:
                # The file is the descriptor itself (write(fd), AT_EMPTY_PATH);
                # a -y annotation names /proc/self by the process's own pid.
                if info is None or info.kind != FILE or info.path is None:
                    return None
                return _own_proc_as_self(info.path, state)
        if not path:
            return None
        return _own_proc_as_self(state.resolve(path, dirfd), state)

    @staticmethod
    def _holds(rule: TagRule, name: str, args: list[str], result: int | None,
               state: ProcessState) -> bool:
        if isinstance(rule, CallRule):
            return True
        if isinstance(rule, FlagRule):
            index = rule.args[name]
            return len(args) > index and _flags_hold(rule, args[index])
        if isinstance(rule, ValueRule):
            return _value_holds(rule, name, args, state)
        if isinstance(rule, AddressRule):
            fd_arg, address_arg = rule.args[name]
            return _address_scope(args, fd_arg, address_arg, state) == rule.scope
        if isinstance(rule, DupRule):
            return _dup_holds(rule, name, args, result, state)
        return False


def _value_holds(rule: ValueRule, name: str, args: list[str],
                 state: ProcessState) -> bool:
    indices = [index for index in rule.args[name] if index < len(args)]
    if not indices:
        return False

    def equal(token: str, value: str) -> bool:
        if value == "$self":
            number = parse_int(token)
            return number is not None and state.is_self(number)
        return token == value

    if rule.negate:
        token = args[indices[0]]
        return not any(equal(token, value) for value in rule.values)
    return any(equal(args[index], value) for index in indices
               for value in rule.values)


def _address_scope(args: list[str], fd_arg: int, address_arg: int,
                   state: ProcessState) -> str | None:
    if len(args) > address_arg:
        address = parse_sockaddr(args[address_arg])
        if address is not None:
            return address_scope(address[1]) if address[1] else None
    if len(args) > fd_arg:
        info = state.learn(*parse_fd(args[fd_arg]))
        return info.scope if info is not None else None
    return None


def _dup_holds(rule: DupRule, name: str, args: list[str], result: int | None,
               state: ProcessState) -> bool:
    source_arg, target_arg = rule.calls[name]
    required = rule.require.get(name)
    if required is not None:
        index, values = required
        if len(args) <= index or args[index] not in values:
            return False
    if len(args) <= max(source_arg, target_arg):
        return False
    target = result if target_arg < 0 else parse_fd(args[target_arg])[0]
    if target is None or target not in rule.targets:
        return False
    info = state.learn(*parse_fd(args[source_arg]))
    return info is not None and info.kind == rule.source_kind


@functools.lru_cache(maxsize=1)
def default_tagger() -> Tagger:
    """The tagger for :data:`TAG_RULES`, built once."""
    return Tagger()


def derive_tags(name: str, args: str, result: int | None = None,
                errno: str | None = None, *, pid: int = 0) -> int:
    """Tags of one call seen alone (no descriptor table, unknown directory).

    A convenience for tests and generators; the strace reader tags calls with
    the full per-process state (see :class:`Tagger`).

    Args:
        name: raw syscall name as strace prints it.
        args: the raw argument text between the parentheses.
        result: return value, ``None`` if unknown.
        errno: error name such as ``ENOENT``, or ``None``.
        pid: the calling process.
    """
    return default_tagger().tag(name, args, result, errno, ProcessState(pid))
