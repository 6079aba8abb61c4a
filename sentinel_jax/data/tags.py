"""Tags: classes of a call's arguments and outcome, from one rule table.

A detector that sees only call names cannot tell a reverse shell from a shell,
or a read of ``/etc/shadow`` from a read of ``/etc/hosts``. Tags carry that
difference. Each event holds a bit mask over :data:`TAG_NAMES` (at most 32
tags, so a mask fits ``uint32``); each tag is one input channel of the models.

The rules are plain data so that the same table drives the strace reader (via
:mod:`sentinel_jax.data.tagger`), the synthetic generator and the generated
Rust detector; :func:`rules_as_json` gives the whole table as JSON-able data.
Seven kinds of rule, each naming the tag it sets and why that matters:

* :class:`PathRule`: a file the call touches, classified by glob patterns and
  by how it is touched (an *access*: ``read``, ``write``, ``exec``,
  ``delete``, ``truncate``, ``perm``, ``utime``). Which arguments are paths
  or descriptors, and which access each means, is in :data:`PATH_ARGS`;
  ``open``-like calls take their access from the flags (:data:`OPEN_FLAGS`).
* :class:`FlagRule`: flag bits in one argument (``PROT_WRITE|PROT_EXEC``).
* :class:`ValueRule`: an argument equal (or not) to one of some values; the
  value ``$self`` stands for the calling process's own pid or tgid.
* :class:`AddressRule`: a socket address, or a socket's peer, that is on the
  loopback network or not.
* :class:`DupRule`: a descriptor of some kind duplicated onto given numbers.
* :class:`CallRule`: any call of a set of names.
* :class:`ErrnoRule`: the call failed with (or without) given error names.

Call names are the *raw* names strace prints (``openat``, ``dup3``,
``setuid32``), because argument positions differ between spellings that
:func:`~sentinel_jax.data.syscalls.canonical_name` folds together.

Glob patterns are matched against absolute, normalised paths: ``*`` matches
any run of characters *including* ``/``, ``?`` one character, ``[...]`` one
character of a class. Paths under ``/proc`` naming the calling process itself
(``/proc/<own pid>/``, ``/proc/thread-self/``) are rewritten to
``/proc/self/`` first, so ``/proc/[0-9]*/mem`` means another process's memory.
A relative path whose directory is unknown becomes ``./path``, which matches
``*/name`` patterns but never ones anchored at ``/``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Bit i of a tag mask is TAG_NAMES[i]. The order is part of the dataset and
# checkpoint format: append, never reorder.
TAG_NAMES: tuple[str, ...] = (
    "persist_write",      # write under cron, systemd, profiles, ld.so.preload, ssh keys
    "cred_read",          # read of /etc/shadow, private keys, cloud credentials
    "sysbin_write",       # write to system binaries or libraries
    "proc_mem_access",    # open of another process's /proc/<pid>/mem
    "proc_info_read",     # another process's /proc/<pid>/environ, cmdline, maps
    "input_device",       # /dev/input/*, ttys and ptys of others
    "mem_wx",             # writable and executable memory (mmap/mprotect)
    "uid_zero",           # setuid/setresuid/setreuid to 0, capset
    "setuid_bit",         # chmod/fchmod setting S_ISUID or S_ISGID
    "ptrace_attach",      # PTRACE_ATTACH / PTRACE_SEIZE
    "ptrace_write",       # PTRACE_POKE*, PTRACE_SETREGS
    "vm_write",           # process_vm_writev
    "module_load",        # init_module, finit_module, delete_module
    "exec_shell",         # execve of sh, bash, dash, zsh...
    "exec_interpreter",   # execve of python, perl, ruby, php, node...
    "exec_net_tool",      # execve of nc, socat, curl, wget, ssh, scp...
    "socket_remote",      # connect/sendto to a non-loopback address
    "socket_loopback",    # connect/sendto to a loopback address
    "socket_listen",      # bind + listen, a listening socket
    "stdio_socket",       # stdin/stdout/stderr duplicated onto a socket
    "time_set",           # explicit timestamps set on a file (utimensat...)
    "log_delete",         # unlink/truncate of files under /var/log, shell history
    "denied",             # failed with EPERM or EACCES
    "sysconf_write",      # write to system configuration stores (/etc, sysctl)
    "hidden_write",       # create/write of dot files in /tmp, /dev/shm, /var/tmp
    "tmp_exec",           # execve from /tmp, /dev/shm, /var/tmp or a memfd
    "memfd",              # memfd_create (fileless payloads)
    "recon_read",         # reads of /etc/passwd, /proc/net/*, /etc/hosts... (discovery)
    "signal_other",       # kill/tgkill to another process
    "namespace_mount",    # mount, unshare, setns, pivot_root
    "perm_change",        # chmod/chown on files outside the home and /tmp
    "error_other",        # any other failure (-1 with an errno other than EPERM/EACCES)
)
NUM_TAGS = len(TAG_NAMES)
TAG_BIT = {name: bit for bit, name in enumerate(TAG_NAMES)}

assert NUM_TAGS <= 32, "tag masks are uint32"

# How a call touches a file.
ACCESSES = ("read", "write", "exec", "delete", "truncate", "perm", "utime")

# Raw call name -> the files it touches: (accesses, dirfd_arg, path_arg).
# ``path_arg`` None: the file is the descriptor at ``dirfd_arg``. ``dirfd_arg``
# None: the path is relative to the working directory. The access ``open``
# means "from the flags argument" (see OPEN_FLAGS).
PATH_ARGS: Mapping[str, tuple[tuple[tuple[str, ...], int | None, int | None], ...]]
PATH_ARGS = {
    "open": ((("open",), None, 0),),
    "openat": ((("open",), 0, 1),),
    "openat2": ((("open",), 0, 1),),
    "creat": ((("write", "truncate"), None, 0),),
    **{name: ((("read",), 0, None),)
       for name in ("read", "pread64", "readv", "preadv", "preadv2")},
    **{name: ((("write",), 0, None),)
       for name in ("write", "pwrite64", "writev", "pwritev", "pwritev2")},
    "sendfile": ((("write",), 0, None), (("read",), 1, None)),
    "sendfile64": ((("write",), 0, None), (("read",), 1, None)),
    "copy_file_range": ((("read",), 0, None), (("write",), 2, None)),
    "truncate": ((("write", "truncate"), None, 0),),
    "truncate64": ((("write", "truncate"), None, 0),),
    "ftruncate": ((("write", "truncate"), 0, None),),
    "ftruncate64": ((("write", "truncate"), 0, None),),
    "unlink": ((("delete",), None, 0),),
    "unlinkat": ((("delete",), 0, 1),),
    "rmdir": ((("delete",), None, 0),),
    "rename": ((("delete",), None, 0), (("write",), None, 1)),
    "renameat": ((("delete",), 0, 1), (("write",), 2, 3)),
    "renameat2": ((("delete",), 0, 1), (("write",), 2, 3)),
    "link": ((("write",), None, 1),),
    "linkat": ((("write",), 2, 3),),
    "symlink": ((("write",), None, 1),),
    "symlinkat": ((("write",), 1, 2),),
    "mkdir": ((("write",), None, 0),),
    "mkdirat": ((("write",), 0, 1),),
    "mknod": ((("write",), None, 0),),
    "mknodat": ((("write",), 0, 1),),
    "execve": ((("exec",), None, 0),),
    "execveat": ((("exec",), 0, 1),),
    **{name: ((("perm",), None, 0),)
       for name in ("chmod", "chown", "lchown", "chown32", "lchown32")},
    **{name: ((("perm",), 0, None),) for name in ("fchmod", "fchown", "fchown32")},
    **{name: ((("perm",), 0, 1),) for name in ("fchmodat", "fchmodat2", "fchownat")},
    "utime": ((("utime",), None, 0),),
    "utimes": ((("utime",), None, 0),),
    "utimensat": ((("utime",), 0, 1),),
    "utimensat_time64": ((("utime",), 0, 1),),
    "futimesat": ((("utime",), 0, 1),),
}

# Open-like calls: raw name -> index of the flags argument. O_WRONLY/O_RDWR/
# O_CREAT/O_APPEND mean write, O_TRUNC write and truncate, O_RDWR or no write
# flag read.
OPEN_FLAGS: Mapping[str, int] = {"open": 1, "openat": 2, "openat2": 2}

# Flag names -> bits, to read flags strace printed as numbers (``-X raw``,
# modes such as ``04755``). Values are the Linux ones, the same on x86_64 and
# i386.
FLAG_BITS: Mapping[str, int] = {
    "O_WRONLY": 0o1, "O_RDWR": 0o2, "O_CREAT": 0o100, "O_TRUNC": 0o1000,
    "O_APPEND": 0o2000,
    "PROT_READ": 0x1, "PROT_WRITE": 0x2, "PROT_EXEC": 0x4,
    "S_ISUID": 0o4000, "S_ISGID": 0o2000,
    "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000, "CLONE_NEWNET": 0x40000000,
    "CLONE_NEWNS": 0x00020000,
}


@dataclass(frozen=True)
class TagRule:
    """Base of all rules: the tag set when the rule holds, and why it matters."""

    tag: str
    why: str

    def __post_init__(self) -> None:
        if self.tag not in TAG_BIT:
            raise ValueError(f"rule for unknown tag {self.tag!r}")

    @property
    def kind(self) -> str:
        return type(self).__name__.removesuffix("Rule").lower()

    def to_json(self) -> dict[str, Any]:
        """This rule as JSON-able data, with its ``kind``."""
        data = {"kind": self.kind}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, Mapping):
                value = {key: list(v) if isinstance(v, tuple) else v
                         for key, v in value.items()}
            elif isinstance(value, (tuple, frozenset)):
                value = sorted(value) if isinstance(value, frozenset) else list(value)
            data[item.name] = value
        return data


@dataclass(frozen=True)
class PathRule(TagRule):
    """A file touched with one of ``access``, matching ``include`` globs and
    none of ``exclude``."""

    access: frozenset[str] = frozenset()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class FlagRule(TagRule):
    """Flags in argument ``args[call]``: all of ``all_of`` (when given) and at
    least one of ``any_of`` (when given)."""

    args: Mapping[str, int] = field(default_factory=dict)
    all_of: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValueRule(TagRule):
    """One of the arguments ``args[call]`` is one of ``values`` (or, with
    ``negate``, the first of them is none of ``values``)."""

    args: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    values: tuple[str, ...] = ()
    negate: bool = False


@dataclass(frozen=True)
class AddressRule(TagRule):
    """A socket address at argument ``args[call][1]`` (or else the peer of the
    descriptor at ``args[call][0]``) whose scope is ``scope`` (``loopback`` or
    ``remote``). Only Internet addresses have a scope."""

    args: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    scope: str = "remote"


@dataclass(frozen=True)
class DupRule(TagRule):
    """A descriptor of kind ``source_kind`` (argument ``calls[call][0]``)
    duplicated onto one of ``targets`` (argument ``calls[call][1]``, or the
    result when that is -1); ``require[call]`` is (argument, values) that must
    also hold."""

    calls: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    targets: tuple[int, ...] = ()
    source_kind: str = "socket"
    require: Mapping[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)


@dataclass(frozen=True)
class CallRule(TagRule):
    """Any call named in ``calls``."""

    calls: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ErrnoRule(TagRule):
    """The call failed with an error in ``errnos`` (or, with ``negate``, with
    any error not in ``errnos``)."""

    errnos: frozenset[str] = frozenset()
    negate: bool = False


def _path(tag: str, access: str, include: str, exclude: str = "", *,
          why: str) -> PathRule:
    return PathRule(tag, why, frozenset(access.split()), tuple(include.split()),
                    tuple(exclude.split()))


_SHELLS = "sh bash dash zsh ksh mksh csh tcsh fish ash busybox"
_INTERPRETERS = ("python python[0-9]* perl perl[0-9]* ruby* php* node nodejs "
                 "lua* tclsh* wish* pwsh java")
_NET_TOOLS = ("nc nc.* ncat netcat socat curl wget ssh scp sftp telnet ftp tftp "
              "rsync nmap")
_TMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
_UID_SETTERS = {
    **{name: (0,) for name in ("setuid", "setuid32", "setgid", "setgid32",
                               "setfsuid", "setfsuid32", "setfsgid", "setfsgid32")},
    **{name: (0, 1) for name in ("setreuid", "setreuid32", "setregid", "setregid32")},
    **{name: (0, 1, 2) for name in ("setresuid", "setresuid32", "setresgid",
                                     "setresgid32")},
}
_SIGNAL_TARGETS = {name: (0,) for name in (
    "kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")}
_SOCKET_ADDRESSES = {"connect": (0, 1), "sendto": (0, 4), "sendmsg": (0, 1),
                     "accept": (0, 1), "accept4": (0, 1)}
_RESTART_ERRNOS = ("ERESTARTSYS", "ERESTARTNOINTR", "ERESTARTNOHAND",
                   "ERESTART_RESTARTBLOCK")

TAG_RULES: tuple[TagRule, ...] = (
    _path("persist_write", "write",
          "/etc/cron* /var/spool/cron/* /etc/anacrontab /etc/systemd/* "
          "/lib/systemd/system/* /usr/lib/systemd/system/* */.config/systemd/* "
          "/etc/init.d/* /etc/rc.local /etc/rc?.d/* /etc/profile /etc/profile.d/* "
          "/etc/bash.bashrc /etc/environment /etc/zsh/* */.bashrc */.bash_profile "
          "*/.bash_login */.profile */.zshrc */.zprofile */.zshenv "
          "/etc/ld.so.preload */.ssh/authorized_keys* /etc/xdg/autostart/* "
          "*/.config/autostart/* /etc/sudoers /etc/sudoers.d/* /etc/update-motd.d/* "
          "/etc/udev/rules.d/*",
          why="a program started again at boot, login, a schedule or every exec "
              "(cron, systemd units, shell profiles, ld.so.preload), or a key that "
              "lets an attacker back in: how intrusions survive a reboot"),
    _path("cred_read", "read",
          "/etc/shadow /etc/shadow- /etc/gshadow /etc/gshadow- "
          "/etc/security/opasswd */.ssh/id_* /etc/ssh/ssh_host_*_key "
          "*/.aws/credentials */.config/gcloud/* */.azure/* */.kube/config "
          "*/.docker/config.json */.netrc */.pgpass */.git-credentials "
          "*/.gnupg/private-keys* */.gnupg/secring.gpg /etc/ssl/private/*",
          "*/.ssh/id_*.pub",
          why="password hashes, private keys and cloud tokens are read by almost "
              "nothing but logins and credential theft"),
    _path("sysbin_write", "write delete",
          "/bin/* /sbin/* /usr/bin/* /usr/sbin/* /usr/local/bin/* /usr/local/sbin/* "
          "/lib/* /lib64/* /lib32/* /usr/lib/* /usr/lib64/* /usr/lib32/* "
          "/usr/local/lib/* /usr/libexec/* /boot/*",
          "*/__pycache__/*",
          why="replacing a system binary or library (trojaned ls, sshd, libc) runs "
              "attacker code in every later process"),
    _path("proc_mem_access", "read write",
          "/proc/[0-9]*/mem",
          why="another process's memory read or written through /proc: credential "
              "dumping and code injection without ptrace"),
    _path("proc_info_read", "read",
          "/proc/[0-9]*/environ /proc/[0-9]*/cmdline /proc/[0-9]*/maps "
          "/proc/[0-9]*/smaps /proc/[0-9]*/auxv",
          why="other processes' environment (secrets), command lines and memory "
              "maps: process discovery and the step before injection"),
    _path("input_device", "read write",
          "/dev/input/* /dev/uinput /dev/hidraw* /dev/tty[0-9]* /dev/vcs*",
          why="keyboards and virtual consoles are read by keyloggers and written "
              "by input injection; ordinary programs use their own terminal"),
    FlagRule("mem_wx",
             "memory both writable and executable is where injected or unpacked "
             "code runs; ordinary code is never writable",
             args={"mmap": 2, "mmap2": 2, "mprotect": 2, "pkey_mprotect": 2},
             all_of=("PROT_WRITE", "PROT_EXEC")),
    ValueRule("uid_zero",
              "becoming uid or gid 0 is the goal of privilege escalation",
              args=_UID_SETTERS, values=("0",)),
    CallRule("uid_zero", "capset grants capabilities, root's powers piecemeal",
             calls=frozenset({"capset"})),
    FlagRule("setuid_bit",
             "a set-user-id or set-group-id file runs as its owner for anyone: "
             "the classic root backdoor",
             args={"chmod": 1, "fchmod": 1, "fchmodat": 2, "fchmodat2": 2,
                   "creat": 1, "open": 2, "openat": 3},
             any_of=("S_ISUID", "S_ISGID")),
    ValueRule("ptrace_attach",
              "attaching to a running process is how debuggers and injectors "
              "take control of it",
              args={"ptrace": (0,)},
              values=("PTRACE_ATTACH", "PTRACE_SEIZE", "16", "0x4206")),
    ValueRule("ptrace_write",
              "writing another process's memory or registers injects code",
              args={"ptrace": (0,)},
              values=("PTRACE_POKETEXT", "PTRACE_POKEDATA", "PTRACE_POKEUSER",
                      "PTRACE_SETREGS", "PTRACE_SETFPREGS", "PTRACE_SETREGSET",
                      "4", "5", "6", "13", "15", "0x4205")),
    CallRule("vm_write", "process_vm_writev writes another process's memory "
                         "directly: code injection",
             calls=frozenset({"process_vm_writev"})),
    CallRule("module_load", "a kernel module runs with full privilege: rootkits",
             calls=frozenset({"init_module", "finit_module", "delete_module"})),
    _path("exec_shell", "exec", " ".join(f"*/{name}" for name in _SHELLS.split()),
          why="a shell started by a service is the usual payload of an exploit "
              "(reverse and bind shells)"),
    _path("exec_interpreter", "exec",
          " ".join(f"*/{name}" for name in _INTERPRETERS.split()),
          why="interpreters run one-liner payloads and droppers"),
    _path("exec_net_tool", "exec",
          " ".join(f"*/{name}" for name in _NET_TOOLS.split()),
          why="download and tunnelling tools fetch stage two or carry data out"),
    AddressRule("socket_remote",
                "a connection to another host: command and control, exfiltration",
                args=_SOCKET_ADDRESSES, scope="remote"),
    AddressRule("socket_loopback",
                "a connection on the loopback network: local pivots, and the "
                "shape of a reverse shell tested locally",
                args=_SOCKET_ADDRESSES, scope="loopback"),
    CallRule("socket_listen", "a listening socket in a process that should not "
                              "serve is a bind shell or backdoor",
             calls=frozenset({"listen", "accept", "accept4"})),
    DupRule("stdio_socket",
            "standard input or output on a socket is the signature of a reverse "
            "or bind shell",
            calls={"dup2": (0, 1), "dup3": (0, 1), "dup": (0, -1), "fcntl": (0, -1)},
            targets=(0, 1, 2), source_kind="socket",
            require={"fcntl": (1, ("F_DUPFD", "F_DUPFD_CLOEXEC"))}),
    ValueRule("time_set",
              "explicit timestamps set on a file hide what was changed "
              "(timestomping); plain touch sets the current time",
              args={"utimensat": (2,), "utimensat_time64": (2,), "futimesat": (2,),
                    "utime": (1,), "utimes": (1,)},
              values=("NULL", "[UTIME_NOW, UTIME_NOW]"), negate=True),
    _path("log_delete", "delete truncate",
          "/var/log/* */.bash_history */.zsh_history */.*_history */.lesshst "
          "/var/run/utmp /run/utmp",
          why="deleting or emptying logs and shell history covers tracks"),
    ErrnoRule("denied", "a permission failure is how probing for privilege "
                        "looks from outside",
              errnos=frozenset({"EPERM", "EACCES"})),
    _path("sysconf_write", "write",
          "/etc/* /proc/sys/* /sys/*",
          why="system configuration (accounts, resolvers, kernel knobs) changed "
              "by a program that is not a package manager or an admin tool"),
    _path("hidden_write", "write",
          " ".join(f"{root}/.* {root}/*/.*" for root in _TMP_DIRS),
          why="dot files in world-writable directories are where droppers hide "
              "payloads"),
    _path("tmp_exec", "exec",
          " ".join(f"{root}/*" for root in _TMP_DIRS)
          + " /proc/self/fd/* /dev/fd/* /memfd:*",
          why="programs run from temporary directories or memory were just "
              "dropped there; installed programs live elsewhere"),
    CallRule("memfd", "memfd_create gives an anonymous in-memory file: the "
                      "usual start of a fileless payload",
             calls=frozenset({"memfd_create"})),
    _path("recon_read", "read",
          "/etc/passwd /etc/group /etc/hosts /etc/issue* /etc/*-release "
          "/proc/net/* /proc/self/net/* /proc/[0-9]*/net/* /proc/version "
          "/etc/sudoers /etc/sudoers.d/*",
          why="accounts, hosts, network tables and the OS version are what "
              "discovery reads first"),
    ValueRule("signal_other",
              "signals to other processes stop or kill defences and other "
              "users' programs",
              args=_SIGNAL_TARGETS, values=("$self",), negate=True),
    CallRule("signal_other", "a signal sent through a process descriptor",
             calls=frozenset({"pidfd_send_signal"})),
    CallRule("namespace_mount", "mounts, namespaces and chroot are how "
                                "container escapes and hidden file systems work",
             calls=frozenset({"mount", "umount", "umount2", "unshare", "setns",
                              "pivot_root", "chroot", "fsmount", "move_mount"})),
    FlagRule("namespace_mount", "a process started in new namespaces",
             args={"clone": 1, "clone3": 0},
             any_of=("CLONE_NEWNS", "CLONE_NEWUSER", "CLONE_NEWPID", "CLONE_NEWNET",
                     "CLONE_NEWUTS", "CLONE_NEWIPC", "CLONE_NEWCGROUP")),
    _path("perm_change", "perm",
          "/*",
          "/home/* /root/* /tmp/* /var/tmp/* /dev/shm/* /proc/self/*",
          why="mode or owner changed outside users' own files: weakening system "
              "files or preparing them for abuse"),
    ErrnoRule("error_other", "a burst of failures (missing files, refused "
                             "connections) marks scanning and broken exploits",
              errnos=frozenset({"EPERM", "EACCES", *_RESTART_ERRNOS}),
              negate=True),
)

PATTERN_SYNTAX = ("glob: '*' any characters including '/', '?' one character, "
                  "'[...]' one character of a class; matched against absolute "
                  "normalised paths, /proc/<own pid>/ rewritten to /proc/self/, "
                  "relative paths with unknown directory as './path'")


def rules_as_json() -> dict[str, Any]:
    """The whole rule table as JSON-able data, for other renderers (Rust)."""
    return {
        "tags": list(TAG_NAMES),
        "accesses": list(ACCESSES),
        "path_args": {name: [[list(access), dirfd, path]
                             for access, dirfd, path in specs]
                      for name, specs in PATH_ARGS.items()},
        "open_flags": dict(OPEN_FLAGS),
        "flag_bits": dict(FLAG_BITS),
        "pattern_syntax": PATTERN_SYNTAX,
        "rules": [rule.to_json() for rule in TAG_RULES],
    }


def tag_mask(names: Iterable[str]) -> int:
    """The bit mask of the tags ``names``.

    Raises:
        KeyError: naming the first unknown tag.
    """
    mask = 0
    for name in names:
        if name not in TAG_BIT:
            raise KeyError(f"unknown tag {name!r}; known tags: {', '.join(TAG_NAMES)}")
        mask |= 1 << TAG_BIT[name]
    return mask


def tag_names(mask: int) -> list[str]:
    """The tag names set in ``mask``, in bit order."""
    return [name for bit, name in enumerate(TAG_NAMES) if mask >> bit & 1]
