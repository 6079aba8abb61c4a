"""The tag rule table rendered as Rust: ``tags.rs`` of the native readers.

The Python reader and the Rust ones (the monitor's native reader and the
standalone detector) must derive the same tags from the same strace text, so
the Rust side is never written by hand: this module turns
:func:`sentinel_jax.data.tags.rules_as_json` into static tables that the
evaluator (``templates/tagger.rs``, a port of :mod:`sentinel_jax.data.tagger`)
reads. A change to the rule table changes both at their next build.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sentinel_jax.data.tags import rules_as_json

_KINDS = {"file": "Kind::File", "socket": "Kind::Socket", "pipe": "Kind::Pipe",
          "other": "Kind::Other"}
_SCOPES = {"loopback": "Scope::Loopback", "remote": "Scope::Remote"}
# The evaluator reads these access bits by position.
_FIXED_ACCESSES = ("read", "write", "exec")


class RuleTableError(ValueError):
    """The rule table holds something the Rust evaluator cannot express."""


def _string(text: str) -> str:
    """A Rust string literal; characters other than printable ASCII escaped."""
    def escape(char: str) -> str:
        if char in '"\\':
            return "\\" + char
        return char if " " <= char <= "~" else f"\\u{{{ord(char):x}}}"

    return '"' + "".join(map(escape, text)) + '"'


def _strings(items: Sequence[str]) -> str:
    return "&[" + ", ".join(map(_string, items)) + "]"


def _index(value: int | None) -> str:
    return "None" if value is None else f"Some({int(value)})"


class _Renderer:
    def __init__(self, table: Mapping[str, Any]) -> None:
        self.tags = list(table["tags"])
        self.accesses = list(table["accesses"])
        if len(self.tags) > 32:
            raise RuleTableError(f"{len(self.tags)} tags do not fit a u32 mask")
        if (tuple(self.accesses[:3]) != _FIXED_ACCESSES or len(self.accesses) > 8
                or self.accesses[4:5] != ["truncate"]):
            raise RuleTableError(f"accesses must start {_FIXED_ACCESSES}, have "
                                 f"'truncate' fifth and be at most 8; got "
                                 f"{self.accesses}")
        self.table = table

    def bit(self, rule: Mapping[str, Any]) -> int:
        if rule["tag"] not in self.tags:
            raise RuleTableError(f"rule for unknown tag {rule['tag']!r}")
        return self.tags.index(rule["tag"])

    def access_bits(self, names: Sequence[str], where: str) -> int:
        bits = 0
        for name in names:
            if name not in self.accesses:
                raise RuleTableError(f"{where}: unknown access {name!r}; known: "
                                     f"{', '.join(self.accesses)}")
            bits |= 1 << self.accesses.index(name)
        return bits

    def path_spec(self, name: str, spec: Sequence[Any]) -> str:
        accesses, dirfd, path = spec
        is_open = list(accesses) == ["open"]
        bits = 0 if is_open else self.access_bits(accesses, f"path_args[{name}]")
        return (f"PathSpec {{ open: {str(is_open).lower()}, accesses: {bits}, "
                f"dirfd: {_index(dirfd)}, path: {_index(path)} }}")

    def rule(self, rule: Mapping[str, Any]) -> str:
        kind, bit = rule["kind"], self.bit(rule)
        if kind == "path":
            access = self.access_bits(rule["access"], f"rule {rule['tag']}")
            return (f"Rule::Path {{ bit: {bit}, access: {access}, include: "
                    f"{_strings(rule['include'])}, exclude: "
                    f"{_strings(rule['exclude'])} }}")
        if kind == "flag":
            args = ", ".join(f"({_string(name)}, {int(index)})"
                             for name, index in rule["args"].items())
            return (f"Rule::Flag {{ bit: {bit}, args: &[{args}], all_of: "
                    f"{_strings(rule['all_of'])}, "
                    f"any_of: {_strings(rule['any_of'])} }}")
        if kind == "value":
            args = ", ".join(
                f"({_string(name)}, &[{', '.join(str(int(i)) for i in indices)}])"
                for name, indices in rule["args"].items())
            return (f"Rule::Value {{ bit: {bit}, args: &[{args}], values: "
                    f"{_strings(rule['values'])}, negate: "
                    f"{str(bool(rule['negate'])).lower()} }}")
        if kind == "address":
            if rule["scope"] not in _SCOPES:
                raise RuleTableError(f"rule {rule['tag']}: scope {rule['scope']!r}")
            args = ", ".join(f"({_string(name)}, {int(fd)}, {int(address)})"
                             for name, (fd, address) in rule["args"].items())
            return (f"Rule::Address {{ bit: {bit}, args: &[{args}], scope: "
                    f"{_SCOPES[rule['scope']]} }}")
        if kind == "dup":
            if rule["source_kind"] not in _KINDS:
                raise RuleTableError(f"rule {rule['tag']}: source_kind "
                                     f"{rule['source_kind']!r}")
            calls = ", ".join(f"({_string(name)}, {int(source)}, {int(target)})"
                              for name, (source, target) in rule["calls"].items())
            require = ", ".join(
                f"({_string(name)}, {int(index)}, {_strings(values)})"
                for name, (index, values) in rule["require"].items())
            targets = ", ".join(str(int(t)) for t in rule["targets"])
            return (f"Rule::Dup {{ bit: {bit}, calls: &[{calls}], targets: "
                    f"&[{targets}], source_kind: {_KINDS[rule['source_kind']]}, "
                    f"require: &[{require}] }}")
        if kind == "call":
            return f"Rule::Call {{ bit: {bit}, calls: {_strings(rule['calls'])} }}"
        if kind == "errno":
            return (f"Rule::Errno {{ bit: {bit}, errnos: {_strings(rule['errnos'])}, "
                    f"negate: {str(bool(rule['negate'])).lower()} }}")
        raise RuleTableError(f"rule for {rule['tag']!r} has unknown kind {kind!r}")

    def render(self) -> str:
        table = self.table
        lines = [
            "//! Generated by sentinel_jax.data.native.rust_tags from the Python rule",
            "//! table (sentinel_jax.data.tags.rules_as_json): do not edit.",
            f"//! Globs: {table['pattern_syntax']}",
            "#![allow(dead_code)]",
            "",
            "use crate::fdtable::{Kind, Scope};",
            "use crate::tagger::{PathSpec, Rule};",
            "",
            f"pub static TAG_NAMES: &[&str] = {_strings(self.tags)};",
            f"pub static ACCESSES: &[&str] = {_strings(self.accesses)};",
            "pub static PATH_ARGS: &[(&str, &[PathSpec])] = &[",
        ]
        for name, specs in table["path_args"].items():
            rendered = ", ".join(self.path_spec(name, spec) for spec in specs)
            lines.append(f"    ({_string(name)}, &[{rendered}]),")
        lines.append("];")
        flags = ", ".join(f"({_string(n)}, {int(i)})"
                          for n, i in table["open_flags"].items())
        lines.append(f"pub static OPEN_FLAGS: &[(&str, usize)] = &[{flags}];")
        lines.append("pub static FLAG_BITS: &[(&str, u64)] = &[")
        lines.extend(f"    ({_string(n)}, {int(v):#x})," for n, v in
                     table["flag_bits"].items())
        lines.append("];")
        lines.append("pub static RULES: &[Rule] = &[")
        lines.extend(f"    {self.rule(rule)}," for rule in table["rules"])
        lines.append("];")
        return "\n".join(lines) + "\n"


def render_tags(table: Mapping[str, Any] | None = None) -> str:
    """``tags.rs``: the rule table as static Rust data.

    Args:
        table: the output of :func:`~sentinel_jax.data.tags.rules_as_json`;
            the current table when ``None``.

    Raises:
        RuleTableError: for a rule the Rust evaluator cannot express (unknown
            kind, access, tag, scope or descriptor kind), naming it.
    """
    return _Renderer(rules_as_json() if table is None else table).render()
