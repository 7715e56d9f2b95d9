//! Reading the serialized DOM as rrweb's replayer reads it: the per-id kind and flag bits the
//! state records, element kinds (`input` types, `textarea`, `select`), attribute names in any
//! ASCII case, values as JavaScript's strings and integers, the order of Mutation adds, and the
//! ids of a subtree.
//!
//! Pure functions on parsed events (`json`); no masking decisions (`walk`, `mutation`) and no
//! state (`state`).

use std::borrow::Cow;

use super::json::{number, Doc, Kind};

// Per-id state: a kind in the low nibble, flags above.
pub(super) const KIND: u8 = 0x0F;
/// `input` of a text-like type (text, email, tel, number, hidden, search, ...).
pub(super) const K_TEXT: u8 = 1;
pub(super) const K_PASSWORD: u8 = 2;
/// `input` type checkbox or radio.
pub(super) const K_CHECK: u8 = 3;
/// `input` type submit, button, reset or image: its value is a label, not typed data.
pub(super) const K_BUTTON: u8 = 4;
pub(super) const K_TEXTAREA: u8 = 5;
pub(super) const K_SELECT: u8 = 6;
/// Any other element that carries a `value` attribute (`option`, `li`, `progress`, ...).
pub(super) const K_OTHER: u8 = 7;
/// A text node inside a `textarea` (its value), remembered when all inputs are masked.
pub(super) const K_AREA_TEXT: u8 = 8;
/// Inside an `rr-mask` subtree (or the `rr-mask` element itself).
pub(super) const F_MASKED: u8 = 0x10;
/// An `rr-block` element: kept, its children dropped.
pub(super) const F_BLOCKED: u8 = 0x20;
/// Inside a dropped subtree: unknown to viewers.
pub(super) const F_DROPPED: u8 = 0x40;
/// Re-added somewhere visible although inside an inferred dropped range.
pub(super) const F_VISIBLE: u8 = 0x80;

/// Kinds whose `value` is data the user entered.
pub(super) fn is_value_input(kind: u8) -> bool {
    matches!(kind, K_TEXT | K_PASSWORD | K_CHECK | K_TEXTAREA | K_SELECT)
}

/// The fields of a serialized node the walk reads (each the index of its value).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct NodeFields {
    pub(super) id: Option<usize>,
    pub(super) node_type: Option<usize>,
    pub(super) tag_name: Option<usize>,
    pub(super) attributes: Option<usize>,
    pub(super) child_nodes: Option<usize>,
    pub(super) text_content: Option<usize>,
    pub(super) is_style: Option<usize>,
}

