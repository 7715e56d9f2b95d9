//! JSON values rendered with random (valid) formatting, and rrweb-shaped events as exact text.

use proptest::collection::vec;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// JSON values rendered with random (valid) formatting
// ---------------------------------------------------------------------------------------------

/// A JSON value whose text rendering we control exactly.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<J>),
    /// Keys are unique.
    Obj(Vec<(String, J)>),
}

impl J {
    pub fn get(&self, key: &str) -> Option<&J> {
        match self {
            J::Obj(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

fn dedupe(kv: Vec<(String, J)>) -> Vec<(String, J)> {
    let mut seen = std::collections::HashSet::new();
    kv.into_iter()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect()
}

/// Unicode text including quotes, backslashes, control characters and astral characters.
pub fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"\\\\/\u{0}-\u{1f}a-zé€😀\u{2028}\u{feff}]{0,16}",
    ]
}

pub fn arb_json_key() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-zA-Z]{1,10}", 1 => arb_text()]
}

pub fn arb_j() -> impl Strategy<Value = J> {
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::Int),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(J::Float),
        arb_text().prop_map(J::Str),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(J::Arr),
            vec((arb_json_key(), inner), 0..6).prop_map(|kv| J::Obj(dedupe(kv))),
        ]
    })
}

/// Renders JSON text, taking every formatting decision (escapes, whitespace, number notation)
/// from `seeds`, so the same value has many valid spellings.
pub struct Renderer<'s> {
    seeds: &'s [u8],
    next: usize,
    pub out: String,
}

impl<'s> Renderer<'s> {
    pub fn new(seeds: &'s [u8]) -> Self {
        Renderer {
            seeds,
            next: 0,
            out: String::new(),
        }
    }

    fn seed(&mut self) -> u8 {
        if self.seeds.is_empty() {
            return 0;
        }
        let s = self.seeds[self.next % self.seeds.len()];
        self.next += 1;
        s.wrapping_add((self.next / self.seeds.len()) as u8)
    }

    fn ws(&mut self) {
        const WS: [&str; 8] = ["", "", "", "", " ", "\n", "\t ", "\r\n  "];
        let w = WS[usize::from(self.seed() % 8)];
        self.out.push_str(w);
    }

    fn hex4(&mut self, unit: u16) {
        if self.seed() & 1 == 0 {
            self.out.push_str(&format!("\\u{unit:04x}"));
        } else {
            self.out.push_str(&format!("\\u{unit:04X}"));
        }
    }

    fn escaped(&mut self, c: char) {
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
            let u = *unit;
            self.hex4(u);
        }
    }

    pub fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            let escape = self.seed() < 86; // about one char in three
            match c {
                '"' if !escape => self.out.push_str("\\\""),
                '\\' if !escape => self.out.push_str("\\\\"),
                '/' if escape => self.out.push_str("\\/"),
                '\n' if !escape => self.out.push_str("\\n"),
                '\r' if !escape => self.out.push_str("\\r"),
                '\t' if !escape => self.out.push_str("\\t"),
                '\u{8}' if !escape => self.out.push_str("\\b"),
                '\u{c}' if !escape => self.out.push_str("\\f"),
                c if escape || c < ' ' || c == '"' || c == '\\' => self.escaped(c),
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    pub fn float(&mut self, f: f64) {
        let text = match self.seed() % 3 {
            0 => format!("{f}"),
            1 => format!("{f:e}"),
            _ => format!("{f:E}"),
        };
        self.out.push_str(&text);
    }

    pub fn value(&mut self, v: &J) {
        match v {
            J::Null => self.out.push_str("null"),
            J::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            J::Int(i) => self.out.push_str(&i.to_string()),
            J::Float(f) => self.float(*f),
            J::Str(s) => self.string(s),
            J::Arr(items) => {
                self.out.push('[');
                self.ws();
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.ws();
                        self.out.push(',');
                        self.ws();
                    }
                    self.value(item);
                }
                self.ws();
                self.out.push(']');
            }
            J::Obj(kv) => {
                self.out.push('{');
                self.ws();
                for (i, (k, v)) in kv.iter().enumerate() {
                    if i > 0 {
                        self.ws();
                        self.out.push(',');
                        self.ws();
                    }
                    self.string(k);
                    self.ws();
                    self.out.push(':');
                    self.ws();
                    self.value(v);
                }
                self.ws();
                self.out.push('}');
            }
        }
    }
}

