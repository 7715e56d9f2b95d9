//! Reading events for the masker without building a tree: one pass over the text records every
//! JSON token in a flat [`Doc`] (kind, byte span, where its subtree ends). Strings stay where
//! they are in the event and are unescaped only when read; nothing is copied. The pass accepts
//! exactly what serde_json accepts (numbers it cannot hold, such as `1e400`, are refused as it
//! refuses them), except that lone UTF-16 surrogates read as U+FFFD, and it refuses repeated
//! object keys anywhere. It is a loop over an explicit stack: no nesting can overflow the
//! thread's stack; past [`MAX_NESTING`] levels the event is refused.
//!
//! Writing a changed event back is `emit`.

use std::borrow::Cow;

use super::policy::{MaskError, MAX_NESTING};

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Null,
    False,
    True,
    Num,
    Str,
    Arr,
    Obj,
}

/// One token: a scalar, or a container followed by its items (an object's as key, value, key,
/// value, ...).
#[derive(Debug, Clone, Copy)]
pub(super) struct Tok {
    pub(super) kind: Kind,
    /// A string with escapes (unescaped when read).
    pub(super) esc: bool,
    /// Changed by an edit (`emit`).
    pub(super) edited: bool,
    /// Bytes of the token in the text; a string's without its quotes.
    pub(super) start: u32,
    pub(super) end: u32,
    /// Index of the token after this one's subtree.
    pub(super) next: u32,
}

/// A parsed event: its text and its tokens, the root first, in text order. Edits (`emit`) are
/// kept beside them; reading sees the original.
#[derive(Debug)]
pub(super) struct Doc<'a> {
    pub(super) src: &'a str,
    pub(super) toks: Vec<Tok>,
    pub(super) edits: Vec<(u32, Edit)>,
}

/// A change to one token.
#[derive(Debug)]
pub(super) enum Edit {
    /// The value becomes this string.
    Str(String),
    /// The array becomes empty.
    Empty,
    /// The array item is left out.
    Drop,
}

enum Fail {
    Deep,
    Json(&'static str),
}

impl<'a> Doc<'a> {
    /// Parses an event (see the module doc).
    pub(super) fn parse(src: &'a str) -> Result<Doc<'a>, MaskError> {
        let deep = || MaskError::Shape(format!("nested deeper than {MAX_NESTING} levels"));
        if u32::try_from(src.len()).is_err() {
            return Err(MaskError::Shape("the event is too large".into()));
        }
        let mut p = Parser {
            b: src.as_bytes(),
            pos: 0,
            toks: Vec::with_capacity(src.len() / 6 + 2),
            open: Vec::with_capacity(32),
        };
        match p.run() {
            Ok(()) => Ok(Doc {
                src,
                toks: p.toks,
                edits: Vec::new(),
            }),
            Err(Fail::Deep) => Err(deep()),
            // Nesting past the limit anywhere is the error, even after a syntax error.
            Err(Fail::Json(_))
                if assist_relay_proto::event::json_nesting(src, MAX_NESTING).is_none() =>
            {
                Err(deep())
            }
            Err(Fail::Json(what)) => Err(MaskError::Json(format!("{what} at byte {}", p.pos))),
        }
    }

    #[inline]
    pub(super) fn kind(&self, i: usize) -> Kind {
        self.toks[i].kind
    }

    /// The index after `i`'s subtree.
    #[inline]
    pub(super) fn next(&self, i: usize) -> usize {
        self.toks[i].next as usize
    }

    /// The items of an array (nothing for other tokens).
    #[inline]
    pub(super) fn items(&self, arr: usize) -> Items<'_, 'a> {
        let end = if self.kind(arr) == Kind::Arr {
            self.next(arr)
        } else {
            arr + 1
        };
        Items {
            doc: self,
            at: arr + 1,
            end,
        }
    }

    /// The (key, value) indices of an object (nothing for other tokens).
    #[inline]
    pub(super) fn pairs(&self, obj: usize) -> Pairs<'_, 'a> {
        let end = if self.kind(obj) == Kind::Obj {
            self.next(obj)
        } else {
            obj + 1
        };
        Pairs(Items {
            doc: self,
            at: obj + 1,
            end,
        })
    }

    /// A string token's raw text (escapes not undone).
    #[inline]
    pub(super) fn raw(&self, i: usize) -> &'a str {
        let t = self.toks[i];
        &self.src[t.start as usize..t.end as usize]
    }

