//! Windows over one event stream, with sliding channel counts.
//!
//! Windows of `TIME` events start every `STRIDE` events; when the stride does
//! not land on the end of the stream, one more window ends at the last event,
//! and a stream shorter than `TIME` gives one short window. This is the
//! Python `window_starts` rule. Counts are updated per event (one in, one
//! out), so a window costs a few divisions, not `TIME` additions.

use crate::model::{NAME_CHANNELS, TAG_CHANNELS, TIME, STRIDE, USED_CHANNELS,
                   CHANNELS};

/// A finished window: where it starts, how many events it holds, its hist.
pub struct Window {
    pub start: u64,
    pub length: u64,
}

pub struct Windower {
    ids: Vec<u16>,
    tags: Vec<u32>,
    counts: Vec<u32>,
    position: usize,
    total: u64,
    next_start: u64,
    hist: Vec<f64>,
}

impl Windower {
    pub fn new() -> Self {
        Windower {
            ids: vec![0; TIME],
            tags: vec![0; TIME],
            counts: vec![0; CHANNELS],
            position: 0,
            total: 0,
            next_start: 0,
            hist: vec![0.0; CHANNELS],
        }
    }

    /// Events seen so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Adds one event; returns a window when one ends here.
    #[inline(always)]
    pub fn push(&mut self, id: u16, tags: u32) -> Option<Window> {
        let slot = self.position;
        if self.total >= TIME as u64 {
            self.counts[self.ids[slot] as usize] -= 1;
            let old = self.tags[slot];
            if old != 0 {
                self.count_tags(old, false);
            }
        }
        self.ids[slot] = id;
        self.tags[slot] = tags;
        self.counts[id as usize] += 1;
        if tags != 0 {
            self.count_tags(tags, true);
        }
        self.position = if slot + 1 == TIME { 0 } else { slot + 1 };
        self.total += 1;
        if self.total >= TIME as u64 && self.total - TIME as u64 == self.next_start {
            let start = self.next_start;
            self.next_start += STRIDE as u64;
            return Some(Window { start, length: TIME as u64 });
        }
        None
    }

    /// The short or tail window at the end of the stream, if one is due.
    pub fn finish(&mut self) -> Option<Window> {
        let time = TIME as u64;
        if self.total == 0 {
            return None;
        }
        if self.total < time {
            return Some(Window { start: 0, length: self.total });
        }
        let last_start = self.next_start - STRIDE as u64;
        if last_start != self.total - time {
            return Some(Window { start: self.total - time, length: time });
        }
        None
    }

    #[inline(always)]
    fn count_tags(&mut self, mut mask: u32, add: bool) {
        while mask != 0 {
            let bit = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            if bit < TAG_CHANNELS {
                let channel = NAME_CHANNELS + bit;
                if add {
                    self.counts[channel] += 1;
                } else {
                    self.counts[channel] -= 1;
                }
            }
        }
    }

    /// The hist of the current window (`length` events), as the Python
    /// encoder computes it: f32 count / f32 length, widened to f64. Only the
    /// channels the equation reads are filled.
    pub fn hist(&mut self, length: u64) -> &[f64] {
        let denominator = length.max(1) as f32;
        for &channel in USED_CHANNELS {
            let value = if channel == 0 { 0.0 } else {
                self.counts[channel] as f32 / denominator
            };
            self.hist[channel] = value as f64;
        }
        &self.hist
    }
}
