//! Syscall names: spelling aliases, number tables and the vocabulary.
//!
//! `canonical_name` is the Python `canonical_name`, rule for rule; the
//! tables it reads are generated into `tables.rs` from the Python ones.

use std::collections::HashMap;

use crate::tables::{ALIASES, I386, OTHER_ID, UID_CALLS_32, VOCABULARY, X86_64};

pub const UNKNOWN: &str = "UNKNOWN";

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if first.is_alphabetic() || first == '_' => {}
        _ => return false,
    }
    chars.all(|c| c == '_' || c.is_alphanumeric())
}

fn alias(name: &str) -> &str {
    match ALIASES.binary_search_by(|(from, _)| (*from).cmp(name)) {
        Ok(index) => ALIASES[index].1,
        Err(_) => name,
    }
}

/// Folds a syscall spelling onto its canonical name (`mmap2` -> `mmap`).
pub fn canonical_name(raw: &str) -> String {
    let mut name = raw.trim();
    if let Some(rest) = name.strip_prefix("SYS_") {
        name = rest;
    }
    if name.is_empty() || !is_identifier(name) {
        return UNKNOWN.to_string();
    }
    let mut owned = name.to_string();
    if UID_CALLS_32.contains(&name) {
        owned.truncate(owned.len() - 2);
    }
    if owned.ends_with("_time64") {
        owned.truncate(owned.len() - "_time64".len());
    }
    let once = alias(&owned).to_string();
    alias(&once).to_string()
}

/// Canonical name -> name channel (`OTHER` for names not in the vocabulary).
pub struct Vocabulary {
    index: HashMap<&'static str, u16>,
}

impl Vocabulary {
    pub fn new() -> Self {
        let mut index = HashMap::with_capacity(VOCABULARY.len());
        for (channel, name) in VOCABULARY.iter().enumerate() {
            index.insert(*name, channel as u16);
        }
        Vocabulary { index }
    }

    pub fn channel(&self, canonical: &str) -> u16 {
        *self.index.get(canonical).unwrap_or(&OTHER_ID)
    }

    /// Syscall number -> channel for `arch`, as a dense table.
    pub fn number_table(&self, arch: &str) -> Option<Vec<u16>> {
        let table: &[(u32, &str)] = match arch {
            "i386" => I386,
            "x86_64" => X86_64,
            _ => return None,
        };
        let size = table.iter().map(|(n, _)| *n as usize + 1).max().unwrap_or(0);
        let mut channels = vec![OTHER_ID; size];
        for (number, raw) in table {
            channels[*number as usize] = self.channel(&canonical_name(raw));
        }
        Some(channels)
    }
}
