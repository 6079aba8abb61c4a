//! Standalone detector: reads a syscall stream on stdin, scores windows with
//! the distilled equation, prints one JSON line per alerting window and a
//! summary line.
//!
//! Usage: detector [--format auto|strace|numbers|names|hist]
//!                 [--arch i386|x86_64] [--threshold X] [--all] [--events]
//!
//! A window alerts when its score is at or above the threshold. `--all`
//! prints every window, alerting or not; `--events` prints each event's
//! channel and tag mask (to check the reader against Python's).
//! * strace: strace text (`strace -f [-o FILE]`, any of -t/-tt/-ttt/-T/-n/
//!   -y/-yy); each process gets its own windows, events carry tags from the
//!   rule table, and window lines carry the `pid` and its `run` (1, then 2...
//!   when a pid is reused); `--events` lines are `pid channel mask`. In
//!   terminal output strace prints no pid until a second process exists:
//!   windows ending before then carry pid 0;
//! * numbers: syscall numbers separated by spaces or newlines (ADFA-LD);
//! * names: one syscall name per token (any spelling `canonical_name` folds);
//! * hist: one window per line, its hist channels as numbers; prints the
//!   score of each line (used to verify the equation against Python).

mod fdtable;
mod model;
mod names;
mod strace;
mod straceargs;
mod tables;
mod tagger;
mod tags;
mod window;

use std::collections::HashMap;
use std::io::{self, BufWriter, Read, Write};
use std::process::exit;
use std::time::Instant;

use names::{canonical_name, Vocabulary};
use strace::{Output, StraceParser};
use window::{Window, Windower};

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Strace,
    Numbers,
    Names,
    Hist,
}

struct Options {
    format: Option<Format>,
    arch: String,
    threshold: f64,
    all: bool,
    events: bool,
}

fn usage(message: &str) -> ! {
    eprintln!("detector: error: {}", message);
    eprintln!("usage: detector [--format auto|strace|numbers|names|hist] \
               [--arch i386|x86_64] [--threshold X] [--all] [--events]");
    exit(2);
}

fn parse_options() -> Options {
    let mut options = Options {
        format: None,
        arch: model::DEFAULT_ARCH.to_string(),
        threshold: model::THRESHOLD,
        all: false,
        events: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--format" => {
                options.format = match args.next().as_deref() {
                    Some("auto") => None,
                    Some("strace") => Some(Format::Strace),
                    Some("numbers") => Some(Format::Numbers),
                    Some("names") => Some(Format::Names),
                    Some("hist") => Some(Format::Hist),
                    other => usage(&format!(
                        "--format expects auto, strace, numbers, names or hist, got {:?}",
                        other)),
                }
            }
            "--arch" => {
                options.arch = args.next().unwrap_or_default();
                if options.arch != "i386" && options.arch != "x86_64" {
                    usage("--arch expects i386 or x86_64");
                }
            }
            "--threshold" => {
                options.threshold = match args.next().map(|v| v.parse::<f64>()) {
                    Some(Ok(value)) if value.is_finite() => value,
                    _ => usage("--threshold expects a finite number"),
                }
            }
            "--all" => options.all = true,
            "--events" => options.events = true,
            "--help" | "-h" => {
                println!("{}", model::HELP);
                exit(0);
            }
            other => usage(&format!("unknown argument {:?}", other)),
        }
    }
    options
}

/// JSON has no NaN or infinity: such scores are written as null.
fn json_number(value: f64) -> String {
    if value.is_finite() { format!("{:e}", value) } else { "null".to_string() }
}

struct Report {
    events: u64,
    windows: u64,
    alerts: u64,
    max_score: f64,
}

