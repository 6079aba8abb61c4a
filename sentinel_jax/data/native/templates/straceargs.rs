//! Reading strace's argument text: split, strings, numbers, flags, addresses.
//!
//! Rule for rule the Python `sentinel_jax.data.straceargs`: each function
//! names the regular expression it stands for. Text is handled as bytes
//! wherever the syntax is ASCII; whitespace is Python's ASCII `\s` (with the
//! separators 0x1c-0x1f that `str.isspace` also counts). Nothing here panics
//! on malformed text.

use crate::fdtable::Scope;

#[inline]
pub fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0x1c..=0x1f)
}

#[inline]
pub fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Python's `str.strip()` for ASCII whitespace.
pub fn strip(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_ascii() && is_space(c as u8))
}

/// Python's `str.lstrip()` for ASCII whitespace.
pub fn strip_start(text: &str) -> &str {
    text.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8))
}

pub fn rstrip(text: &str) -> &str {
    text.trim_end_matches(|c: char| c.is_ascii() && is_space(c as u8))
}

/// End of a quoted string whose body starts at `pos`:
/// `(?:[^"\\]|\\.)*(?:"|$)`. A dangling backslash ends the text (Python's
/// regex finds no match there).
fn string_tail(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() {
        match bytes[pos] {
            b'"' => return pos + 1,
            b'\\' => pos = (pos + 2).min(bytes.len()),
            _ => pos += 1,
        }
    }
    bytes.len()
}

/// End of a `-y` annotation opened at `start`:
/// `<(?:[^<>\[\]]|\[[^\]]*\])*(?:<[^<>]*>)?>`.
fn annotation_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'[' => match bytes[i + 1..].iter().position(|&b| b == b']') {
                Some(offset) => i += offset + 2,
                None => break,
            },
            b'<' | b'>' | b']' => break,
            _ => i += 1,
        }
    }
    match bytes.get(i) {
        Some(b'>') => Some(i + 1),
        Some(b'<') => {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'<' && bytes[j] != b'>' {
                j += 1;
            }
            (bytes.get(j) == Some(&b'>') && bytes.get(j + 1) == Some(&b'>'))
                .then_some(j + 2)
        }
        _ => None,
    }
}

fn previous_is_alphanumeric(text: &str, index: usize) -> bool {
    text[..index].chars().next_back().map_or(false, |c| c.is_alphanumeric())
}

/// Splits argument text at top-level commas (quotes, brackets and `-y`
/// annotations keep theirs); the pieces are stripped.
pub fn split_args(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut args = Vec::new();
    let (mut depth, mut start, mut pos) = (0usize, 0usize, 0usize);
    while pos < bytes.len() {
        let index = pos;
        pos += 1;
        match bytes[index] {
            b'"' => pos = string_tail(bytes, pos),
            b'<' => {
                if index > 0 && previous_is_alphanumeric(text, index) {
                    if let Some(end) = annotation_end(bytes, index) {
                        pos = end;
                    }
                }
            }
            b'[' | b'{' | b'(' => depth += 1,
            b']' | b'}' | b')' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                args.push(strip(&text[start..index]));
                start = pos;
            }
            _ => {}
        }
    }
    let tail = strip(&text[start..]);
    if !tail.is_empty() || !args.is_empty() {
        args.push(tail);
    }
    args
}

