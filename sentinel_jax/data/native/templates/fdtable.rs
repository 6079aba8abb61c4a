//! Per-process descriptor tables, kept up to date from strace calls.
//!
//! The Python `sentinel_jax.data.fdtable`, rule for rule: what each
//! descriptor is (file path, socket family and peer scope, pipe), the working
//! directory, the thread group. Threads and `CLONE_FILES` children share one
//! table (`Rc<RefCell<..>>`), as the kernel does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::straceargs::{address_scope, annotation_path, annotation_peer, decode_string,
                        parse_fd, parse_sockaddr, split_args, strip};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    File,
    Socket,
    Pipe,
    Other,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scope {
    Loopback,
    Remote,
}

#[derive(Clone, PartialEq, Debug)]
pub struct FdInfo {
    pub kind: Kind,
    pub path: Option<String>,
    pub family: Option<String>,
    pub scope: Option<Scope>,
    pub cloexec: bool,
}

impl FdInfo {
    pub fn new(kind: Kind) -> Self {
        FdInfo { kind, path: None, family: None, scope: None, cloexec: false }
    }

    fn with_cloexec(&self, cloexec: bool) -> Self {
        FdInfo { cloexec, ..self.clone() }
    }
}

pub type FdTable = Rc<RefCell<HashMap<i64, FdInfo>>>;

/// A call printed `<unfinished ...>` and not yet resumed.
pub struct Pending {
    pub name: String,
    pub prefix: String,
    /// The timestamp of the first half (NaN when none was printed).
    pub time: f64,
}

/// One traced process. `serial` identifies the process object (a pid may be
/// reused); `order` is its place in the parser's process table.
pub struct ProcessState {
    pub pid: i64,
    pub tgid: i64,
    pub fds: FdTable,
    pub cwd: Option<String>,
    pub pending: Option<Pending>,
    pub adopted: bool,
    pub serial: u64,
    pub order: u64,
}

impl ProcessState {
    pub fn new(pid: i64) -> Self {
        ProcessState { pid, tgid: pid, fds: Rc::new(RefCell::new(HashMap::new())),
                       cwd: None, pending: None, adopted: false, serial: 0, order: 0 }
    }

    pub fn is_self(&self, pid: i64) -> bool {
        pid == self.pid || pid == self.tgid
    }

    pub fn get(&self, fd: i64) -> Option<FdInfo> {
        self.fds.borrow().get(&fd).cloned()
    }

    fn set(&self, fd: i64, info: FdInfo) {
        self.fds.borrow_mut().insert(fd, info);
    }

    /// An absolute, normalised path for `path` seen relative to `dirfd` (the
    /// working directory when `None`); `./path` when the base is unknown.
    pub fn resolve(&self, path: &str, dirfd: Option<i64>) -> String {
        let mut path = path.to_string();
        if !path.starts_with('/') {
            let base = match dirfd {
                None => self.cwd.clone(),
                Some(fd) => self.get(fd).filter(|i| i.kind == Kind::File).and_then(|i| i.path),
            };
            match base {
                Some(base) if base.starts_with('/') => path = format!("{}/{}", base, path),
                _ => return format!("./{}", path),
            }
        }
        if path.contains("/.") || path.contains("//") {
            path = normpath(&path);
            if path.starts_with("//") {
                path.remove(0);
            }
        }
        path
    }

    /// Records a `-y` annotation for `fd`; returns the fd's info.
    pub fn learn(&self, fd: Option<i64>, annotation: Option<&str>) -> Option<FdInfo> {
        let fd = fd?;
        let info = self.get(fd);
        let Some(annotation) = annotation else { return info };
        let mut learned = info_from_annotation(annotation);
        let differs = match &info {
            None => true,
            Some(old) => (&learned.path, learned.kind) != (&old.path, old.kind)
                || (learned.scope.is_some() && learned.scope != old.scope),
        };
        if !differs {
            return info;
        }
        if let Some(old) = info {
            learned = FdInfo { family: learned.family.or(old.family),
                               scope: learned.scope.or(old.scope),
                               cloexec: old.cloexec, ..learned };
        }
        self.set(fd, learned.clone());
        Some(learned)
    }

    /// The state of a new process or thread made by `clone(flags)`.
    pub fn child(&self, pid: i64, flags: &str) -> ProcessState {
        let fds = if flags.contains("CLONE_FILES") { Rc::clone(&self.fds) }
                  else { Rc::new(RefCell::new(self.fds.borrow().clone())) };
        let tgid = if flags.contains("CLONE_THREAD") { self.tgid } else { pid };
        ProcessState { pid, tgid, fds, cwd: self.cwd.clone(), pending: None,
                       adopted: false, serial: 0, order: 0 }
    }
}

/// `posixpath.normpath` for an absolute path.
fn normpath(path: &str) -> String {
    let initial = if path.starts_with("//") && !path.starts_with("///") { 2 }
                  else if path.starts_with('/') { 1 } else { 0 };
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        if part.is_empty() || part == "." {
            continue;
        }
        if part != ".." || (initial == 0 && parts.is_empty())
            || parts.last() == Some(&"..") {
            parts.push(part);
        } else if !parts.is_empty() {
            parts.pop();
        }
    }
    let joined = "/".repeat(initial) + &parts.join("/");
    if joined.is_empty() { ".".to_string() } else { joined }
}