    /// A token's bytes (a string's raw text).
    #[inline]
    pub(super) fn bytes(&self, i: usize) -> &'a [u8] {
        let t = self.toks[i];
        &self.src.as_bytes()[t.start as usize..t.end as usize]
    }

    /// A string token's value (borrowed unless it has escapes).
    #[inline]
    pub(super) fn str(&self, i: usize) -> Cow<'a, str> {
        let raw = self.raw(i);
        if self.toks[i].esc {
            Cow::Owned(unescape(raw))
        } else {
            Cow::Borrowed(raw)
        }
    }

    /// Whether a key token spells `name`.
    #[inline]
    pub(super) fn key_is(&self, k: usize, name: &str) -> bool {
        if self.toks[k].esc {
            self.str(k) == name
        } else {
            self.bytes(k) == name.as_bytes()
        }
    }

    /// The value of an object's `key` (`None` for other tokens).
    #[inline]
    pub(super) fn get(&self, obj: usize, key: &str) -> Option<usize> {
        self.pairs(obj)
            .find(|&(k, _)| self.key_is(k, key))
            .map(|(_, v)| v)
    }

    /// `get` of a token that may be absent.
    #[inline]
    pub(super) fn get_in(&self, obj: Option<usize>, key: &str) -> Option<usize> {
        obj.and_then(|o| self.get(o, key))
    }
}

/// Tokens from `at` to `end`, one subtree each.
pub(super) struct Items<'d, 'a> {
    doc: &'d Doc<'a>,
    at: usize,
    end: usize,
}

/// An object's (key, value) indices.
pub(super) struct Pairs<'d, 'a>(Items<'d, 'a>);

impl Iterator for Pairs<'_, '_> {
    type Item = (usize, usize);
    #[inline]
    fn next(&mut self) -> Option<(usize, usize)> {
        Some((self.0.next()?, self.0.next()?))
    }
}

impl Iterator for Items<'_, '_> {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        (self.at < self.end).then(|| {
            let i = self.at;
            self.at = self.doc.next(i);
            i
        })
    }
}

struct Parser<'s> {
    b: &'s [u8],
    pos: usize,
    toks: Vec<Tok>,
    /// Containers not yet closed.
    open: Vec<u32>,
}