/// Scores one window; prints it when it alerts (or with `--all`).
/// `process` is the (pid, run) of strace input.
fn emit<W: Write>(out: &mut W, report: &mut Report, options: &Options,
                  windower: &mut Windower, window: Window,
                  process: Option<(i64, u64)>) {
    let score = model::score(windower.hist(window.length));
    let alert = score >= options.threshold;
    report.windows += 1;
    if score > report.max_score || report.max_score.is_nan() {
        report.max_score = score;
    }
    if alert {
        report.alerts += 1;
    }
    if alert || options.all {
        if let Some((pid, run)) = process {
            let _ = write!(out, "{{\"pid\":{},\"run\":{},", pid, run);
        } else {
            let _ = write!(out, "{{");
        }
        let _ = writeln!(out, "\"window\":{},\"start\":{},\"length\":{},\
                         \"score\":{},\"alert\":{}}}",
                         report.windows - 1, window.start, window.length,
                         json_number(score), alert);
    }
}

/// Splits a byte stream into whitespace/comma-separated tokens.
fn for_each_token<F: FnMut(&[u8])>(input: &mut dyn Read, first: &[u8], mut f: F) {
    let mut token: Vec<u8> = Vec::with_capacity(64);
    let mut buffer = vec![0u8; 1 << 20];
    let mut handle = |chunk: &[u8], token: &mut Vec<u8>| {
        for &byte in chunk {
            if byte == b' ' || byte == b'\n' || byte == b'\t' || byte == b'\r'
                || byte == b',' {
                if !token.is_empty() {
                    f(token);
                    token.clear();
                }
            } else {
                token.push(byte);
            }
        }
    };
    handle(first, &mut token);
    loop {
        let read = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(ref e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => { eprintln!("detector: error: reading stdin: {}", e); exit(2) }
        };
        handle(&buffer[..read], &mut token);
    }
    if !token.is_empty() {
        f(&token);
    }
}

