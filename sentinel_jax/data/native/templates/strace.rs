//! Streaming strace text reader, per process, with tags.
//!
//! A port of the Python `StraceParser` (`sentinel_jax.data.strace`), step for
//! step, so both read the same calls, pids and tags from the same text: `-f`
//! pid columns and `[pid N]` prefixes, `-t`/`-tt`/`-ttt`/`-r` timestamps,
//! `-n` numbers, `-i` addresses, `-T` durations, `-y`/`-yy` annotations,
//! `<unfinished ...>`/`<... resumed>` pairs, `= ?`, signals and exits. Lines
//! it cannot read are counted and skipped; it never panics on text.

use std::collections::HashMap;

use crate::fdtable::{apply_call, is_effect_call, Pending, ProcessState};
use crate::names::{canonical_name, Vocabulary};
use crate::straceargs::{is_space, rstrip, split_args, strip, strip_start};
use crate::tagger::Tagger;

const UNFINISHED: &str = "<unfinished ...>";
const ANON_PID: i64 = 0;

fn is_clone(name: &str) -> bool {
    matches!(name, "clone" | "clone3" | "fork" | "vfork")
}

/// What the reader hands on, in order.
pub enum Output {
    /// A completed call of process object `serial`: its name channel, its
    /// raw name (an index into `StraceParser::raw_names`), its tags and its
    /// timestamp in seconds (NaN when strace printed none).
    Call { pid: i64, serial: u64, channel: u16, name: u32, tags: u32, time: f64 },
    /// The call before it was a successful `execve` of this program path's
    /// last component (the text after the last `/`, still escaped).
    Exec { pid: i64, serial: u64, program: String },
    /// The call before it was a `clone`/`fork` that returned `child`.
    Spawn { pid: i64, serial: u64, child: i64 },
    /// Process object `serial` exited (or the text ended).
    Finished { pid: i64, serial: u64 },
}

#[derive(Default)]
pub struct Stats {
    pub lines: u64,
    pub calls: u64,
    pub signals: u64,
    pub exits: u64,
    pub skipped: u64,
}

/// The line prefix: pid, syscall number (`-n`), and where it ends.
struct Head {
    pid: Option<i64>,
    /// Seconds, NaN when no timestamp was printed.
    time: f64,
    end: usize,
}

/// Seconds from a `-t`/`-tt` (`17:31:03.5`) or `-ttt`/`-r` timestamp, as
/// the Python `parse_timestamp` computes them.
fn parse_timestamp(text: &str) -> f64 {
    let mut seconds = 0.0f64;
    for part in text.split(':') {
        seconds = seconds * 60.0 + part.parse::<f64>().unwrap_or(f64::NAN);
    }
    seconds
}

/// `\s*"((?:[^"\\]|\\.)*)"` at the start of `args`: the quoted text.
fn first_quoted(args: &str) -> Option<&str> {
    let bytes = args.as_bytes();
    let open = spaces(bytes, 0);
    if bytes.get(open) != Some(&b'"') {
        return None;
    }
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Some(&args[open + 1..i]),
            b'\\' => {
                // The escaped character, whole (it may be multi-byte).
                let next = args[i + 1..].chars().next()?;
                i += 1 + next.len_utf8();
            }
            _ => i += 1,
        }
    }
    None
}

fn digits(bytes: &[u8], at: usize) -> usize {
    bytes[at.min(bytes.len())..].iter().take_while(|b| b.is_ascii_digit()).count()
}

fn spaces(bytes: &[u8], at: usize) -> usize {
    bytes[at.min(bytes.len())..].iter().take_while(|&&b| is_space(b)).count()
}

/// A decimal integer, clamped to i64 (Python's are unbounded).
fn number(text: &str) -> i64 {
    match text.parse::<i128>() {
        Ok(value) => value.clamp(i64::MIN as i128, i64::MAX as i128) as i64,
        Err(_) if text.starts_with('-') => i64::MIN,
        Err(_) => i64::MAX,
    }
}