/// An `FdInfo` from a `-y`/`-yy` annotation text.
pub fn info_from_annotation(annotation: &str) -> FdInfo {
    if annotation.starts_with('/') {
        return FdInfo { path: Some(annotation_path(annotation).to_string()),
                        ..FdInfo::new(Kind::File) };
    }
    if annotation.starts_with("pipe:") {
        return FdInfo::new(Kind::Pipe);
    }
    match annotation_peer(annotation) {
        Some((protocol, scope)) => FdInfo {
            family: (protocol != "socket").then(|| protocol.to_string()),
            scope, ..FdInfo::new(Kind::Socket) },
        None => FdInfo::new(Kind::Other),
    }
}

const OTHER_CREATORS: &[&str] = &[
    "eventfd", "eventfd2", "epoll_create", "epoll_create1", "signalfd", "signalfd4",
    "timerfd_create", "inotify_init", "inotify_init1", "fanotify_init", "userfaultfd",
    "perf_event_open", "bpf", "pidfd_open", "open_tree", "fsopen", "fsmount"];

/// Raw call names `apply_call` acts on (Python `EFFECT_CALLS`).
pub fn is_effect_call(name: &str) -> bool {
    matches!(name, "open" | "openat" | "openat2" | "creat" | "dup" | "dup2" | "dup3"
             | "close" | "fcntl" | "fcntl64" | "socket" | "connect" | "accept"
             | "accept4" | "pipe" | "pipe2" | "socketpair" | "memfd_create" | "chdir"
             | "fchdir" | "execve" | "execveat" | "close_range")
        || OTHER_CREATORS.contains(&name)
}

fn open_info(state: &mut ProcessState, args: &[&str], dirfd_arg: Option<usize>,
             path_arg: usize, flags_arg: Option<usize>) -> Option<FdInfo> {
    let path = decode_string(args.get(path_arg)?)?;
    let mut dirfd = None;
    if let Some(index) = dirfd_arg {
        let (fd, annotation) = parse_fd(args[index]);
        if fd.is_none() {
            if let Some(a) = annotation.filter(|a| a.starts_with('/')) {
                state.cwd = Some(annotation_path(a).to_string());
            }
        }
        state.learn(fd, annotation);
        dirfd = fd;
    }
    let flags = flags_arg.and_then(|i| args.get(i)).copied().unwrap_or("");
    Some(FdInfo { path: Some(state.resolve(&path, dirfd)),
                  cloexec: flags.contains("O_CLOEXEC"), ..FdInfo::new(Kind::File) })
}