/// Syscall numbers: a digit loop over raw bytes, the fast path.
fn run_numbers<W: Write>(input: &mut dyn Read, first: &[u8], table: &[u16],
                         out: &mut W, options: &Options, report: &mut Report,
                         skipped: &mut u64) {
    let mut windower = Windower::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut value: u64 = 0;
    let mut in_number = false;
    let mut bad = false;
    let mut chunk: &[u8] = first;
    loop {
        for &byte in chunk {
            let digit = byte.wrapping_sub(b'0');
            if digit < 10 {
                value = value.saturating_mul(10).saturating_add(digit as u64);
                in_number = true;
            } else if byte == b' ' || byte == b'\n' || byte == b'\t'
                || byte == b'\r' || byte == b',' {
                if in_number && !bad {
                    let id = if (value as usize) < table.len() {
                        table[value as usize]
                    } else {
                        tables::OTHER_ID
                    };
                    if options.events {
                        let _ = writeln!(out, "{} 0", id);
                    }
                    if let Some(w) = windower.push(id, 0) {
                        emit(out, report, options, &mut windower, w, None);
                    }
                } else if bad {
                    *skipped += 1;
                }
                value = 0;
                in_number = false;
                bad = false;
            } else {
                bad = true;
            }
        }
        let read = loop {
            match input.read(&mut buffer) {
                Ok(n) => break n,
                Err(ref e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => { eprintln!("detector: error: reading stdin: {}", e); exit(2) }
            }
        };
        if read == 0 {
            break;
        }
        chunk = &buffer[..read];
    }
    if in_number && !bad {
        let id = if (value as usize) < table.len() { table[value as usize] }
                 else { tables::OTHER_ID };
        if options.events {
            let _ = writeln!(out, "{} 0", id);
        }
        if let Some(w) = windower.push(id, 0) {
            emit(out, report, options, &mut windower, w, None);
        }
    } else if bad {
        *skipped += 1;
    }
    if let Some(w) = windower.finish() {
        emit(out, report, options, &mut windower, w, None);
    }
    report.events = windower.total();
}

fn run_names<W: Write>(input: &mut dyn Read, first: &[u8], vocabulary: &Vocabulary,
                       out: &mut W, options: &Options, report: &mut Report) {
    let mut windower = Windower::new();
    let mut cache: HashMap<Vec<u8>, u16> = HashMap::new();
    for_each_token(input, first, |token| {
        let id = match cache.get(token) {
            Some(id) => *id,
            None => {
                let text = String::from_utf8_lossy(token);
                let id = vocabulary.channel(&canonical_name(&text));
                cache.insert(token.to_vec(), id);
                id
            }
        };
        if options.events {
            let _ = writeln!(out, "{} 0", id);
        }
        if let Some(w) = windower.push(id, 0) {
            emit(out, report, options, &mut windower, w, None);
        }
    });
    if let Some(w) = windower.finish() {
        emit(out, report, options, &mut windower, w, None);
    }
    report.events = windower.total();
}

/// Splits a byte stream into lines (without `\n` or `\r\n`), invalid UTF-8
/// replaced as Python's `errors="replace"` does.
fn for_each_line<F: FnMut(&str)>(input: &mut dyn Read, first: &[u8], mut f: F) {
    let mut partial: Vec<u8> = Vec::with_capacity(4096);
    let mut buffer = vec![0u8; 1 << 20];
    let line_of = |bytes: &[u8], f: &mut F| {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        match std::str::from_utf8(bytes) {
            Ok(text) => f(text),
            Err(_) => f(&String::from_utf8_lossy(bytes)),
        }
    };
    let handle = |chunk: &[u8], partial: &mut Vec<u8>, f: &mut F| {
        let mut start = 0;
        while let Some(offset) = chunk[start..].iter().position(|&b| b == b'\n') {
            let end = start + offset;
            if partial.is_empty() {
                line_of(&chunk[start..end], f);
            } else {
                partial.extend_from_slice(&chunk[start..end]);
                line_of(partial, f);
                partial.clear();
            }
            start = end + 1;
        }
        partial.extend_from_slice(&chunk[start..]);
    };
    handle(first, &mut partial, &mut f);
    loop {
        let read = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(ref e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => { eprintln!("detector: error: reading stdin: {}", e); exit(2) }
        };
        handle(&buffer[..read], &mut partial, &mut f);
    }
    if !partial.is_empty() {
        line_of(&partial, &mut f);
    }
}

/// Per-process windows over strace text.
struct StraceWindows {
    windowers: HashMap<u64, Windower>,
    /// Processes finished so far per pid: a live process's run is this + 1.
    finished: HashMap<i64, u64>,
}

impl StraceWindows {
    fn drain<W: Write>(&mut self, parser: &mut StraceParser, out: &mut W,
                       options: &Options, report: &mut Report) {
        for output in parser.out.drain(..) {
            match output {
                Output::Call { pid, serial, channel, tags, .. } => {
                    if options.events {
                        let _ = writeln!(out, "{} {} {}", pid, channel, tags);
                    }
                    let windower = self.windowers.entry(serial).or_insert_with(Windower::new);
                    if let Some(w) = windower.push(channel, tags) {
                        let run = self.finished.get(&pid).copied().unwrap_or(0) + 1;
                        emit(out, report, options, windower, w, Some((pid, run)));
                    }
                }
                Output::Exec { .. } | Output::Spawn { .. } => {}
                Output::Finished { pid, serial } => {
                    let run = self.finished.get(&pid).copied().unwrap_or(0) + 1;
                    if let Some(mut windower) = self.windowers.remove(&serial) {
                        if let Some(w) = windower.finish() {
                            emit(out, report, options, &mut windower, w, Some((pid, run)));
                        }
                    }
                    self.finished.insert(pid, run);
                }
            }
        }
    }
}

fn run_strace<W: Write>(input: &mut dyn Read, first: &[u8], vocabulary: Vocabulary,
                        out: &mut W, options: &Options, report: &mut Report,
                        skipped: &mut u64) {
    let mut parser = StraceParser::new(vocabulary);
    let mut windows = StraceWindows { windowers: HashMap::new(), finished: HashMap::new() };
    for_each_line(input, first, |line| {
        parser.feed(line);
        if !parser.out.is_empty() {
            windows.drain(&mut parser, out, options, report);
        }
    });
    parser.finish();
    windows.drain(&mut parser, out, options, report);
    report.events = parser.stats.calls;
    *skipped = parser.stats.skipped;
}

fn run_hist<W: Write>(input: &mut dyn Read, first: &[u8], out: &mut W,
                      report: &mut Report) {
    let mut text = String::from_utf8_lossy(first).into_owned();
    let mut rest = String::new();
    if let Err(e) = input.read_to_string(&mut rest) {
        eprintln!("detector: error: reading stdin: {}", e);
        exit(2);
    }
    text.push_str(&rest);
    let mut hist = vec![0.0f64; model::CHANNELS];
    for (line_number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut count = 0;
        for (channel, field) in line.split(|c: char| c == ' ' || c == ',' || c == '\t')
            .filter(|f| !f.is_empty()).enumerate() {
            if channel >= model::CHANNELS {
                count = channel + 1;
                break;
            }
            // Rows are float32 hist written in shortest round-trip form.
            match field.parse::<f32>() {
                Ok(value) => hist[channel] = value as f64,
                Err(_) => {
                    eprintln!("detector: error: line {}: {:?} is not a number",
                              line_number + 1, field);
                    exit(2);
                }
            }
            count = channel + 1;
        }
        if count != model::CHANNELS {
            eprintln!("detector: error: line {}: expected {} channels, got {}",
                      line_number + 1, model::CHANNELS, count);
            exit(2);
        }
        let score = model::score(&hist);
        let _ = writeln!(out, "{}", json_number(score));
        report.windows += 1;
    }
}

/// strace text shows calls (`name(`), resumptions, signals or exits on its
/// first line; names and numbers never hold those characters.
fn looks_like_strace(text: &str) -> bool {
    text.lines().find(|line| !line.trim().is_empty()).map_or(false, |line| {
        line.contains('(') || line.contains("<... ") || line.contains("+++ ")
            || line.contains("--- ")
    })
}

fn detect_format(first: &[u8]) -> Format {
    let text = String::from_utf8_lossy(first);
    if looks_like_strace(&text) {
        return Format::Strace;
    }
    let token = text.split_whitespace().next().unwrap_or("");
    if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit() || b == b',') {
        Format::Numbers
    } else {
        Format::Names
    }
}