/// `(?:\[pid\s+(\d+)\]\s*|(\d+)\s+)?(?:(\d+(?::\d\d)*(?:\.\d+)?)\s+)?
/// (?:\[\s*(\d+)\]\s+)?(?:\[[0-9a-fA-F?]+\]\s+)?` from `start`. Each group is
/// all or nothing; none can give back text that another needs.
fn parse_head(line: &str, start: usize) -> Head {
    let bytes = line.as_bytes();
    let mut head = Head { pid: None, time: f64::NAN, end: start };
    let mut i = start;
    if bytes[i..].starts_with(b"[pid") {
        let gap = spaces(bytes, i + 4);
        let count = digits(bytes, i + 4 + gap);
        let close = i + 4 + gap + count;
        if gap > 0 && count > 0 && bytes.get(close) == Some(&b']') {
            head.pid = Some(number(&line[close - count..close]));
            i = close + 1 + spaces(bytes, close + 1);
        }
    } else {
        let count = digits(bytes, i);
        let gap = spaces(bytes, i + count);
        if count > 0 && gap > 0 {
            head.pid = Some(number(&line[i..i + count]));
            i += count + gap;
        }
    }
    // Timestamp.
    let mut j = i + digits(bytes, i);
    if j > i {
        while bytes.get(j) == Some(&b':') && digits(bytes, j + 1) >= 2 {
            j += 3;
        }
        if bytes.get(j) == Some(&b'.') && digits(bytes, j + 1) > 0 {
            j += 1 + digits(bytes, j + 1);
        }
        let gap = spaces(bytes, j);
        if gap > 0 {
            head.time = parse_timestamp(&line[i..j]);
            i = j + gap;
        }
    }
    // Syscall number.
    if bytes.get(i) == Some(&b'[') {
        let gap = spaces(bytes, i + 1);
        let count = digits(bytes, i + 1 + gap);
        let close = i + 1 + gap + count;
        let after = spaces(bytes, close + 1);
        if count > 0 && bytes.get(close) == Some(&b']') && after > 0 {
            i = close + 1 + after;
        }
    }
    // Instruction pointer.
    if bytes.get(i) == Some(&b'[') {
        let count = bytes[i + 1..].iter()
            .take_while(|&&b| b.is_ascii_hexdigit() || b == b'?').count();
        let close = i + 1 + count;
        let after = spaces(bytes, close + 1);
        if count > 0 && bytes.get(close) == Some(&b']') && after > 0 {
            i = close + 1 + after;
        }
    }
    head.end = i;
    head
}

/// `[A-Za-z_][A-Za-z0-9_]*` at `at`: its end.
fn identifier(bytes: &[u8], at: usize) -> Option<usize> {
    let first = *bytes.get(at)?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    Some(at + 1 + bytes[at + 1..].iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'_').count())
}

/// A call's outcome as the result pattern reads it.
struct Outcome<'a> {
    /// `None` for `?`.
    value: Option<i64>,
    annotation: Option<&'a str>,
    errno: Option<&'a str>,
}

fn only_spaces(bytes: &[u8], at: usize) -> bool {
    at + spaces(bytes, at) == bytes.len()
}

/// `(?:\s+<(\d+(?:\.\d+)?)>)?\s*$` from `at`.
fn after_paren(bytes: &[u8], at: usize) -> bool {
    let gap = spaces(bytes, at);
    let open = at + gap;
    if gap > 0 && bytes.get(open) == Some(&b'<') {
        let mut j = open + 1;
        let whole = digits(bytes, j);
        if whole > 0 {
            j += whole;
            if bytes.get(j) == Some(&b'.') && digits(bytes, j + 1) > 0 {
                j += 1 + digits(bytes, j + 1);
            }
            if bytes.get(j) == Some(&b'>') && only_spaces(bytes, j + 1) {
                return true;
            }
        }
    }
    only_spaces(bytes, at)
}

/// `(?:\s*\(.*\))?` then the rest, from `at`: the greedy `.*` tries the last
/// `)` first.
fn after_errno(bytes: &[u8], at: usize) -> bool {
    let open = at + spaces(bytes, at);
    if bytes.get(open) == Some(&b'(') {
        for close in (open + 1..bytes.len()).rev() {
            if bytes[close] == b')' && after_paren(bytes, close + 1) {
                return true;
            }
        }
    }
    after_paren(bytes, at)
}

