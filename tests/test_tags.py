"""Tag rules: a positive and a negative real strace line per tag, the table as
data, and real programs run under strace getting the tags they earn."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from sentinel_jax.data.strace import StraceParser, iter_strace_calls
from sentinel_jax.data.tagger import derive_tags
from sentinel_jax.data.tags import (
    NUM_TAGS,
    TAG_NAMES,
    TAG_RULES,
    rules_as_json,
    tag_mask,
    tag_names,
)

needs_strace = pytest.mark.skipif(shutil.which("strace") is None,
                                  reason="strace is not installed")
PID = 4242


def last_tags(*lines: str) -> set[str]:
    """Tags of the last call of some strace -f -o lines (earlier lines set up
    the descriptor table)."""
    calls = list(iter_strace_calls([f"{PID}  {line}" for line in lines]))
    return set(tag_names(calls[-1].tags))


SOCKET = "socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP) = 5"
LOOPBACK = ('connect(5, {sa_family=AF_INET, sin_port=htons(4444), '
            'sin_addr=inet_addr("127.0.0.1")}, 16) = 0')

# tag -> (positive lines, negative lines); the last line of each is the call.
CASES = {
    "persist_write": (
        ['openat(AT_FDCWD, "/etc/cron.d/x", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 3'],
        ['openat(AT_FDCWD, "/etc/cron.d/backdoor", O_RDONLY) = 3']),
    "cred_read": (
        ['openat(AT_FDCWD, "/etc/shadow", O_RDONLY|O_CLOEXEC) = 3'],
        ['openat(AT_FDCWD, "/root/.ssh/id_ed25519.pub", O_RDONLY) = 3']),
    "sysbin_write": (
        ['openat(AT_FDCWD, "/usr/bin/ls", O_WRONLY|O_TRUNC) = 3'],
        ['openat(AT_FDCWD, "/usr/bin/ls", O_RDONLY|O_CLOEXEC) = 3']),
    "proc_mem_access": (
        ['openat(AT_FDCWD, "/proc/1/mem", O_RDWR) = 3'],
        [f'openat(AT_FDCWD, "/proc/{PID}/mem", O_RDONLY) = 3']),
    "proc_info_read": (
        ['openat(AT_FDCWD, "/proc/1/environ", O_RDONLY) = 3'],
        ['openat(AT_FDCWD, "/proc/self/environ", O_RDONLY) = 3']),
    "input_device": (
        ['openat(AT_FDCWD, "/dev/input/event0", O_RDONLY) = 3'],
        ['openat(AT_FDCWD, "/dev/null", O_RDONLY) = 3']),
    "mem_wx": (
        ["mmap(NULL, 4096, PROT_READ|PROT_WRITE|PROT_EXEC, MAP_SHARED|MAP_ANONYMOUS, "
         "-1, 0) = 0x7f39e25d6000"],
        ["mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) "
         "= 0x7f57c966b000"]),
    "uid_zero": (
        ["setresuid(-1, 0, -1) = 0"], ["setresuid(1000, 1000, 1000) = 0"]),
    "setuid_bit": (
        ['chmod("/tmp/x", 04755) = 0'], ['chmod("/tmp/x", 0755) = 0']),
    "ptrace_attach": (
        ["ptrace(PTRACE_ATTACH, 1234) = 0"], ["ptrace(PTRACE_TRACEME) = 0"]),
    "ptrace_write": (
        ["ptrace(PTRACE_POKETEXT, 1234, 0x401000, 0x9090909090909090) = 0"],
        ["ptrace(PTRACE_PEEKTEXT, 1234, 0x401000, [0x1]) = 0"]),
    "vm_write": (
        ["process_vm_writev(1234, [{iov_base=0x7ffd, iov_len=8}], 1, "
         "[{iov_base=0x401000, iov_len=8}], 1, 0) = 8"],
        ["process_vm_readv(1234, [{iov_base=0x7ffd, iov_len=8}], 1, "
         "[{iov_base=0x401000, iov_len=8}], 1, 0) = 8"]),
    "module_load": (
        ['finit_module(3, "", 0) = 0'], ['uname({sysname="Linux", ...}) = 0']),
    "exec_shell": (
        ['execve("/bin/sh", ["sh", "-i"], 0x7ffd /* 3 vars */) = 0'],
        ['execve("/usr/bin/ls", ["ls"], 0x7ffd /* 3 vars */) = 0']),
    "exec_interpreter": (
        ['execve("/usr/bin/python3", ["python3", "-c", "x"], 0x7ffd /* 3 vars */) = 0'],
        ['execve("/usr/bin/cat", ["cat"], 0x7ffd /* 3 vars */) = 0']),
    "exec_net_tool": (
        ['execve("/usr/bin/nc", ["nc", "-e", "/bin/sh"], 0x7ffd /* 3 vars */) = 0'],
        ['execve("/usr/bin/ncdu", ["ncdu"], 0x7ffd /* 3 vars */) = 0']),
    "socket_remote": (
        [SOCKET, 'connect(5, {sa_family=AF_INET, sin_port=htons(443), '
                 'sin_addr=inet_addr("93.184.216.34")}, 16) = 0'],
        [SOCKET, LOOPBACK]),
    "socket_loopback": (
        [SOCKET, LOOPBACK],
        ['connect(5, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) '
         '= -1 ENOENT (No such file or directory)']),
    "socket_listen": (
        ["listen(3, 128) = 0"], ["getsockname(3, {sa_family=AF_INET}, [16]) = 0"]),
    "stdio_socket": (
        [SOCKET, LOOPBACK, "dup2(5, 1) = 1"],
        ['openat(AT_FDCWD, "/tmp/out", O_WRONLY|O_CREAT, 0644) = 5', "dup2(5, 1) = 1"]),
    "time_set": (
        ['utimensat(AT_FDCWD, "/bin/ls", [{tv_sec=1262304000, tv_nsec=0}, '
         '{tv_sec=1262304000, tv_nsec=0}], 0) = 0'],
        ['utimensat(AT_FDCWD, "/tmp/f", NULL, 0) = 0']),
    "log_delete": (
        ['unlinkat(AT_FDCWD, "/var/log/auth.log", 0) = 0'],
        ['openat(AT_FDCWD, "/var/log/auth.log", O_RDONLY) = 3']),
    "denied": (
        ['openat(AT_FDCWD, "/root/x", O_RDONLY) = -1 EACCES (Permission denied)'],
        ['openat(AT_FDCWD, "/no", O_RDONLY) = -1 ENOENT (No such file or directory)']),
    "sysconf_write": (
        ['openat(AT_FDCWD, "/etc/resolv.conf", O_WRONLY|O_TRUNC) = 3'],
        ['openat(AT_FDCWD, "/etc/resolv.conf", O_RDONLY|O_CLOEXEC) = 3']),
    "hidden_write": (
        ['openat(AT_FDCWD, "/tmp/.x/payload", O_WRONLY|O_CREAT, 0700) = 3'],
        ['openat(AT_FDCWD, "/tmp/report.txt", O_WRONLY|O_CREAT, 0644) = 3']),
    "tmp_exec": (
        ['execve("/tmp/.x/payload", ["payload"], 0x7ffd /* 3 vars */) = 0'],
        ['execve("/usr/bin/true", ["true"], 0x7ffd /* 3 vars */) = 0']),
    "memfd": (
        ['memfd_create("payload", MFD_CLOEXEC) = 3'],
        ["eventfd2(0, EFD_CLOEXEC) = 3"]),
    "recon_read": (
        ['openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3'],
        ['openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3']),
    "signal_other": (
        ["kill(1, SIGKILL) = 0"], [f"kill({PID}, SIGTERM) = 0"]),
    "namespace_mount": (
        ["unshare(CLONE_NEWUSER|CLONE_NEWNS) = 0"],
        ["clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|"
         "SIGCHLD, child_tidptr=0x7f9a) = 4243"]),
    "perm_change": (
        ['chmod("/etc/passwd", 0666) = 0'], ['chmod("/home/u/script.sh", 0755) = 0']),
    "error_other": (
        ['openat(AT_FDCWD, "/nope", O_RDONLY) = -1 ENOENT (No such file or directory)'],
        ["wait4(-1, 0x7ffc, 0, NULL) = ? ERESTARTSYS (To be restarted if SA_RESTART "
         "is set)"]),
}


def test_every_tag_has_a_case_and_a_rule():
    assert set(CASES) == set(TAG_NAMES)
    assert {rule.tag for rule in TAG_RULES} == set(TAG_NAMES)
    assert NUM_TAGS == 32 and TAG_NAMES[0] == "persist_write"
    assert TAG_NAMES[-1] == "error_other"


@pytest.mark.parametrize("tag", TAG_NAMES)
def test_rule_positive_and_negative(tag):
    positive, negative = CASES[tag]
    assert tag in last_tags(*positive)
    assert tag not in last_tags(*negative)


def test_rules_follow_descriptors_relative_paths_and_annotations():
    # read through a descriptor opened on a credential file
    assert "cred_read" in last_tags(
        'openat(AT_FDCWD, "/etc/shadow", O_RDONLY) = 3', 'read(3, "root:", 4) = 4')
    assert "cred_read" not in last_tags(
        'openat(AT_FDCWD, "/etc/shadow", O_RDONLY) = 3', "close(3) = 0",
        'openat(AT_FDCWD, "/etc/hosts", O_RDONLY) = 3', 'read(3, "127", 3) = 3')
    # relative paths after chdir, and against a directory descriptor
    assert "cred_read" in last_tags('chdir("/etc") = 0',
                                    'openat(AT_FDCWD, "shadow", O_RDONLY) = 3')
    assert "persist_write" in last_tags(
        'openat(AT_FDCWD, "/root/.ssh", O_RDONLY|O_DIRECTORY) = 4',
        'openat(4, "authorized_keys", O_WRONLY|O_APPEND) = 5')
    # -y/-yy annotations alone tell what a descriptor is
    assert "stdio_socket" in last_tags(
        "dup2(4<TCP:[127.0.0.1:37422->127.0.0.1:56317]>, 1</dev/pts/0>) = 1")
    assert "cred_read" in last_tags('read(6</etc/shadow>, "root:*:2", 8) = 8')
    assert "socket_remote" in last_tags(
        'sendto(7<UDP:[10.0.0.2:5353->8.8.8.8:53]>, "\\1", 1, 0, NULL, 0) = 1')
    # a socket dup'ed to a low number by fcntl, and dup onto a freed stdin
    assert "stdio_socket" in last_tags(SOCKET, "close(0) = 0", "dup(5) = 0")
    assert "stdio_socket" not in last_tags(SOCKET, "fcntl(5, F_GETFL) = 0x2 "
                                                   "(flags O_RDWR)")
    # -yy names a process's own /proc/self files by its pid: not another's
    own = f"/proc/{PID}/maps"
    for route in ("read(3, \"x\", 1) = 1", f'read(3<{own}>, "x", 1) = 1'):
        assert "proc_info_read" not in last_tags(
            f'openat(AT_FDCWD, "/proc/self/maps", O_RDONLY) = 3<{own}>', route)
    assert "proc_info_read" in last_tags(
        'openat(AT_FDCWD, "/proc/1/environ", O_RDONLY) = 3</proc/1/environ>',
        'read(3, "x", 1) = 1')
    # execve drops close-on-exec descriptors
    assert "stdio_socket" not in last_tags(
        SOCKET, 'execve("/bin/true", ["true"], 0x7ffd /* 1 var */) = 0',
        "dup2(5, 1) = 1")


def test_derive_tags_on_a_call_alone():
    assert tag_names(derive_tags("openat", 'AT_FDCWD, "/etc/shadow", O_RDONLY',
                                 3)) == ["cred_read"]
    assert derive_tags("read", "3, 0x1, 1", 1) == 0
    assert tag_names(derive_tags("kill", "1, SIGKILL", 0, pid=7)) == ["signal_other"]


def test_table_is_plain_json_data():
    data = json.loads(json.dumps(rules_as_json()))
    assert data["tags"] == list(TAG_NAMES)
    assert len(data["rules"]) == len(TAG_RULES)
    assert {rule["kind"] for rule in data["rules"]} == {
        "path", "flag", "value", "address", "dup", "call", "errno"}
    assert all(rule["why"] for rule in data["rules"])
    assert data["path_args"]["openat"] == [[["open"], 0, 1]]
    assert tag_mask(["mem_wx", "denied"]) == (1 << 6) | (1 << 22)


# -- real programs under strace --------------------------------------------------

PROGRAM = textwrap.dedent("""
    import ctypes, mmap, os, shutil, socket, sys, tempfile
    work = tempfile.mkdtemp()
    server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    saved = os.dup(1)
    os.dup2(client.fileno(), 1)          # stdout onto a loopback socket
    os.dup2(saved, 1)
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    if os.path.exists("/etc/shadow"):
        open("/etc/shadow", "rb").read(1)
    hidden = os.path.join(work, ".cache")
    with open(hidden, "w") as handle:
        handle.write("x")
    os.chmod(hidden, 0o4755)
    os.utime(hidden, (1262304000, 1262304000))
    fd = os.memfd_create("payload")
    copy = os.path.join(work, "true")
    shutil.copy("/bin/true", copy)
    os.spawnv(os.P_WAIT, copy, [copy])
    os.kill(os.getppid(), 0)
    shutil.rmtree(work)