impl Parser<'_> {
    fn run(&mut self) -> Result<(), Fail> {
        'value: loop {
            self.ws();
            let Some(&c) = self.b.get(self.pos) else {
                return Err(Fail::Json("EOF while parsing a value"));
            };
            match c {
                b'{' | b'[' => {
                    let kind = if c == b'{' { Kind::Obj } else { Kind::Arr };
                    self.push(kind, self.pos, self.pos + 1, false);
                    self.open.push((self.toks.len() - 1) as u32);
                    if self.open.len() > MAX_NESTING {
                        return Err(Fail::Deep);
                    }
                    self.pos += 1;
                    self.ws();
                    let close = if c == b'{' { b'}' } else { b']' };
                    if self.b.get(self.pos) == Some(&close) {
                        self.pos += 1;
                        self.close();
                    } else {
                        if kind == Kind::Obj {
                            self.key()?;
                        }
                        continue 'value;
                    }
                }
                b'"' => self.string()?,
                b'-' | b'0'..=b'9' => self.number()?,
                b't' => self.literal(b"true", Kind::True)?,
                b'f' => self.literal(b"false", Kind::False)?,
                b'n' => self.literal(b"null", Kind::Null)?,
                _ => return Err(Fail::Json("expected a value")),
            }
            // After a value: close what ends here, up to the next item.
            loop {
                self.ws();
                let Some(&top) = self.open.last() else {
                    return if self.pos == self.b.len() {
                        Ok(())
                    } else {
                        Err(Fail::Json("trailing characters"))
                    };
                };
                let obj = self.toks[top as usize].kind == Kind::Obj;
                match self.b.get(self.pos) {
                    Some(b',') => {
                        self.pos += 1;
                        if obj {
                            self.ws();
                            self.key()?;
                        }
                        continue 'value;
                    }
                    Some(b']') if !obj => {
                        self.pos += 1;
                        self.close();
                    }
                    Some(b'}') if obj => {
                        self.pos += 1;
                        self.close();
                        no_repeats(&self.toks, self.b, top as usize)?;
                    }
                    _ => return Err(Fail::Json("expected `,` or the end of a container")),
                }
            }
        }
    }

    #[inline(always)]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    #[inline(always)]
    fn push(&mut self, kind: Kind, start: usize, end: usize, esc: bool) {
        let next = self.toks.len() as u32 + 1;
        self.toks.push(Tok {
            kind,
            esc,
            edited: false,
            start: start as u32,
            end: end as u32,
            next,
        });
    }

    /// Closes the innermost container, the byte after it at `pos`.
    #[inline(always)]
    fn close(&mut self) {
        if let Some(top) = self.open.pop() {
            let n = self.toks.len() as u32;
            let t = &mut self.toks[top as usize];
            t.next = n;
            t.end = self.pos as u32;
        }
    }

    /// An object key and its colon.
    #[inline(always)]
    fn key(&mut self) -> Result<(), Fail> {
        if self.b.get(self.pos) != Some(&b'"') {
            return Err(Fail::Json("expected a key"));
        }
        self.string()?;
        self.ws();
        if self.b.get(self.pos) != Some(&b':') {
            return Err(Fail::Json("expected `:`"));
        }
        self.pos += 1;
        Ok(())
    }

    #[inline(always)]
    fn string(&mut self) -> Result<(), Fail> {
        let b = self.b;
        let start = self.pos + 1;
        let mut i = start;
        let mut esc = false;
        loop {
            i = plain_run(b, i);
            match b.get(i) {
                Some(b'"') => break,
                Some(b'\\') => {
                    esc = true;
                    match b.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u')
                            if b.get(i + 2..i + 6)
                                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                        {
                            i += 6;
                        }
                        _ => {
                            self.pos = i;
                            return Err(Fail::Json("invalid escape"));
                        }
                    }
                }
                Some(_) => {
                    self.pos = i;
                    return Err(Fail::Json("control character in a string"));
                }
                None => {
                    self.pos = i;
                    return Err(Fail::Json("EOF while parsing a string"));
                }
            }
        }
        self.push(Kind::Str, start, i, esc);
        self.pos = i + 1;
        Ok(())
    }

    #[inline(always)]
    fn number(&mut self) -> Result<(), Fail> {
        let b = self.b;
        let start = self.pos;
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        let mut plain = true;
        if b[i] == b'-' {
            plain = false;
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => return Err(Fail::Json("invalid number")),
        }
        if b.get(i) == Some(&b'.') {
            plain = false;
            i += 1;
            if !digits(&mut i) {
                return Err(Fail::Json("invalid number"));
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            plain = false;
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digits(&mut i) {
                return Err(Fail::Json("invalid number"));
            }
        }
        self.pos = i;
        // What serde_json cannot hold (1e400) is refused as serde_json refuses it.
        if (!plain || i - start > 19) && number(&b[start..i]).is_none() {
            return Err(Fail::Json("number out of range"));
        }
        self.push(Kind::Num, start, i, false);
        Ok(())
    }

    #[inline(always)]
    fn literal(&mut self, word: &[u8], kind: Kind) -> Result<(), Fail> {
        if !self.b[self.pos..].starts_with(word) {
            return Err(Fail::Json("expected a value"));
        }
        self.push(kind, self.pos, self.pos + word.len(), false);
        self.pos += word.len();
        Ok(())
    }
}

/// The end of the run of string bytes from `i` that need no attention (not a quote, a
/// backslash or a control character), eight bytes at a time.
fn plain_run(b: &[u8], mut i: usize) -> usize {
    const LO: u64 = u64::from_le_bytes([1; 8]);
    const HI: u64 = LO << 7;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let (q, s) = (w ^ (LO * u64::from(b'"')), w ^ (LO * u64::from(b'\\')));
        // The lowest flagged byte is the first quote, backslash or byte below 0x20 (a borrow
        // can only flag bytes above a true one).
        let hits =
            (q.wrapping_sub(LO) & !q | s.wrapping_sub(LO) & !s | w.wrapping_sub(LO * 0x20) & !w)
                & HI;
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !matches!(b[i], b'"' | b'\\' | 0..=0x1f) {
        i += 1;
    }
    i
}