/// `(?:\s+(E[A-Z0-9_]+))?` then the rest: the errno's span if taken.
fn after_annotation(bytes: &[u8], at: usize) -> Option<Option<(usize, usize)>> {
    let gap = spaces(bytes, at);
    let start = at + gap;
    if gap > 0 && bytes.get(start) == Some(&b'E') {
        let length = bytes[start + 1..].iter()
            .take_while(|&&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            .count();
        if length > 0 && after_errno(bytes, start + 1 + length) {
            return Some(Some((start, start + 1 + length)));
        }
    }
    after_errno(bytes, at).then_some(None)
}

/// The result pattern, anchored at `at` and at the end of the line:
/// `(-?\d+|0x[0-9a-fA-F]+|\?)(?:<(.*?)>)?(?:\s+(E[A-Z0-9_]+))?(?:\s*\(.*\))?
/// (?:\s+<(\d+(?:\.\d+)?)>)?\s*$`.
fn match_outcome(line: &str, at: usize) -> Option<Outcome<'_>> {
    let bytes = line.as_bytes();
    let rest = &bytes[at.min(bytes.len())..];
    let (value, end) = if rest.first() == Some(&b'?') {
        (None, at + 1)
    } else if rest.starts_with(b"0x") && rest.get(2).map_or(false, u8::is_ascii_hexdigit) {
        let count = rest[2..].iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let text = &line[at + 2..at + 2 + count];
        (Some(u64::from_str_radix(text, 16).map_or(i64::MAX, |v| v.min(i64::MAX as u64) as i64)),
         at + 2 + count)
    } else {
        let sign = usize::from(rest.first() == Some(&b'-'));
        let count = digits(rest, sign);
        if count == 0 {
            return None;
        }
        (Some(number(&line[at..at + sign + count])), at + sign + count)
    };
    if bytes.get(end) == Some(&b'<') {
        // The lazy annotation: the shortest one the rest of the line fits.
        for close in end + 1..bytes.len() {
            if bytes[close] == b'>' {
                if let Some(errno) = after_annotation(bytes, close + 1) {
                    return Some(Outcome { value, annotation: Some(&line[end + 1..close]),
                                          errno: errno.map(|(s, e)| &line[s..e]) });
                }
            }
        }
    }
    let errno = after_annotation(bytes, end)?;
    Some(Outcome { value, annotation: None, errno: errno.map(|(s, e)| &line[s..e]) })
}

/// The one-match fast path: prefix, name, arguments up to the last `)` that
/// `\s*=\s` and a result follow, to the end of the line.
struct Fast<'a> {
    pid: Option<i64>,
    time: f64,
    name: &'a str,
    args: &'a str,
    outcome: Outcome<'a>,
}

fn match_fast(line: &str) -> Option<Fast<'_>> {
    let bytes = line.as_bytes();
    let head = parse_head(line, 0);
    let name_end = identifier(bytes, head.end)?;
    if bytes.get(name_end) != Some(&b'(') {
        return None;
    }
    for close in (name_end + 1..bytes.len()).rev() {
        if bytes[close] != b')' {
            continue;
        }
        let equals = close + 1 + spaces(bytes, close + 1);
        if bytes.get(equals) != Some(&b'=') || !bytes.get(equals + 1).map_or(false, |&b| is_space(b)) {
            continue;
        }
        if let Some(outcome) = match_outcome(line, equals + 2) {
            return Some(Fast { pid: head.pid, time: head.time, name: &line[head.end..name_end],
                               args: &line[name_end + 1..close], outcome });
        }
    }
    None
}

pub struct StraceParser {
    pub tagger: Tagger,
    vocabulary: Vocabulary,
    /// Raw name -> its index in `raw_names`.
    names: HashMap<String, u32>,
    /// The raw names met so far, in the order first met.
    pub raw_names: Vec<String>,
    /// The name channel of each raw name.
    channel_of: Vec<u16>,
    processes: HashMap<i64, ProcessState>,
    anon_pid: Option<i64>,
    /// Pids with a clone in progress, oldest first (a Python dict's order).
    cloning: Vec<i64>,
    carry: String,
    next_serial: u64,
    next_order: u64,
    pub stats: Stats,
    pub out: Vec<Output>,
}

