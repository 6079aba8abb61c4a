//! The native strace reader of the live monitor: strace text on stdin,
//! fixed-size binary records on stdout.
//!
//! The reader is `strace.rs` (the port of the Python `StraceParser`, with
//! the same tag rules); this file only turns what it hands on into records
//! of `RECORD` bytes, little-endian, that the Python side reads with numpy
//! (`sentinel_jax.data.native.records` holds the matching dtype):
//!
//! | bytes  | field  | meaning |
//! | ------ | ------ | ------- |
//! | 0      | kind   | `CALL`, `NAME`, `PROGRAM`, `EXEC`, `SPAWN`, `FINISHED`, `STATS` |
//! | 1      | length | text bytes in this part (`NAME`, `PROGRAM`) |
//! | 2      | last   | 1 on a text's last part |
//! | 4..8   | name   | raw name index (`CALL`, `NAME`) |
//! | 8..12  | tags   | tag mask (`CALL`) |
//! | 16..24 | pid    | the process (clamped to i64) |
//! | 24..32 | serial | the process object (a pid may be reused) |
//! | 32..40 | time   | f64 seconds, NaN when strace printed none (`CALL`) |
//! | 40..48 | value  | child pid (`SPAWN`), lines read (`STATS`) |
//!
//! `NAME` and `PROGRAM` carry text in bytes 8..48 (`TEXT` bytes a part), in
//! as many parts as it needs. A raw name's `NAME` parts come before the first
//! `CALL` that refers to it; an `EXEC`'s program comes in the `PROGRAM` parts
//! just before it. `STATS` (value: lines read so far; serial: lines skipped)
//! follows each block of input, so a reader stopped early still reports.
//! Output is flushed after each block read from stdin: live input arrives
//! as it is written, a saved log in blocks of `BLOCK` bytes.
#![allow(dead_code)]

mod fdtable;
mod names;
mod strace;
mod straceargs;
mod tables;
mod tagger;
mod tags;

use std::io::{self, Read, Write};
use std::process::exit;

use names::Vocabulary;
use strace::{Output, StraceParser};

const RECORD: usize = 48;
const TEXT: usize = 40;
const BLOCK: usize = 1 << 20;

const CALL: u8 = 1;
const NAME: u8 = 2;
const PROGRAM: u8 = 3;
const EXEC: u8 = 4;
const SPAWN: u8 = 5;
const FINISHED: u8 = 6;
const STATS: u8 = 7;

struct Records {
    bytes: Vec<u8>,
    /// Raw names already sent.
    names_sent: usize,
}

impl Records {
    fn record(&mut self, kind: u8, name: u32, tags: u32, pid: i64, serial: u64, time: f64,
              value: i64) {
        let mut record = [0u8; RECORD];
        record[0] = kind;
        record[4..8].copy_from_slice(&name.to_le_bytes());
        record[8..12].copy_from_slice(&tags.to_le_bytes());
        record[16..24].copy_from_slice(&pid.to_le_bytes());
        record[24..32].copy_from_slice(&serial.to_le_bytes());
        record[32..40].copy_from_slice(&time.to_le_bytes());
        record[40..48].copy_from_slice(&value.to_le_bytes());
        self.bytes.extend_from_slice(&record);
    }

    fn text(&mut self, kind: u8, name: u32, text: &str) {
        let bytes = text.as_bytes();
        let mut parts = bytes.chunks(TEXT).peekable();
        if bytes.is_empty() {
            let mut record = [0u8; RECORD];
            record[0] = kind;
            record[2] = 1;
            record[4..8].copy_from_slice(&name.to_le_bytes());
            self.bytes.extend_from_slice(&record);
        }
        while let Some(part) = parts.next() {
            let mut record = [0u8; RECORD];
            record[0] = kind;
            record[1] = part.len() as u8;
            record[2] = u8::from(parts.peek().is_none());
            record[4..8].copy_from_slice(&name.to_le_bytes());
            record[8..8 + part.len()].copy_from_slice(part);
            self.bytes.extend_from_slice(&record);
        }
    }

    /// Turns what the parser handed on into records.
    fn drain(&mut self, parser: &mut StraceParser) {
        for output in parser.out.drain(..) {
            match output {
                Output::Call { pid, serial, name, tags, time, .. } => {
                    while self.names_sent <= name as usize {
                        let text = parser.raw_names[self.names_sent].clone();
                        self.text(NAME, self.names_sent as u32, &text);
                        self.names_sent += 1;
                    }
                    self.record(CALL, name, tags, pid, serial, time, 0);
                }
                Output::Exec { pid, serial, program } => {
                    self.text(PROGRAM, 0, &program);
                    self.record(EXEC, 0, 0, pid, serial, f64::NAN, 0);
                }
                Output::Spawn { pid, serial, child } => {
                    self.record(SPAWN, 0, 0, pid, serial, f64::NAN, child);
                }
                Output::Finished { pid, serial } => {
                    self.record(FINISHED, 0, 0, pid, serial, f64::NAN, 0);
                }
            }
        }
    }

    fn stats(&mut self, parser: &StraceParser) {
        let stats = &parser.stats;
        self.record(STATS, 0, 0, 0, stats.skipped, f64::NAN, stats.lines as i64);
    }

    /// Writes what is gathered; a closed pipe ends the reader quietly.
    fn flush<W: Write>(&mut self, out: &mut W) {
        if out.write_all(&self.bytes).and_then(|_| out.flush()).is_err() {
            exit(0);
        }
        self.bytes.clear();
    }
}

/// One line, without `\n` or `\r\n` (it may hold lone `\r`), invalid UTF-8
/// replaced as Python's `errors="replace"` does.
fn feed_line(parser: &mut StraceParser, bytes: &[u8]) {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    // A lone `\r` ends a line too, as in Python's universal newlines.
    for line in bytes.split(|&b| b == b'\r') {
        match std::str::from_utf8(line) {
            Ok(text) => parser.feed(text),
            Err(_) => parser.feed(&String::from_utf8_lossy(line)),
        }
    }
}

fn main() {
    let mut parser = StraceParser::new(Vocabulary::new());
    let mut records = Records { bytes: Vec::with_capacity(BLOCK), names_sent: 0 };
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut buffer = vec![0u8; BLOCK];
    let mut partial: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let read = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(ref e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("sentinel reader: error: reading stdin: {}", e);
                exit(2)
            }
        };
        let chunk = &buffer[..read];
        let mut start = 0;
        while let Some(offset) = chunk[start..].iter().position(|&b| b == b'\n') {
            let end = start + offset;
            if partial.is_empty() {
                feed_line(&mut parser, &chunk[start..end]);
            } else {
                partial.extend_from_slice(&chunk[start..end]);
                feed_line(&mut parser, &partial);
                partial.clear();
            }
            if !parser.out.is_empty() {
                records.drain(&mut parser);
            }
            start = end + 1;
        }
        partial.extend_from_slice(&chunk[start..]);
        records.stats(&parser);
        records.flush(&mut out);
    }
    if !partial.is_empty() {
        let line = std::mem::take(&mut partial);
        feed_line(&mut parser, &line);
    }
    parser.finish();
    // The processes still alive are finished by the monitor, in its own
    // order, as the Python path does; only the calls left open are sent.
    parser.out.retain(|output| !matches!(output, Output::Finished { .. }));
    records.drain(&mut parser);
    records.stats(&parser);
    records.flush(&mut out);
}
