"""Tags: classes of a call's arguments and outcome, from one rule table.

A detector that sees only call names cannot tell a reverse shell from a shell,
or a read of ``/etc/shadow`` from a read of ``/etc/hosts``. Tags carry that
difference. Each event holds a bit mask over :data:`TAG_NAMES` (at most 32
tags, so a mask fits ``uint32``); each tag is one input channel of the models.

TODO: the declarative rule table (path classes, flags, errors) and
``derive_tags`` are being written; until then this module fixes the tag names
and their bit order, which the encoder, the synthetic generator and the Rust
detector share.
"""

from __future__ import annotations

from collections.abc import Iterable

# Bit i of a tag mask is TAG_NAMES[i]. The order is part of the dataset and
# checkpoint format: append, never reorder.
TAG_NAMES: tuple[str, ...] = (
    "persist_write",      # write/create under cron, systemd, profiles, ld.so.preload, authorized_keys
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