impl StraceParser {
    pub fn new(vocabulary: Vocabulary) -> Self {
        StraceParser { tagger: Tagger::new(), vocabulary, names: HashMap::new(),
                       raw_names: Vec::new(), channel_of: Vec::new(),
                       processes: HashMap::new(), anon_pid: None, cloning: Vec::new(),
                       carry: String::new(), next_serial: 1, next_order: 0,
                       stats: Stats::default(), out: Vec::new() }
    }

    fn default_pid(&self) -> i64 {
        self.anon_pid.unwrap_or(ANON_PID)
    }

    /// Puts `state` in the process table under its pid, last in order.
    fn insert(&mut self, mut state: ProcessState, fresh: bool) {
        if fresh {
            state.serial = self.next_serial;
            self.next_serial += 1;
        }
        state.order = self.next_order;
        self.next_order += 1;
        self.processes.insert(state.pid, state);
    }

    fn mark_cloning(&mut self, pid: i64) {
        if !self.cloning.contains(&pid) {
            self.cloning.push(pid);
        }
    }

    fn unmark_cloning(&mut self, pid: i64) {
        self.cloning.retain(|&p| p != pid);
    }

    /// Makes sure `pid` has a state, placing a pid seen for the first time
    /// (Python `_state`); the state is then under `pid`.
    fn place(&mut self, pid: i64, rest: &str) {
        if self.processes.contains_key(&pid) {
            return;
        }
        if self.anon_pid.is_none() && pid != ANON_PID {
            if let Some(anon) = self.processes.get(&ANON_PID) {
                let resumes_anon = anon.pending.as_ref().map_or(false, |p| {
                    rest.strip_prefix("<... ").and_then(|r| r.strip_prefix(p.name.as_str()))
                        .map_or(false, |r| r.starts_with(" resumed>"))
                });
                if resumes_anon || self.cloning.is_empty() {
                    // Lines without a pid belonged to this process all along.
                    let mut anon = self.processes.remove(&ANON_PID).expect("anon state");
                    self.unmark_cloning(ANON_PID);
                    anon.pid = pid;
                    anon.tgid = pid;
                    self.anon_pid = Some(pid);
                    let clones = anon.pending.as_ref().map_or(false, |p| is_clone(&p.name));
                    self.insert(anon, false);
                    if clones {
                        self.mark_cloning(pid);
                    }
                    return;
                }
            }
        }
        if let Some(parent_pid) = self.cloning.pop() {
            // Most likely the child of the latest clone still in progress.
            if let Some(parent) = self.processes.get(&parent_pid) {
                let flags = parent.pending.as_ref().map_or("", |p| p.prefix.as_str());
                let mut state = parent.child(pid, flags);
                state.adopted = true;
                self.insert(state, true);
                return;
            }
        }
        self.insert(ProcessState::new(pid), true);
    }

    fn spawned(&mut self, parent_pid: i64, child_pid: i64, flags: &str) {
        let inherited = self.processes[&parent_pid].child(child_pid, flags);
        match self.processes.get_mut(&child_pid) {
            None => {
                let mut child = inherited;
                child.adopted = true;
                self.insert(child, true);
            }
            Some(child) => {
                if !child.adopted {
                    // The child spoke before its parent's clone returned.
                    if !std::rc::Rc::ptr_eq(&inherited.fds, &child.fds) {
                        let own = child.fds.borrow().clone();
                        inherited.fds.borrow_mut().extend(own);
                    }
                    child.fds = inherited.fds;
                    child.tgid = inherited.tgid;
                    if child.cwd.as_deref().map_or(true, str::is_empty) {
                        child.cwd = inherited.cwd;
                    }
                }
                child.adopted = true;
            }
        }
    }

    fn exit(&mut self, pid: i64) {
        self.stats.exits += 1;
        let Some(_) = self.processes.get(&pid) else { return };
        self.unmark_cloning(pid);
        self.flush(pid);
        if let Some(state) = self.processes.remove(&pid) {
            self.out.push(Output::Finished { pid: state.pid, serial: state.serial });
        }
    }

    fn flush(&mut self, pid: i64) {
        let Some(state) = self.processes.get_mut(&pid) else { return };
        let Some(pending) = state.pending.take() else { return };
        self.complete(pid, &pending.name, &pending.prefix, None, None, None,
                      pending.time);
    }