impl Doc<'_> {
    /// The fields of a node object, in one pass over its keys.
    pub(super) fn node_fields(&self, node: usize) -> NodeFields {
        let mut f = NodeFields::default();
        for (k, v) in self.pairs(node) {
            let key = if self.toks[k].esc {
                Cow::Owned(self.str(k).into_owned().into_bytes())
            } else {
                Cow::Borrowed(self.bytes(k))
            };
            let slot = match &*key {
                b"id" => &mut f.id,
                b"type" => &mut f.node_type,
                b"tagName" => &mut f.tag_name,
                b"attributes" => &mut f.attributes,
                b"childNodes" => &mut f.child_nodes,
                b"textContent" => &mut f.text_content,
                b"isStyle" => &mut f.is_style,
                _ => continue,
            };
            *slot = Some(v);
        }
        f
    }

    /// An attribute by its name, any ASCII case: rrweb's replayer sets attributes with
    /// `setAttribute`, which lowercases the name in an HTML document (`VALUE` is `value`).
    /// The exact name first, else the first in key order (as a sorted map would find it).
    pub(super) fn attr(&self, attrs: usize, name: &str) -> Option<usize> {
        let mut best: Option<(Cow<'_, str>, usize)> = None;
        for (k, v) in self.pairs(attrs) {
            let key = self.str(k);
            if !key.eq_ignore_ascii_case(name) {
                continue;
            }
            if key == name {
                return Some(v);
            }
            if best.as_ref().is_none_or(|(b, _)| key < *b) {
                best = Some((key, v));
            }
        }
        best.map(|(_, v)| v)
    }

    /// The string JavaScript makes of a value where it wants one (`createElement`,
    /// `setAttribute`): an array becomes its items joined by commas, so `["input"]` is the tag
    /// `input` and `["rr-block"]` the class `rr-block`. Numbers and objects can spell no tag,
    /// type or class the masker looks for, and read as empty.
    pub(super) fn js_string(&self, i: usize) -> Cow<'_, str> {
        match self.kind(i) {
            Kind::Str => self.str(i),
            Kind::True => Cow::Borrowed("true"),
            Kind::False => Cow::Borrowed("false"),
            Kind::Null => Cow::Borrowed("null"),
            Kind::Num | Kind::Obj => Cow::Borrowed(""),
            Kind::Arr => {
                let mut out = String::new();
                // Iterative: depth is bounded by the nesting limit, but not by the stack.
                let mut stack = vec![(self.items(i), true)];
                while let Some((items, first)) = stack.last_mut() {
                    let Some(item) = items.next() else {
                        stack.pop();
                        continue;
                    };
                    if !std::mem::replace(first, false) {
                        out.push(',');
                    }
                    match self.kind(item) {
                        Kind::Arr => stack.push((self.items(item), true)),
                        Kind::Null => {}
                        _ => out.push_str(&self.js_string(item)),
                    }
                }
                Cow::Owned(out)
            }
        }
    }

    /// A number as the integer JavaScript reads: there `5`, `5.0`, `5e0` and `0.5e1` are the
    /// same number (and `-0` equals `0`), so rrweb's replayer takes each for node id 5 or node
    /// type 5. `None` for anything else (strings, fractions, negatives, past 2^53).
    #[inline]
    pub(super) fn int(&self, i: usize) -> Option<u64> {
        if self.kind(i) != Kind::Num {
            return None;
        }
        let text = self.bytes(i);
        if text.len() <= 19 && text.iter().all(u8::is_ascii_digit) {
            return Some(text.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')));
        }
        let n = number(text)?;
        if let Some(n) = n.as_u64() {
            return Some(n);
        }
        let f = n.as_f64()?;
        (f.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&f)).then_some(f as u64)
    }

    /// `int` of a token that may be absent.
    #[inline]
    pub(super) fn int_in(&self, i: Option<usize>) -> Option<u64> {
        i.and_then(|i| self.int(i))
    }

    pub(super) fn element_kind(&self, tag: &str, input_type: Option<usize>, has_value: bool) -> u8 {
        if tag.eq_ignore_ascii_case("input") {
            input_type_kind(input_type.map(|t| self.js_string(t)).as_deref())
        } else if tag.eq_ignore_ascii_case("textarea") {
            K_TEXTAREA
        } else if tag.eq_ignore_ascii_case("select") {
            K_SELECT
        } else if has_value {
            K_OTHER
        } else {
            0
        }
    }

    /// The order to process Mutation adds in: parents before children, even when an add's
    /// parent is added later in the same array (rrweb emits parents first; this only matters
    /// otherwise).
    pub(super) fn add_order(&self, adds: &[usize], parents: &[Option<u64>]) -> Vec<usize> {
        let n = adds.len();
        if n < 2 {
            return (0..n).collect();
        }
        // Which add holds each id (the first, if several do), sorted by id.
        let mut owner: Vec<(u64, usize)> = Vec::new();
        let mut ids = Vec::new();
        for (i, &a) in adds.iter().enumerate() {
            if let Some(node) = self.get(a, "node") {
                ids.clear();
                self.collect_ids(node, &mut ids);
                owner.extend(ids.iter().map(|&id| (id, i)));
            }
        }
        owner.sort_unstable();
        owner.dedup_by_key(|o| o.0);
        let owner_of = |id: u64| {
            owner
                .binary_search_by_key(&id, |o| o.0)
                .ok()
                .map(|at| owner[at].1)
        };
        let dep = |i: usize| parents[i].and_then(owner_of);
        if (0..n).all(|i| dep(i).is_none_or(|j| j <= i)) {
            return (0..n).collect();
        }
        // Depth-first over "parent's add first", with an explicit stack; cycles are cut.
        let mut order = Vec::with_capacity(n);
        let mut done = vec![false; n];
        let mut visiting = vec![false; n];
        let mut stack = Vec::new();
        for start in 0..n {
            stack.push(start);
            while let Some(&k) = stack.last() {
                if done[k] {
                    stack.pop();
                    continue;
                }
                if !visiting[k] {
                    visiting[k] = true;
                    if let Some(j) = dep(k) {
                        if j != k && !done[j] && !visiting[j] {
                            stack.push(j);
                            continue;
                        }
                    }
                }
                order.push(k);
                done[k] = true;
                stack.pop();
            }
        }
        order
    }

    /// Every `id` in a serialized node tree (a node, or an array of nodes).
    pub(super) fn collect_ids(&self, tree: usize, ids: &mut Vec<u64>) {
        // The next token to read (the top of the stack, kept out of it: a leaf allocates no
        // stack), then the stack.
        let mut top = Some(tree);
        let mut stack = Vec::new();
        while let Some(v) = top.take().or_else(|| stack.pop()) {
            match self.kind(v) {
                Kind::Arr => stack.extend(self.items(v)),
                Kind::Obj => {
                    let f = self.node_fields(v);
                    if let Some(id) = self.int_in(f.id) {
                        ids.push(id);
                    }
                    top = f.child_nodes;
                }
                _ => {}
            }
        }
    }
}

pub(super) fn input_type_kind(input_type: Option<&str>) -> u8 {
    let t = input_type.unwrap_or("").trim();
    let is = |name: &str| t.eq_ignore_ascii_case(name);
    if is("password") {
        K_PASSWORD
    } else if is("checkbox") || is("radio") {
        K_CHECK
    } else if is("submit") || is("button") || is("reset") || is("image") {
        K_BUTTON
    } else {
        K_TEXT
    }
}

/// `Doc::js_string` of a value (for tests).
#[cfg(test)]
pub(super) fn js_string(v: &serde_json::Value) -> String {
    let text = v.to_string();
    let doc = Doc::parse(&text).expect("a value's text parses");
    doc.js_string(0).into_owned()
}