/// Renders `v` with the formatting picked by `seeds`.
pub fn render(v: &J, seeds: &[u8]) -> String {
    let mut r = Renderer::new(seeds);
    r.value(v);
    r.out
}

// ---------------------------------------------------------------------------------------------
// rrweb-shaped events
// ---------------------------------------------------------------------------------------------

/// An rrweb-shaped event as exact JSON text, with what a head scan must read from it.
#[derive(Debug, Clone)]
pub struct RrwebEvent {
    pub json: String,
    pub kind: u8,
    pub source: Option<u8>,
    pub timestamp: Option<f64>,
}

/// An rrweb-shaped event: a JSON object with an integer `type` in 0..=7, for type 3 a `data`
/// object with an optional `source`, for other types any `data` (or none), an optional numeric
/// `timestamp`, arbitrary extra fields, keys in any order, rendered with random escapes and
/// whitespace (none around the whole value).
pub fn arb_rrweb_event() -> impl Strategy<Value = RrwebEvent> {
    let incremental_data = (
        proptest::option::of(0u8..=16),
        vec(
            (
                arb_json_key().prop_filter("not source", |k| k != "source"),
                arb_j(),
            ),
            0..4,
        ),
    )
        .prop_map(|(source, rest)| {
            let mut kv = Vec::new();
            if let Some(s) = source {
                kv.push(("source".to_owned(), J::Int(i64::from(s))));
            }
            kv.extend(rest);
            J::Obj(dedupe(kv))
        })
        .boxed();
    let data = (0u8..=7).prop_flat_map(move |kind| {
        let data = if kind == 3 {
            proptest::option::of(incremental_data.clone()).boxed()
        } else {
            proptest::option::of(arb_j()).boxed()
        };
        (Just(kind), data)
    });
    let timestamp = proptest::option::of(prop_oneof![
        (0u64..(1 << 53)).prop_map(|t| J::Int(t as i64)),
        (0u64..(1 << 42), 0u32..1000)
            .prop_map(|(ms, frac)| J::Float(ms as f64 + f64::from(frac) / 1000.0)),
    ]);
    let extra = vec(
        (
            arb_json_key().prop_filter("not a head field", |k| {
                !matches!(k.as_str(), "type" | "data" | "timestamp")
            }),
            arb_j(),
        ),
        0..4,
    );
    (data, timestamp, extra, vec(any::<u8>(), 1..64))
        .prop_flat_map(|((kind, data), timestamp, extra, seeds)| {
            let mut kv = vec![("type".to_owned(), J::Int(i64::from(kind)))];
            if let Some(d) = data {
                kv.push(("data".to_owned(), d));
            }
            if let Some(t) = timestamp {
                kv.push(("timestamp".to_owned(), t));
            }
            kv.extend(extra);
            let kv = dedupe(kv);
            (Just(kind), Just(kv).prop_shuffle(), Just(seeds))
        })
        .prop_map(|(kind, kv, seeds)| {
            let event = J::Obj(kv);
            let source = match event.get("data").and_then(|d| d.get("source")) {
                Some(J::Int(s)) => u8::try_from(*s).ok(),
                _ => None,
            };
            let timestamp = match event.get("timestamp") {
                Some(J::Int(t)) => Some(*t as f64),
                Some(J::Float(t)) => Some(*t),
                _ => None,
            };
            // The renderer puts whitespace only inside the object, never around it.
            let json = render(&event, &seeds);
            RrwebEvent {
                json,
                kind,
                source,
                timestamp,
            }
        })
}
