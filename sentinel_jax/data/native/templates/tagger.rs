//! Evaluates the tag rule table (`tags.rs`, generated from the Python
//! `rules_as_json()`) on strace calls, as the Python `Tagger` does.
//!
//! The result is always the Python `tag_exhaustive`: every rule naming the
//! call, on its split arguments. Rules are indexed by raw call name once;
//! paths are matched against glob
//! patterns where `*` also matches `/` (`fnmatch.translate`), and the mask of
//! each (path, accesses) pair is cached.

use std::collections::HashMap;

use crate::fdtable::{Kind, ProcessState, Scope};
use crate::straceargs::{address_scope, annotation_path, decode_string, parse_fd,
                        parse_flags, parse_int, parse_sockaddr, split_args};
use crate::tags::{ACCESSES, FLAG_BITS, OPEN_FLAGS, PATH_ARGS, RULES};

/// Which files a call touches: `accesses` (bits over `ACCESSES`, or from the
/// flags when `open`), the descriptor argument and the path argument.
pub struct PathSpec {
    pub open: bool,
    pub accesses: u8,
    pub dirfd: Option<usize>,
    pub path: Option<usize>,
}

/// One rule of the table; `bit` is the tag's bit in the mask.
pub enum Rule {
    Path { bit: u32, access: u8, include: &'static [&'static str],
           exclude: &'static [&'static str] },
    Flag { bit: u32, args: &'static [(&'static str, usize)],
           all_of: &'static [&'static str], any_of: &'static [&'static str] },
    Value { bit: u32, args: &'static [(&'static str, &'static [usize])],
            values: &'static [&'static str], negate: bool },
    Address { bit: u32, args: &'static [(&'static str, usize, usize)], scope: Scope },
    Dup { bit: u32, calls: &'static [(&'static str, usize, i64)],
          targets: &'static [i64], source_kind: Kind,
          require: &'static [(&'static str, usize, &'static [&'static str])] },
    Call { bit: u32, calls: &'static [&'static str] },
    Errno { bit: u32, errnos: &'static [&'static str], negate: bool },
}

#[derive(Clone)]
enum Token {
    Char(char),
    Any,
    Star,
    Class { negate: bool, ranges: Vec<(char, char)> },
    Never,
}

impl Token {
    fn accepts(&self, c: char) -> bool {
        match self {
            Token::Char(expected) => *expected == c,
            Token::Any => true,
            Token::Star | Token::Never => false,
            Token::Class { negate, ranges } => {
                ranges.iter().any(|&(low, high)| low <= c && c <= high) != *negate
            }
        }
    }
}

/// A glob as `fnmatch.translate` reads it.
fn compile_glob(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                if !matches!(tokens.last(), Some(Token::Star)) {
                    tokens.push(Token::Star);
                }
            }
            '?' => tokens.push(Token::Any),
            '[' => {
                let mut j = i;
                if chars.get(j) == Some(&'!') { j += 1; }
                if chars.get(j) == Some(&']') { j += 1; }
                while j < chars.len() && chars[j] != ']' { j += 1; }
                if j >= chars.len() {
                    tokens.push(Token::Char('['));
                    continue;
                }
                let stuff = &chars[i..j];
                i = j + 1;
                if stuff.is_empty() {
                    tokens.push(Token::Never);
                } else if stuff == ['!'] {
                    tokens.push(Token::Any);
                } else {
                    let negate = stuff[0] == '!';
                    let body = if negate { &stuff[1..] } else { stuff };
                    let mut ranges = Vec::new();
                    let mut k = 0;
                    while k < body.len() {
                        if k + 2 < body.len() && body[k + 1] == '-' {
                            if body[k] <= body[k + 2] {
                                ranges.push((body[k], body[k + 2]));
                            }
                            k += 3;
                        } else {
                            ranges.push((body[k], body[k]));
                            k += 1;
                        }
                    }
                    tokens.push(Token::Class { negate, ranges });
                }
            }
            other => tokens.push(Token::Char(other)),
        }
    }
    tokens
}

/// Whole-text match; `*` takes any run of characters, `/` included.
fn glob_match(tokens: &[Token], text: &[char]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Star) => {
                star = Some((p, t));
                p += 1;
                continue;
            }
            Some(token) if token.accepts(text[t]) => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((star_p, star_t)) => {
                p = star_p + 1;
                t = star_t + 1;
                star = Some((star_p, star_t + 1));
            }
            None => return false,
        }
    }
    tokens[p..].iter().all(|token| matches!(token, Token::Star))
}