/// The text of a quoted strace string, C escapes decoded (`codecs.
/// escape_decode`); `None` if the token is no string. Invalid UTF-8 becomes
/// U+FFFD (Python keeps it as surrogates: only `?` globs could tell).
pub fn decode_string(token: &str) -> Option<String> {
    let token = strip(token);
    let bytes = token.as_bytes();
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let end = string_tail(bytes, 1);
    let body = if end > 1 && bytes[end - 1] == b'"' { &token[1..end - 1] }
               else { &token[1..end] };
    if !body.contains('\\') {
        return Some(body.to_string());
    }
    let raw = body.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let byte = raw[i];
        if byte != b'\\' {
            out.push(byte);
            i += 1;
            continue;
        }
        let Some(&next) = raw.get(i + 1) else { return Some(body.to_string()) };
        i += 2;
        match next {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(next),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b't' => out.push(9),
            b'n' => out.push(10),
            b'v' => out.push(11),
            b'f' => out.push(12),
            b'r' => out.push(13),
            b'0'..=b'7' => {
                let mut value = (next - b'0') as u32;
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(value as u8);
            }
            b'x' => {
                let hex = |at: usize| raw.get(at).and_then(|&b| (b as char).to_digit(16));
                match (hex(i), hex(i + 1)) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => return Some(body.to_string()),
                }
            }
            _ => {
                out.push(b'\\');
                out.push(next);
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// An integer as `parse_int` reads it; `bits` is the value modulo 2^64 (exact
/// low bits for flag tests), `exact` the value when it fits an i64.
#[derive(Clone, Copy)]
pub struct Int {
    pub bits: u64,
    pub exact: Option<i64>,
}

/// `\s*(-?)(0x[0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\s*$`.
pub fn parse_int(token: &str) -> Option<Int> {
    let text = strip_start(token);
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let digits = rstrip(text);
    if digits.is_empty() {
        return None;
    }
    let (radix, body) = if let Some(hex) = digits.strip_prefix("0x") {
        (16, hex)
    } else if digits.starts_with('0') {
        (8, digits)
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.bytes().all(|b| (b as char).is_digit(radix)) {
        return None;
    }
    let mut bits: u64 = 0;
    let mut exact: Option<i64> = Some(0);
    for byte in body.bytes() {
        let digit = (byte as char).to_digit(radix).unwrap_or(0) as u64;
        bits = bits.wrapping_mul(radix as u64).wrapping_add(digit);
        exact = exact.and_then(|v| v.checked_mul(radix as i64))
                     .and_then(|v| v.checked_add(digit as i64));
    }
    if negative {
        bits = bits.wrapping_neg();
        exact = exact.map(|v| -v);
    }
    Some(Int { bits, exact })
}

/// `\s*(-?\d+|AT_FDCWD)(?:<(.*)>)?`: `(fd, annotation)`; `AT_FDCWD` gives no
/// fd. The annotation runs to the *last* `>` of the text, as the greedy
/// Python pattern does.
pub fn parse_fd(token: &str) -> (Option<i64>, Option<&str>) {
    let text = strip_start(token);
    let bytes = text.as_bytes();
    let (fd, end) = if text.starts_with("AT_FDCWD") {
        (None, 8)
    } else {
        let sign = usize::from(bytes.first() == Some(&b'-'));
        let digits = bytes[sign..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return (None, None);
        }
        let value = text[sign..sign + digits].parse::<i64>().unwrap_or(i64::MAX);
        (Some(if sign == 1 { -value } else { value }), sign + digits)
    };
    let mut annotation = None;
    if bytes.get(end) == Some(&b'<') {
        let rest = &text[end + 1..];
        let line = rest.split('\n').next().unwrap_or("");
        if let Some(close) = line.rfind('>') {
            annotation = Some(&rest[..close]);
        }
    }
    (fd, annotation)
}

fn is_word_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// `\bflags=([\w|]+)`, searched.
fn flags_field(token: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(offset) = token[from..].find("flags=") {
        let at = from + offset;
        let boundary = token[..at].chars().next_back().map_or(true, |c| !is_word_char(c));
        let value = &token[at + 6..];
        let length: usize = value.chars().take_while(|&c| is_word_char(c) || c == '|')
            .map(char::len_utf8).sum();
        if boundary && length > 0 {
            return Some(&value[..length]);
        }
        from = at + 1;
    }
    None
}

/// The flag names and numeric bits of a flag argument (`parse_flags`):
/// `A|B|0x10`, bare numbers, or a `flags=A|B` field. `bits` maps names to
/// values that are OR-ed in.
pub fn parse_flags<'a>(token: &'a str, bits: &dyn Fn(&str) -> u64) -> (Vec<&'a str>, u64) {
    let mut token = strip(token);
    if token.contains('=') {
        match flags_field(token) {
            Some(field) => token = field,
            None => return (Vec::new(), 0),
        }
    }
    if token.is_empty() || !token.chars().all(|c| is_word_char(c) || c == '|' || c == '~'
                                                || c == ' ') {
        return (Vec::new(), 0);
    }
    let bytes = token.as_bytes();
    let (mut names, mut value) = (Vec::new(), 0u64);
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte.is_ascii_alphabetic() || byte == b'_' {
            let end = i + bytes[i..].iter().take_while(|&&b| is_word_byte(b)).count();
            names.push(&token[i..end]);
            value |= bits(&token[i..end]);
            i = end;
        } else if byte.is_ascii_digit() {
            let hex = byte == b'0' && bytes.get(i + 1) == Some(&b'x')
                && bytes.get(i + 2).map_or(false, |b| b.is_ascii_hexdigit());
            let end = if hex {
                i + 2 + bytes[i + 2..].iter().take_while(|b| b.is_ascii_hexdigit()).count()
            } else {
                i + bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count()
            };
            if let Some(number) = parse_int(&token[i..end]) {
                value |= number.bits;
            }
            i = end;
        } else {
            i += 1;
        }
    }
    (names, value)
}

/// `loopback` or `remote` for an IPv4/IPv6 address text.
pub fn address_scope(address: &str) -> Option<Scope> {
    let mut address = strip(address).trim_matches(|c| c == '[' || c == ']');
    if address.is_empty() {
        return None;
    }
    if let Some(rest) = address.strip_prefix("::ffff:") {
        address = rest;
    }
    if address.starts_with("127.") || matches!(address, "::1" | "0.0.0.0" | "::") {
        return Some(Scope::Loopback);
    }
    if address.contains('.') || address.contains(':') {
        return Some(Scope::Remote);
    }
    None
}

/// The text of `"..."` right after `marker` (a `[^"]*` run), searched; `close`
/// must follow the closing quote.
fn quoted_after<'a>(token: &'a str, marker: &str, close: &str, spaces: bool) -> Option<&'a str> {
    let mut from = 0;
    while let Some(offset) = token[from..].find(marker) {
        let at = from + offset + marker.len();
        let rest = if spaces { strip_start(&token[at..]) } else { &token[at..] };
        if let Some(body) = rest.strip_prefix('"') {
            if let Some(end) = body.find('"') {
                if body[end + 1..].starts_with(close) {
                    return Some(&body[..end]);
                }
            }
        }
        from = from + offset + 1;
    }
    None
}