/// Updates `state` with the effect of one completed call (`apply_call`).
pub fn apply_call(state: &mut ProcessState, name: &str, args: Option<&[&str]>,
                  args_text: &str, result: Option<i64>, result_annotation: Option<&str>) {
    if result.map_or(false, |r| r < 0) {
        return;
    }
    if name == "close" {
        if let Some(fd) = parse_fd(args_text).0 {
            state.fds.borrow_mut().remove(&fd);
        }
        return;
    }
    let owned;
    let args: &[&str] = match args {
        Some(args) => args,
        None => { owned = split_args(args_text); &owned }
    };
    let new_fd = result.filter(|&r| r >= 0);
    let opener = match name {
        "open" => Some((None, 0, Some(1))),
        "openat" | "openat2" => Some((Some(0), 1, Some(2))),
        "creat" => Some((None, 0, None)),
        _ => None,
    };
    let dup = match name {
        "dup" => Some((0usize, -1i64)),
        "dup2" | "dup3" => Some((0, 1)),
        _ => None,
    };
    if let Some((dirfd_arg, path_arg, flags_arg)) = opener {
        if let Some(fd) = new_fd {
            let info = open_info(state, args, dirfd_arg, path_arg, flags_arg)
                .unwrap_or_else(|| FdInfo::new(Kind::File));
            state.set(fd, info);
            state.learn(Some(fd), result_annotation);
        }
    } else if let Some((source_arg, target_arg)) = dup {
        if args.len() as i64 > (source_arg as i64).max(target_arg) {
            let (source, annotation) = parse_fd(args[source_arg]);
            let info = state.learn(source, annotation);
            let target = if target_arg < 0 { new_fd } else { parse_fd(args[target_arg as usize]).0 };
            if let Some(target) = target {
                let cloexec = name == "dup3" && args_text.contains("O_CLOEXEC");
                match info {
                    None => { state.fds.borrow_mut().remove(&target); }
                    Some(info) => state.set(target, info.with_cloexec(cloexec)),
                }
            }
        }
    } else if name == "fcntl" || name == "fcntl64" {
        apply_fcntl(state, args, new_fd);
    } else if name == "socket" {
        if let (Some(fd), Some(family)) = (new_fd, args.first()) {
            state.set(fd, FdInfo { family: Some(family.to_string()),
                                   cloexec: args_text.contains("SOCK_CLOEXEC"),
                                   ..FdInfo::new(Kind::Socket) });
        }
    } else if matches!(name, "connect" | "accept" | "accept4") {
        apply_socket_peer(state, name, args, new_fd);
    } else if matches!(name, "pipe" | "pipe2" | "socketpair") {
        let kind = if name.starts_with("pipe") { Kind::Pipe } else { Kind::Socket };
        // TODO: Python indexes args[0] of pipe() unchecked (IndexError on
        // "pipe()"); here an empty argument list pairs nothing.
        let pair = if kind == Kind::Pipe { args.first().copied().unwrap_or("") }
                   else { args.get(3).copied().unwrap_or("") };
        let cloexec = args_text.contains("CLOEXEC");
        for item in split_args(pair.trim_matches(|c| c == '[' || c == ']')) {
            if let Some(fd) = parse_fd(item).0 {
                state.set(fd, FdInfo { cloexec, ..FdInfo::new(kind) });
            }
        }
    } else if name == "memfd_create" {
        if let (Some(fd), Some(first)) = (new_fd, args.first()) {
            let label = decode_string(first).unwrap_or_default();
            state.set(fd, FdInfo { path: Some(format!("/memfd:{}", label)),
                                   cloexec: args_text.contains("MFD_CLOEXEC"),
                                   ..FdInfo::new(Kind::File) });
        }
    } else if name == "chdir" || name == "fchdir" {
        apply_chdir(state, name, args);
    } else if name == "execve" || name == "execveat" {
        state.fds.borrow_mut().retain(|_, info| !info.cloexec);
        state.tgid = state.pid;
    } else if name == "close_range" {
        if args.len() > 1 {
            if let (Some(first), Some(last)) = (parse_fd(args[0]).0, parse_fd(args[1]).0) {
                let cloexec_only = args_text.contains("CLOSE_RANGE_CLOEXEC");
                let last = last & 0x7FFF_FFFF;
                let mut fds = state.fds.borrow_mut();
                if cloexec_only {
                    for (_, info) in fds.iter_mut().filter(|(fd, _)| first <= **fd && **fd <= last) {
                        info.cloexec = true;
                    }
                } else {
                    fds.retain(|fd, _| !(first <= *fd && *fd <= last));
                }
            }
        }
    } else if OTHER_CREATORS.contains(&name) {
        if let Some(fd) = new_fd {
            state.set(fd, FdInfo { cloexec: args_text.contains("CLOEXEC"),
                                   ..FdInfo::new(Kind::Other) });
        }
    }
}

fn apply_fcntl(state: &mut ProcessState, args: &[&str], new_fd: Option<i64>) {
    if args.len() < 2 {
        return;
    }
    let (fd, annotation) = parse_fd(args[0]);
    let info = state.learn(fd, annotation);
    let command = args[1];
    match (info, fd) {
        (Some(info), _) if command.starts_with("F_DUPFD") && new_fd.is_some() => {
            state.set(new_fd.unwrap_or(0), info.with_cloexec(command == "F_DUPFD_CLOEXEC"));
        }
        (Some(info), Some(fd)) if command == "F_SETFD" && args.len() > 2 => {
            let cloexec = args[2].contains("FD_CLOEXEC") || strip(args[2]) == "1";
            state.set(fd, info.with_cloexec(cloexec));
        }
        _ => {}
    }
}

fn apply_socket_peer(state: &mut ProcessState, name: &str, args: &[&str], new_fd: Option<i64>) {
    if args.len() < 2 {
        return;
    }
    let (fd, annotation) = parse_fd(args[0]);
    let info = state.learn(fd, annotation);
    let address = parse_sockaddr(args[1]);
    let scope = address.and_then(|(_, a)| a).filter(|a| !a.is_empty()).and_then(address_scope);
    let family = match address {
        Some((family, _)) => Some(family.to_string()),
        None => info.as_ref().and_then(|i| i.family.clone()),
    };
    let socket = FdInfo { family, scope, ..FdInfo::new(Kind::Socket) };
    if name == "connect" {
        if let Some(fd) = fd {
            let cloexec = info.map_or(false, |i| i.cloexec);
            state.set(fd, socket.with_cloexec(cloexec));
        }
    } else if let Some(fd) = new_fd {
        let cloexec = name == "accept4" && args[args.len() - 1].contains("SOCK_CLOEXEC");
        state.set(fd, socket.with_cloexec(cloexec));
    }
}

fn apply_chdir(state: &mut ProcessState, name: &str, args: &[&str]) {
    let Some(first) = args.first() else { return };
    if name == "chdir" {
        if let Some(path) = decode_string(first) {
            let resolved = state.resolve(&path, None);
            state.cwd = resolved.starts_with('/').then_some(resolved);
        }
    } else {
        let (fd, annotation) = parse_fd(first);
        let info = state.learn(fd, annotation);
        state.cwd = info.filter(|i| i.kind == Kind::File).and_then(|i| i.path);
    }
}