struct PathRule {
    mask: u32,
    access: u8,
    include: Vec<Vec<Token>>,
    exclude: Vec<Vec<Token>>,
}

/// What the table says about one raw call name.
pub struct CallEntry {
    /// Accesses of a call whose only file is its first descriptor (`read`).
    fd_only: Option<u8>,
    specs: &'static [PathSpec],
    open_flags: usize,
    rules: Vec<&'static Rule>,
}

pub struct Tagger {
    calls: HashMap<&'static str, CallEntry>,
    path_rules: Vec<PathRule>,
    errno_rules: Vec<(u32, &'static [&'static str], bool)>,
    flag_bits: HashMap<&'static str, u64>,
    path_cache: HashMap<(String, u8), u32>,
    errno_cache: HashMap<String, u32>,
}

const READ: u8 = 1;
const WRITE: u8 = 2;
const TRUNCATE: u8 = 16;
const PATH_CACHE_SIZE: usize = 1 << 16;

impl Tagger {
    pub fn new() -> Self {
        assert!(ACCESSES[..3] == ["read", "write", "exec"] && ACCESSES[4] == "truncate",
                "tags.rs: access bits out of order");
        let mut calls: HashMap<&'static str, CallEntry> = HashMap::new();
        let mut path_rules = Vec::new();
        let mut errno_rules = Vec::new();
        let empty = || CallEntry { fd_only: None, specs: &[], open_flags: usize::MAX,
                                   rules: Vec::new() };
        for rule in RULES {
            let names: Vec<&'static str> = match rule {
                Rule::Path { bit, access, include, exclude } => {
                    path_rules.push(PathRule {
                        mask: 1 << bit, access: *access,
                        include: include.iter().map(|p| compile_glob(p)).collect(),
                        exclude: exclude.iter().map(|p| compile_glob(p)).collect() });
                    continue;
                }
                Rule::Errno { bit, errnos, negate } => {
                    errno_rules.push((1u32 << bit, *errnos, *negate));
                    continue;
                }
                Rule::Flag { args, .. } => args.iter().map(|a| a.0).collect(),
                Rule::Value { args, .. } => args.iter().map(|a| a.0).collect(),
                Rule::Address { args, .. } => args.iter().map(|a| a.0).collect(),
                Rule::Dup { calls, .. } => calls.iter().map(|a| a.0).collect(),
                Rule::Call { calls, .. } => calls.to_vec(),
            };
            for name in names {
                calls.entry(name).or_insert_with(empty).rules.push(rule);
            }
        }
        for &(name, specs) in PATH_ARGS {
            let entry = calls.entry(name).or_insert_with(empty);
            entry.specs = specs;
            if entry.rules.is_empty() && specs.len() == 1
                && specs[0].dirfd == Some(0) && specs[0].path.is_none() {
                entry.fd_only = Some(specs[0].accesses);
            }
            if let Some((_, index)) = OPEN_FLAGS.iter().find(|(n, _)| *n == name) {
                entry.open_flags = *index;
            }
        }
        Tagger { calls, path_rules, errno_rules,
                 flag_bits: FLAG_BITS.iter().copied().collect(),
                 path_cache: HashMap::new(), errno_cache: HashMap::new() }
    }

    /// Whether a call's tags depend on its arguments (Python `arg_calls`).
    pub fn is_arg_call(&self, name: &str) -> bool {
        self.calls.contains_key(name)
    }

    /// Whether `tag` splits this call's arguments (Python `split_calls`).
    pub fn splits(&self, name: &str) -> bool {
        self.calls.get(name).map_or(false, |entry| entry.fd_only.is_none())
    }

    fn bits(&self) -> impl Fn(&str) -> u64 + '_ {
        move |name: &str| *self.flag_bits.get(name).unwrap_or(&0)
    }

    pub fn path_mask(&mut self, path: &str, accesses: u8) -> u32 {
        if let Some(mask) = self.path_cache.get(&(path.to_string(), accesses)) {
            return *mask;
        }
        let chars: Vec<char> = path.chars().collect();
        let mut mask = 0;
        for rule in &self.path_rules {
            if rule.access & accesses != 0
                && rule.include.iter().any(|g| glob_match(g, &chars))
                && !rule.exclude.iter().any(|g| glob_match(g, &chars)) {
                mask |= rule.mask;
            }
        }
        if self.path_cache.len() >= PATH_CACHE_SIZE {
            self.path_cache.clear();
        }
        self.path_cache.insert((path.to_string(), accesses), mask);
        mask
    }

    pub fn errno_mask(&mut self, errno: &str) -> u32 {
        if let Some(mask) = self.errno_cache.get(errno) {
            return *mask;
        }
        let mask = self.errno_rules.iter()
            .filter(|(_, errnos, negate)| errnos.contains(&errno) != *negate)
            .fold(0, |mask, (bit, _, _)| mask | bit);
        self.errno_cache.insert(errno.to_string(), mask);
        mask
    }

    /// The accesses an `open` flags argument asks for.
    fn open_accesses(&self, flags: &str) -> u8 {
        let (_, value) = parse_flags(flags, &self.bits());
        let bit = |name: &str| *self.flag_bits.get(name).unwrap_or(&0);
        let writes = bit("O_WRONLY") | bit("O_RDWR") | bit("O_CREAT") | bit("O_APPEND")
            | bit("O_TRUNC");
        let mut accesses = 0;
        if value & 3 != bit("O_WRONLY") { accesses |= READ; }
        if value & writes != 0 { accesses |= WRITE; }
        if value & bit("O_TRUNC") != 0 { accesses |= TRUNCATE; }
        accesses
    }

    /// The tag mask of one call by `state`, before its effect is applied.
    pub fn tag(&mut self, name: &str, args_text: &str, result: Option<i64>,
               errno: Option<&str>, state: &mut ProcessState,
               args: Option<&[&str]>) -> u32 {
        let mut mask = errno.map_or(0, |e| self.errno_mask(e));
        let Some(entry) = self.calls.get(name) else { return mask };
        if let Some(accesses) = entry.fd_only {
            // A bare descriptor number in front (read(3, ...)): its file, as
            // the full evaluation below would find it, without a split.
            let comma = args_text.find(',').unwrap_or(args_text.len());
            let token = &args_text[..comma];
            if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
                let info = token.parse::<i64>().ok().and_then(|fd| state.get(fd));
                if let Some(path) = info.filter(|i| i.kind == Kind::File).and_then(|i| i.path) {
                    let path = rewrite_own_proc(&path, state);
                    mask |= self.path_mask(&path, accesses);
                }
                return mask;
            }
        }
        let owned;
        let args: &[&str] = match args {
            Some(args) => args,
            None => { owned = split_args(args_text); &owned }
        };
        let (specs, open_flags) = (entry.specs, entry.open_flags);
        for spec in specs {
            let accesses = if spec.open {
                self.open_accesses(args.get(open_flags).copied().unwrap_or(""))
            } else {
                spec.accesses
            };
            if let Some(path) = path_of(state, args, spec.dirfd, spec.path) {
                mask |= self.path_mask(&path, accesses);
            }
        }
        let Some(entry) = self.calls.get(name) else { return mask };
        for rule in &entry.rules {
            if let Some(bit) = self.holds(rule, name, args, result, state) {
                mask |= 1 << bit;
            }
        }
        mask
    }

    /// The rule's bit when it holds for this call.
    fn holds(&self, rule: &Rule, name: &str, args: &[&str], result: Option<i64>,
             state: &mut ProcessState) -> Option<u32> {
        let lookup = |pairs: &[(&'static str, usize)]| {
            pairs.iter().find(|(n, _)| *n == name).map(|p| p.1)
        };
        match rule {
            Rule::Call { bit, .. } => Some(*bit),
            Rule::Flag { bit, args: indices, all_of, any_of } => {
                let token = args.get(lookup(indices)?)?;
                let (names, value) = parse_flags(token, &self.bits());
                let present = |flag: &&str| {
                    let wanted = *self.flag_bits.get(flag).unwrap_or(&0);
                    names.contains(flag) || (wanted != 0 && value & wanted == wanted)
                };
                let holds = (all_of.is_empty() || all_of.iter().all(present))
                    && (any_of.is_empty() || any_of.iter().any(present));
                holds.then_some(*bit)
            }
            Rule::Value { bit, args: table, values, negate } => {
                let indices = table.iter().find(|(n, _)| *n == name)?.1;
                let tokens: Vec<&str> = indices.iter().filter_map(|&i| args.get(i).copied())
                    .collect();
                let first = *tokens.first()?;
                let equal = |token: &str, value: &str| {
                    if value == "$self" {
                        parse_int(token).and_then(|n| n.exact).map_or(false, |n| state.is_self(n))
                    } else {
                        token == value
                    }
                };
                let holds = if *negate {
                    !values.iter().any(|v| equal(first, v))
                } else {
                    tokens.iter().any(|t| values.iter().any(|v| equal(t, v)))
                };
                holds.then_some(*bit)
            }
            Rule::Address { bit, args: table, scope } => {
                let &(_, fd_arg, address_arg) = table.iter().find(|(n, _, _)| *n == name)?;
                (address_scope_of(args, fd_arg, address_arg, state) == Some(*scope))
                    .then_some(*bit)
            }
            Rule::Dup { bit, calls, targets, source_kind, require } => {
                let &(_, source_arg, target_arg) = calls.iter().find(|c| c.0 == name)?;
                if let Some(&(_, index, values)) = require.iter().find(|r| r.0 == name) {
                    if !values.contains(args.get(index)?) {
                        return None;
                    }
                }
                if args.len() as i64 <= (source_arg as i64).max(target_arg) {
                    return None;
                }
                let target = if target_arg < 0 { result }
                             else { parse_fd(args[target_arg as usize]).0 };
                if !targets.contains(&target?) {
                    return None;
                }
                let (fd, annotation) = parse_fd(args[source_arg]);
                let info = state.learn(fd, annotation)?;
                (info.kind == *source_kind).then_some(*bit)
            }
            Rule::Path { .. } | Rule::Errno { .. } => None,
        }
    }
}