/// A socket address structure: `(family, address)`; the address only for
/// Internet families.
pub fn parse_sockaddr(token: &str) -> Option<(&str, Option<&str>)> {
    let mut from = 0;
    let family = loop {
        let offset = token[from..].find("sa_family=AF_")?;
        let at = from + offset + "sa_family=".len();
        let length = 3 + token[at + 3..].bytes().take_while(|&b| is_word_byte(b)).count();
        if length > 3 {
            break &token[at..at + length];
        }
        from = at;
    };
    let address = match family {
        "AF_INET" => quoted_after(token, "inet_addr(", ")", false),
        "AF_INET6" => quoted_after(token, "inet_pton(AF_INET6,", "", true),
        _ => return Some((family, None)),
    };
    Some((family, address))
}

/// A file annotation's path, without `-yy` device numbers and ` (deleted)`.
pub fn annotation_path(annotation: &str) -> &str {
    let mut path = annotation;
    if let Some(open) = path.rfind('<') {
        let inner = &path[open + 1..];
        let numbers = inner.strip_prefix("char ").or_else(|| inner.strip_prefix("block "))
            .and_then(|rest| rest.strip_suffix('>'));
        if let Some(numbers) = numbers {
            if let Some((major, minor)) = numbers.split_once(':') {
                let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                if digits(major) && digits(minor) {
                    path = &path[..open];
                }
            }
        }
    }
    path.strip_suffix(" (deleted)").unwrap_or(path)
}

/// A `-yy` socket annotation (`TCP:[a:1->b:2]`) as `(protocol, peer scope)`.
pub fn annotation_peer(annotation: &str) -> Option<(&str, Option<Scope>)> {
    let bytes = annotation.as_bytes();
    if !bytes.first().map_or(false, |&b| is_word_byte(b)) {
        return None;
    }
    let length = bytes.iter().take_while(|&&b| is_word_byte(b) || b == b'-').count();
    let protocol = &annotation[..length];
    let rest = annotation[length..].strip_prefix(":[")?;
    let inside = rest.strip_suffix(']')?;
    if inside.contains('\n') {
        return None;
    }
    if matches!(protocol, "pipe" | "anon_inode" | "eventfd" | "signalfd" | "timerfd") {
        return None;
    }
    if protocol.starts_with("socket") {
        return Some(("socket", None));
    }
    let Some((_, peer)) = inside.rsplit_once("->") else { return Some((protocol, None)) };
    let all_digits = !peer.is_empty() && peer.bytes().all(|b| b.is_ascii_digit());
    let host = if peer.contains(':') && !all_digits {
        peer.rsplit_once(':').map_or(peer, |(host, _)| host)
    } else {
        peer
    };
    let scope = if host.contains('.') || host.contains('[') { address_scope(host) }
                else { None };
    Some((protocol, scope))
}