fn main() {
    let options = parse_options();
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut first = vec![0u8; 1 << 16];
    let mut filled = 0;
    while filled < first.len() {
        match input.read(&mut first[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(ref e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => { eprintln!("detector: error: reading stdin: {}", e); exit(2) }
        }
    }
    first.truncate(filled);
    let format = options.format.unwrap_or_else(|| detect_format(&first));
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut report = Report { events: 0, windows: 0, alerts: 0, max_score: f64::NAN };
    let mut skipped = 0u64;
    let started = Instant::now();
    let vocabulary = Vocabulary::new();
    let format_name = match format {
        Format::Strace => {
            run_strace(&mut input, &first, vocabulary, &mut out, &options, &mut report,
                       &mut skipped);
            "strace"
        }
        Format::Numbers => {
            let table = vocabulary.number_table(&options.arch)
                .unwrap_or_else(|| usage("unknown architecture"));
            run_numbers(&mut input, &first, &table, &mut out, &options,
                        &mut report, &mut skipped);
            "numbers"
        }
        Format::Names => {
            run_names(&mut input, &first, &vocabulary, &mut out, &options,
                      &mut report);
            "names"
        }
        Format::Hist => {
            run_hist(&mut input, &first, &mut out, &mut report);
            let _ = out.flush();
            return;
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 { report.events as f64 / seconds } else { 0.0 };
    let _ = writeln!(out, "{{\"summary\":true,\"format\":\"{}\",\"events\":{},\
                     \"windows\":{},\"alerts\":{},\"skipped\":{},\"max_score\":{},\
                     \"threshold\":{},\"seconds\":{:e},\"events_per_s\":{:e}}}",
                     format_name, report.events, report.windows, report.alerts,
                     skipped, json_number(report.max_score),
                     json_number(options.threshold), seconds, rate);
    let _ = out.flush();
}