""")


@needs_strace
@pytest.mark.parametrize("options", [(), ("-yy",)])
def test_real_program_gets_its_tags(tmp_path, options):
    log = tmp_path / "trace.log"
    env = {**os.environ, "TMPDIR": "/tmp"}
    subprocess.run(["strace", "-f", *options, "-o", str(log), sys.executable, "-c",
                    PROGRAM], check=True, timeout=60, env=env,
                   stdout=subprocess.DEVNULL)
    parser = StraceParser()
    calls = list(iter_strace_calls(log.read_text().splitlines(), parser))
    tags_by_call: dict[str, set[str]] = {}
    for call in calls:
        tags_by_call.setdefault(call.raw_name, set()).update(tag_names(call.tags))
    assert "stdio_socket" in tags_by_call["dup2"]
    assert "socket_loopback" in tags_by_call["connect"]
    assert "socket_listen" in tags_by_call["listen"]
    assert "mem_wx" in tags_by_call["mmap"]
    assert "setuid_bit" in tags_by_call["chmod"]
    assert "perm_change" not in tags_by_call["chmod"]  # under /tmp
    assert "time_set" in tags_by_call["utimensat"]
    assert "hidden_write" in tags_by_call["openat"]
    assert "memfd" in tags_by_call["memfd_create"]
    assert "tmp_exec" in tags_by_call["execve"]
    assert "exec_interpreter" in tags_by_call["execve"]
    assert "signal_other" in tags_by_call["kill"]
    if os.path.exists("/etc/shadow") and os.geteuid() == 0:
        assert "cred_read" in tags_by_call["openat"] | tags_by_call["read"]
    # Benign calls stay untagged: the loader's reads of libraries, say.
    untagged = [call for call in calls if call.raw_name == "read" and not call.tags]
    assert untagged