fn address_scope_of(args: &[&str], fd_arg: usize, address_arg: usize,
                    state: &mut ProcessState) -> Option<Scope> {
    if let Some(token) = args.get(address_arg) {
        if let Some((_, address)) = parse_sockaddr(token) {
            return address.filter(|a| !a.is_empty()).and_then(address_scope);
        }
    }
    let (fd, annotation) = parse_fd(args.get(fd_arg)?);
    state.learn(fd, annotation)?.scope
}

/// The resolved path a call touches, `/proc/<own pid>` written `/proc/self`.
fn path_of(state: &mut ProcessState, args: &[&str], dirfd_arg: Option<usize>,
           path_arg: Option<usize>) -> Option<String> {
    let mut path = None;
    if let Some(index) = path_arg {
        path = decode_string(args.get(index)?);
    }
    let mut dirfd = None;
    if let Some(token) = dirfd_arg.and_then(|index| args.get(index)) {
        let (fd, annotation) = parse_fd(token);
        if fd.is_none() {
            if let Some(a) = annotation.filter(|a| a.starts_with('/')) {
                state.cwd = Some(annotation_path(a).to_string());
            }
        }
        let info = state.learn(fd, annotation);
        dirfd = fd;
        if path.as_deref().map_or(true, str::is_empty) {
            // The file is the descriptor itself (write(fd), AT_EMPTY_PATH); a
            // -y annotation names /proc/self by the process's own pid.
            let path = info.filter(|i| i.kind == Kind::File).and_then(|i| i.path)?;
            return Some(rewrite_own_proc(&path, state));
        }
    }
    let path = path.filter(|p| !p.is_empty())?;
    let path = state.resolve(&path, dirfd);
    if !path.starts_with("/proc/") {
        return Some(path);
    }
    Some(rewrite_own_proc(&path, state))
}

/// The first `/proc/(\d+|thread-self)(?=/|$)` becomes `/proc/self` when it
/// names the calling process (Python `re.sub(..., count=1)`).
fn rewrite_own_proc(path: &str, state: &ProcessState) -> String {
    let mut from = 0;
    while let Some(offset) = path[from..].find("/proc/") {
        let start = from + offset;
        let rest = &path[start + 6..];
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        let (length, own) = if digits > 0 {
            let own = rest[..digits].parse::<i64>().map_or(false, |pid| state.is_self(pid));
            (digits, own)
        } else if rest.starts_with("thread-self") {
            ("thread-self".len(), true)
        } else {
            (0, false)
        };
        let ends = length > 0 && matches!(rest.as_bytes().get(length), None | Some(b'/'));
        if ends {
            if !own {
                return path.to_string();
            }
            return format!("{}/proc/self{}", &path[..start], &rest[length..]);
        }
        from = start + 1;
    }
    path.to_string()
}
