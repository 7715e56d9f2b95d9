//! Changing a parsed event (an [`Edit`] of a token, recorded beside the tokens) and writing it
//! back.
//!
//! A changed event is written as serde_json writes a value: compact, object keys in sorted
//! order, strings escaped as serde_json escapes them, numbers as serde_json prints the number
//! it reads (`1e3` is `1000.0`). Unchanged parts are copied from the text where that is the
//! same bytes (strings without escapes, plain integers). Events that need no change are not
//! written at all: the relay passes them on byte-identical.

use std::cmp::Ordering;

use super::json::{number, Doc, Edit, Kind};
use super::policy::MaskError;

enum Frame {
    /// An array: its next item and where it ends.
    Arr { at: usize, end: usize, first: bool },
    /// An object: its keys in order at `keys[at..stop]`, `keys` cut back to `base` when done.
    Obj { at: usize, stop: usize, base: usize },
}

impl Doc<'_> {
    /// Records a change to token `i` (a later change to it replaces an earlier one).
    pub(super) fn edit(&mut self, i: usize, edit: Edit) {
        let t = &mut self.toks[i];
        if t.edited {
            if let Some(e) = self.edits.iter_mut().find(|(j, _)| *j as usize == i) {
                e.1 = edit;
                return;
            }
        }
        t.edited = true;
        self.edits.push((i as u32, edit));
    }

    fn edit_of(&self, i: usize) -> Option<&Edit> {
        if !self.toks[i].edited {
            return None;
        }
        let at = self.edits.binary_search_by_key(&i, |e| e.0 as usize).ok()?;
        Some(&self.edits[at].1)
    }

    /// The event with its edits, as serde_json writes it.
    pub(super) fn write(mut self) -> Result<String, MaskError> {
        self.edits.sort_unstable_by_key(|e| e.0);
        let mut out = Vec::with_capacity(self.src.len() + 64);
        let mut stack = Vec::new();
        let mut keys = Vec::new();
        self.open(0, &mut out, &mut stack, &mut keys);
        while let Some(frame) = stack.last_mut() {
            match frame {
                Frame::Arr { at, end, first } => {
                    while *at < *end && matches!(self.edit_of(*at), Some(Edit::Drop)) {
                        *at = self.next(*at);
                    }
                    if *at >= *end {
                        out.push(b']');
                        stack.pop();
                        continue;
                    }
                    let i = *at;
                    *at = self.next(i);
                    if !std::mem::replace(first, false) {
                        out.push(b',');
                    }
                    self.open(i, &mut out, &mut stack, &mut keys);
                }
                Frame::Obj { at, stop, base } => {
                    if *at == *stop {
                        out.push(b'}');
                        keys.truncate(*base);
                        stack.pop();
                        continue;
                    }
                    let k = keys[*at];
                    if *at > *base {
                        out.push(b',');
                    }
                    *at += 1;
                    self.string(k, &mut out);
                    out.push(b':');
                    self.open(k + 1, &mut out, &mut stack, &mut keys);
                }
            }
        }
        String::from_utf8(out).map_err(|e| MaskError::Json(e.to_string()))
    }

    /// Writes a scalar, or the start of a container (pushing its frame).
    fn open(&self, i: usize, out: &mut Vec<u8>, stack: &mut Vec<Frame>, keys: &mut Vec<usize>) {
        match self.edit_of(i) {
            Some(Edit::Str(s)) => return json_string(s, out),
            Some(Edit::Empty) => return out.extend_from_slice(b"[]"),
            Some(Edit::Drop) | None => {}
        }
        let t = self.toks[i];
        match t.kind {
            Kind::Null | Kind::True | Kind::False => {
                out.extend_from_slice(&self.src.as_bytes()[t.start as usize..t.end as usize]);
            }
            Kind::Num => self.number(i, out),
            Kind::Str => self.string(i, out),
            Kind::Arr => {
                out.push(b'[');
                stack.push(Frame::Arr {
                    at: i + 1,
                    end: self.next(i),
                    first: true,
                });
            }
            Kind::Obj => {
                out.push(b'{');
                let base = keys.len();
                keys.extend(self.pairs(i).map(|(k, _)| k));
                self.sort_keys(&mut keys[base..]);
                stack.push(Frame::Obj {
                    at: base,
                    stop: keys.len(),
                    base,
                });
            }
        }
    }

    /// Sorts key tokens as serde_json's map orders them (by their unescaped bytes).
    fn sort_keys(&self, keys: &mut [usize]) {
        let esc = keys.iter().any(|&k| self.toks[k].esc);
        let cmp = |a: &usize, b: &usize| -> Ordering {
            if esc {
                self.str(*a).cmp(&self.str(*b))
            } else {
                self.bytes(*a).cmp(self.bytes(*b))
            }
        };
        if !keys.is_sorted_by(|a, b| cmp(a, b) != Ordering::Greater) {
            keys.sort_unstable_by(cmp);
        }
    }

    fn string(&self, i: usize, out: &mut Vec<u8>) {
        if self.toks[i].esc {
            json_string(&self.str(i), out);
        } else {
            // Without escapes, serde_json would write the same bytes.
            out.push(b'"');
            out.extend_from_slice(self.raw(i).as_bytes());
            out.push(b'"');
        }
    }

    fn number(&self, i: usize, out: &mut Vec<u8>) {
        let text = self.raw(i);
        if plain_int(text) {
            out.extend_from_slice(text.as_bytes());
        } else if let Some(n) = number(text.as_bytes()) {
            let _ = serde_json::to_writer(&mut *out, &n);
        }
    }

    /// A number token as serde_json prints it (`1e3` is `1000.0`).
    pub(super) fn number_text(&self, i: usize) -> String {
        let text = self.raw(i);
        if plain_int(text) {
            text.to_owned()
        } else {
            number(text.as_bytes()).map_or_else(String::new, |n| n.to_string())
        }
    }
}

/// An integer serde_json reads as one and prints as it is written (`-0` it reads as a float).
fn plain_int(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty()
        && digits.bytes().all(|c| c.is_ascii_digit())
        && if digits.len() < text.len() {
            !digits.starts_with('0') && text.parse::<i64>().is_ok()
        } else {
            text.parse::<u64>().is_ok()
        }
}

fn json_string(s: &str, out: &mut Vec<u8>) {
    // Writing a `str` to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}
