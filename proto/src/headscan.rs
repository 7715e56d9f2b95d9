//! The fast path of [`crate::event::EventHead::scan`]: one byte pass over an event that is
//! already valid JSON (a [`serde_json::value::RawValue`]), reading the top-level keys, `type`,
//! `data.source` and `timestamp`, skipping every other value without parsing it, and checking the
//! nesting bound on the way.
//!
//! It decides only what it can decide exactly as the serde scan does; anything else (a key with
//! an escape, a number that is not a plain non-negative integer where a number is read, a
//! repeated `type`, `data` or `source`, nesting past the bound, a missing `type`) returns `None`,
//! and the caller runs the serde scan, which gives the verdict and the error. So the fast path
//! can only ever agree with the serde scan (`tests` check it on every case they have, and
//! `proto/tests/event_head.rs` on random events).

/// What the fast path read: rrweb type, `data.source` (`None`: absent or not a source), timestamp.
pub(crate) struct Head {
    pub(crate) kind: u8,
    pub(crate) source: Option<u8>,
    pub(crate) timestamp: Option<f64>,
}

/// Reads the head of `src` (valid JSON text, an object) or gives up (`None`).
pub(crate) fn scan(src: &str, max_nesting: usize) -> Option<Head> {
    let mut s = Scanner {
        b: src.as_bytes(),
        i: 0,
        max: max_nesting,
    };
    s.ws();
    s.expect(b'{')?;
    let (mut kind, mut data_seen, mut source, mut timestamp) = (None, false, None, None);
    s.ws();
    if s.peek()? == b'}' {
        return None; // no `type`
    }
    loop {
        let key = s.key()?;
        s.ws();
        match key {
            b"type" => {
                if kind.is_some() {
                    return None;
                }
                kind = Some(u8::try_from(s.plain_uint()?).ok()?);
            }
            b"data" => {
                if data_seen {
                    return None;
                }
                data_seen = true;
                source = s.data()?;
            }
            b"timestamp" => {
                // The last one counts; a non-number is read as absent.
                timestamp = match s.peek()? {
                    b'-' | b'0'..=b'9' => {
                        let v = s.plain_uint()?;
                        if v >= 1 << 53 {
                            return None;
                        }
                        Some(v as f64)
                    }
                    _ => {
                        s.skip_value(1)?;
                        None
                    }
                };
            }
            _ => s.skip_value(1)?,
        }
        s.ws();
        match s.next()? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
    }
    Some(Head {
        kind: kind?,
        source,
        timestamp,
    })
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    max: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// An object key without escapes, then its `:`.
    fn key(&mut self) -> Option<&'a [u8]> {
        self.ws();
        self.expect(b'"')?;
        let start = self.i;
        loop {
            match self.next()? {
                b'"' => break,
                b'\\' => return None,
                _ => {}
            }
        }
        let key = &self.b[start..self.i - 1];
        self.ws();
        self.expect(b':')?;
        Some(key)
    }

    /// A number written as a plain non-negative integer of at most 19 digits (what serde_json
    /// hands to `visit_u64`); anything else gives up.
    fn plain_uint(&mut self) -> Option<u64> {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        let digits = &self.b[start..self.i];
        if digits.is_empty() || digits.len() > 19 {
            return None;
        }
        // A fraction or an exponent follows: not a plain integer.
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        digits.iter().try_fold(0u64, |v, &d| {
            v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
    }

    /// `data`: an object's `source` (`Some(None)`: absent or not a source); any other value has
    /// none.
    fn data(&mut self) -> Option<Option<u8>> {
        if self.peek()? != b'{' {
            self.skip_value(1)?;
            return Some(None);
        }
        // The event is depth 1, `data` depth 2.
        if self.max < 2 {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(None);
        }
        let mut source: Option<Option<u8>> = None;
        loop {
            let key = self.key()?;
            self.ws();
            if key == b"source" {
                if source.is_some() {
                    return None; // repeated: the serde scan calls it ambiguous
                }
                source = Some(match self.peek()? {
                    b'0'..=b'9' => u8::try_from(self.plain_uint()?).ok(),
                    // A negative number may be `-0`, which the serde scan calls ambiguous.
                    b'-' => return None,
                    _ => {
                        self.skip_value(2)?;
                        None
                    }
                });
            } else {
                self.skip_value(2)?;
            }
            self.ws();
            match self.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
        Some(source.flatten())
    }

    /// Skips one value whose container sits at nesting `depth` (the top-level object is 1),
    /// giving up past the nesting bound.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.skip_string_rest()
            }
            b'{' | b'[' => {
                let mut d = depth;
                loop {
                    match self.next()? {
                        b'{' | b'[' => {
                            d += 1;
                            if d > self.max {
                                return None;
                            }
                        }
                        b'}' | b']' => {
                            d -= 1;
                            if d == depth {
                                return Some(());
                            }
                        }
                        b'"' => self.skip_string_rest()?,
                        _ => {}
                    }
                }
            }
            _ => {
                while !matches!(
                    self.peek()?,
                    b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'
                ) {
                    self.i += 1;
                }
                Some(())
            }
        }
    }

    /// After an opening quote: past the closing one.
    fn skip_string_rest(&mut self) -> Option<()> {
        loop {
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => {
                    self.next()?;
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::scan;

    /// The common rrweb shapes are decided here, without serde (the point of this module; that
    /// the verdicts equal serde's is `proto/tests/event_head.rs`'s job).
    #[test]
    fn common_events_take_the_fast_path() {
        for src in [
            r#"{"type":3,"data":{"source":2,"type":2,"id":57,"x":120,"y":88},"timestamp":1718000000123}"#,
            r#"{"type":3,"data":{"source":0,"texts":[],"attributes":[{"id":9,"attributes":{"style":"a"}}],"removes":[],"adds":[]},"timestamp":1}"#,
            r#"{"type":4,"data":{"href":"https://x/\"q\"","width":1,"height":2},"timestamp":1}"#,
            r#"{"type":2,"data":{"node":{"type":0,"childNodes":[],"id":1},"initialOffset":{"left":0,"top":0}},"timestamp":1}"#,
        ] {
            let h = scan(src, 1024).expect(src);
            assert!(h.timestamp.is_some());
        }
        let h = scan(r#"{"type":3,"data":{"source":5,"text":"x"}}"#, 1024).expect("input");
        assert_eq!((h.kind, h.source), (3, Some(5)));
    }
}