    /// Reads one line (without its newline).
    pub fn feed(&mut self, line: &str) {
        self.stats.lines += 1;
        let joined;
        let line = if self.carry.is_empty() { line } else {
            joined = std::mem::take(&mut self.carry) + line;
            joined.as_str()
        };
        if let Some(fast) = match_fast(line) {
            let pid = fast.pid.unwrap_or_else(|| self.default_pid());
            self.place(pid, fast.name);
            if self.processes[&pid].pending.is_some() || fast.args.contains(UNFINISHED) {
                return self.slow(line);
            }
            let Outcome { value, annotation, errno } = fast.outcome;
            let errno = errno.filter(|_| value.map_or(true, |v| v < 0));
            return self.complete(pid, fast.name, fast.args, value, errno, annotation,
                                 fast.time);
        }
        self.slow(line)
    }

    /// Every line the fast path does not cover.
    fn slow(&mut self, line: &str) {
        if let Some(message) = line.find("strace: Process ").filter(|&m| m > 0) {
            // strace wrote "Process N attached" into the middle of a call
            // line (terminal output); the call goes on in the next line.
            self.carry = line[..message].to_string();
            self.stats.skipped += 1;
            return;
        }
        let start = spaces(line.as_bytes(), 0);
        let head = parse_head(line, start);
        let rest = &line[head.end..];
        let pid = head.pid.unwrap_or_else(|| self.default_pid());
        if rest.starts_with('<') {
            return self.resumed(pid, rest, head.time);
        }
        if rest.starts_with("--- ") {
            self.stats.signals += 1;
            return;
        }
        if rest.starts_with("+++ ") && is_exit(&rest[4..]) {
            return self.exit(pid);
        }
        let bytes = rest.as_bytes();
        let name_end = match identifier(bytes, 0) {
            Some(end) if bytes.get(end) == Some(&b'(') => end,
            _ => {
                self.stats.skipped += 1;
                return;
            }
        };
        self.place(pid, rest);
        let name = &rest[..name_end];
        let body = &rest[name_end + 1..];
        if rstrip(body).ends_with(UNFINISHED) {
            self.flush(pid);
            let trimmed = rstrip(body);
            let prefix = rstrip(&trimmed[..trimmed.len() - UNFINISHED.len()]).to_string();
            if let Some(state) = self.processes.get_mut(&pid) {
                state.pending = Some(Pending { name: name.to_string(), prefix,
                                               time: head.time });
            }
            if is_clone(name) {
                self.mark_cloning(pid);
            }
            return;
        }
        self.finish_line(pid, name, "", body, head.time);
    }

    fn resumed(&mut self, pid: i64, rest: &str, line_time: f64) {
        let bytes = rest.as_bytes();
        let name_end = match rest.strip_prefix("<... ").and_then(|_| identifier(bytes, 5)) {
            Some(end) if rest[end..].starts_with(" resumed>") => end,
            _ => {
                self.stats.skipped += 1;
                return;
            }
        };
        let name = &rest[5..name_end];
        let mut body_start = name_end + " resumed>".len();
        if bytes.get(body_start).map_or(false, |&b| is_space(b)) {
            body_start += 1;
        }
        self.place(pid, rest);
        self.unmark_cloning(pid);
        let state = self.processes.get_mut(&pid).expect("placed");
        let (prefix, time) = match state.pending.take() {
            Some(pending) if pending.name == name => (pending.prefix, pending.time),
            other => {
                state.pending = other;
                self.flush(pid);
                (String::new(), line_time)
            }
        };
        let body = &rest[body_start..];
        let stripped = strip_start(body);
        let body = match stripped.strip_prefix(UNFINISHED) {
            Some(after) => {
                if strip(after).is_empty() {
                    // Interrupted again, usually because the process is dying.
                    if let Some(state) = self.processes.get_mut(&pid) {
                        state.pending = Some(Pending { name: name.to_string(), prefix,
                                                       time });
                    }
                    return;
                }
                after
            }
            None => body,
        };
        self.finish_line(pid, name, &prefix, body, time);
    }