/// Refuses an object with a repeated key (readers disagree on which one counts: `JSON.parse`,
/// and rrweb's replayer after it, keep the last, others the first; an event passed on unchanged
/// keeps its repeats). No recorder writes them (`JSON.stringify` cannot).
fn no_repeats(toks: &[Tok], b: &[u8], obj: usize) -> Result<(), Fail> {
    let end = toks[obj].next as usize;
    let raw = |t: Tok| &b[t.start as usize..t.end as usize];
    // Up to 8 keys without escapes, each compared with those before it by length and end
    // bytes, then in full.
    let mut sigs = [0u32; 8];
    let mut keys = [0u32; 8];
    let (mut n, mut k) = (0, obj + 1);
    while k < end {
        let t = toks[k];
        if t.esc || n == sigs.len() {
            return no_repeats_sorted(toks, b, obj);
        }
        let key = raw(t);
        let ends = key
            .first()
            .map_or(0, |&c| u32::from(c) << 8 | u32::from(key[key.len() - 1]));
        let sig = (key.len() as u32) << 16 | ends;
        for (&other, &j) in sigs[..n].iter().zip(&keys[..n]) {
            if other == sig && raw(toks[j as usize]) == key {
                return Err(Fail::Json("an object repeats a key"));
            }
        }
        sigs[n] = sig;
        keys[n] = k as u32;
        n += 1;
        k = toks[k + 1].next as usize;
    }
    Ok(())
}

/// `no_repeats` of an object with many keys, or escaped ones: its keys unescaped and sorted.
fn no_repeats_sorted(toks: &[Tok], b: &[u8], obj: usize) -> Result<(), Fail> {
    let end = toks[obj].next as usize;
    let mut all = Vec::new();
    let mut k = obj + 1;
    while k < end {
        let t = toks[k];
        // Keys are valid UTF-8: the text is a `str` cut at ASCII quotes.
        let text = String::from_utf8_lossy(&b[t.start as usize..t.end as usize]);
        all.push(if t.esc {
            Cow::Owned(unescape(&text))
        } else {
            text
        });
        k = toks[k + 1].next as usize;
    }
    all.sort_unstable();
    if all.windows(2).any(|w| w[0] == w[1]) {
        Err(Fail::Json("an object repeats a key"))
    } else {
        Ok(())
    }
}

/// A number token as serde_json reads it.
pub(super) fn number(text: &[u8]) -> Option<serde_json::Number> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A string's text with its escapes undone; a UTF-16 surrogate without its other half (which
/// `JSON.stringify` writes for text cut inside an emoji) becomes U+FFFD, as
/// `String::from_utf16_lossy` makes it.
pub(super) fn unescape(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let hex = |i: usize| {
        b.get(i..i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
    };
    let (mut i, mut from) = (0, 0);
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(&raw[from..i]);
        let c = b.get(i + 1).copied().unwrap_or(b'\\');
        i += 2;
        match c {
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let u = hex(i).unwrap_or(0xFFFD);
                i += 4;
                let low = (b.get(i..i + 2) == Some(&b"\\u"[..]))
                    .then(|| hex(i + 2))
                    .flatten()
                    .filter(|l| (0xDC00..0xE000).contains(l));
                let c = match (u, low) {
                    (0xD800..=0xDBFF, Some(low)) => {
                        i += 6;
                        char::from_u32(0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00))
                    }
                    _ => char::from_u32(u),
                };
                out.push(c.unwrap_or('\u{FFFD}'));
            }
            other => out.push(char::from(other)),
        }
        from = i;
    }
    out.push_str(&raw[from..]);
    out
}

/// The event as serde_json's [`Value`](serde_json::Value), and its deepest nesting (tests read
/// events both ways and compare).
#[cfg(test)]
pub(super) fn parse(src: &str) -> Result<(serde_json::Value, usize), MaskError> {
    let doc = Doc::parse(src)?;
    let depth = assist_relay_proto::event::json_nesting(src, MAX_NESTING).unwrap_or(0);
    Ok((doc.value(0), depth))
}

/// A value written back as the masker writes a changed event (serde_json's pretty text of it,
/// parsed and written by `emit`).
#[cfg(test)]
pub(super) fn write(value: &serde_json::Value) -> Result<String, MaskError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| MaskError::Json(e.to_string()))?;
    Doc::parse(&text)?.write()
}

#[cfg(test)]
impl Doc<'_> {
    fn value(&self, i: usize) -> serde_json::Value {
        use serde_json::Value;
        match self.kind(i) {
            Kind::Null => Value::Null,
            Kind::False => Value::Bool(false),
            Kind::True => Value::Bool(true),
            Kind::Num => Value::Number(number(self.raw(i).as_bytes()).expect("checked")),
            Kind::Str => Value::String(self.str(i).into_owned()),
            Kind::Arr => Value::Array(self.items(i).map(|j| self.value(j)).collect()),
            Kind::Obj => Value::Object(
                self.pairs(i)
                    .map(|(k, v)| (self.str(k).into_owned(), self.value(v)))
                    .collect(),
            ),
        }
    }
}