    /// Completes a call from the text after `name(` (or `resumed>`).
    fn finish_line(&mut self, pid: i64, name: &str, prefix: &str, body: &str,
                   time: f64) {
        let bytes = body.as_bytes();
        let mut end = body.len();
        for _ in 0..8 {
            let Some(equals) = body[..end].rfind(" = ") else { break };
            let mut close = equals;
            while close > 0 && bytes[close - 1] == b' ' {
                close -= 1;
            }
            if close > 0 && bytes[close - 1] == b')' {
                if let Some(outcome) = match_outcome(body, equals + 3) {
                    let args = &body[..close - 1];
                    let joined;
                    let args = if prefix.is_empty() { args }
                        else if strip(args).is_empty() { prefix }
                        else {
                            joined = format!("{} {}", prefix, strip_start(args));
                            joined.as_str()
                        };
                    let Outcome { value, annotation, errno } = outcome;
                    let errno = errno.filter(|_| value.map_or(true, |v| v < 0));
                    return self.complete(pid, name, args, value, errno, annotation,
                                         time);
                }
            }
            end = equals;
        }
        self.stats.skipped += 1;
    }

    #[allow(clippy::too_many_arguments)]
    fn complete(&mut self, pid: i64, raw_name: &str, args_text: &str, result: Option<i64>,
                errno: Option<&str>, annotation: Option<&str>, time: f64) {
        let split = self.tagger.splits(raw_name)
            || (is_effect_call(raw_name) && raw_name != "close");
        let args = if split { Some(split_args(args_text)) } else { None };
        let arg_call = self.tagger.is_arg_call(raw_name);
        let Some(state) = self.processes.get_mut(&pid) else { return };
        let tags = if errno.is_none() && !arg_call { 0 } else {
            self.tagger.tag(raw_name, args_text, result, errno, state, args.as_deref())
        };
        if is_effect_call(raw_name) {
            apply_call(state, raw_name, args.as_deref(), args_text, result, annotation);
        }
        let (state_pid, serial) = (state.pid, state.serial);
        if !is_effect_call(raw_name) && is_clone(raw_name) {
            if let Some(child) = result.filter(|&r| r > 0) {
                self.spawned(pid, child, args_text);
            }
        }
        if let (Some(annotation), Some(fd)) = (annotation, result.filter(|&r| r >= 0)) {
            if let Some(state) = self.processes.get(&pid) {
                state.learn(Some(fd), Some(annotation));
            }
        }
        let name = match self.names.get(raw_name) {
            Some(name) => *name,
            None => {
                let name = self.raw_names.len() as u32;
                self.channel_of.push(self.vocabulary.channel(&canonical_name(raw_name)));
                self.raw_names.push(raw_name.to_string());
                self.names.insert(raw_name.to_string(), name);
                name
            }
        };
        let channel = self.channel_of[name as usize];
        self.stats.calls += 1;
        self.out.push(Output::Call { pid: state_pid, serial, channel, name, tags, time });
        if matches!(raw_name, "execve" | "execveat") && result == Some(0) {
            if let Some(path) = first_quoted(args_text) {
                let program = path.rsplit('/').next().unwrap_or("").to_string();
                self.out.push(Output::Exec { pid: state_pid, serial, program });
            }
        } else if is_clone(raw_name) {
            if let Some(child) = result.filter(|&r| r > 0) {
                self.out.push(Output::Spawn { pid: state_pid, serial, child });
            }
        }
    }

    /// Completes the calls still unfinished at the end of the text; every
    /// process still alive then finishes, in the order it was placed.
    pub fn finish(&mut self) {
        let mut order: Vec<(u64, i64)> = self.processes.values()
            .map(|state| (state.order, state.pid)).collect();
        order.sort_unstable();
        for &(_, pid) in &order {
            self.flush(pid);
        }
        for (_, pid) in order {
            if let Some(state) = self.processes.remove(&pid) {
                self.out.push(Output::Finished { pid: state.pid, serial: state.serial });
            }
        }
        self.cloning.clear();
    }
}

/// `(?:exited with -?\d+|killed by \w+|superseded by)` after `+++ `.
fn is_exit(rest: &str) -> bool {
    if let Some(code) = rest.strip_prefix("exited with ") {
        let code = code.strip_prefix('-').unwrap_or(code);
        return digits(code.as_bytes(), 0) > 0;
    }
    if let Some(signal) = rest.strip_prefix("killed by ") {
        return signal.bytes().next().map_or(false, crate::straceargs::is_word_byte);
    }
    rest.starts_with("superseded by")
}
