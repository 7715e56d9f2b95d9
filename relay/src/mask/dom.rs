//! Reading the serialized DOM as rrweb's replayer reads it: the per-id kind and flag bits the
//! state records, element kinds (`input` types, `textarea`, `select`), attribute names in any
//! ASCII case, values as JavaScript's strings and integers, the order of Mutation adds, and the
//! ids of a subtree.
//!
//! Pure functions on JSON values; no masking decisions (`walk`, `mutation`) and no state
//! (`state`).

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Map, Value};

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

/// An attribute by its name, any ASCII case: rrweb's replayer sets attributes with
/// `setAttribute`, which lowercases the name in an HTML document (`VALUE` is `value`).
pub(super) fn attr<'a>(attrs: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    attrs.get(name).or_else(|| {
        attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// The string JavaScript makes of a value where it wants one (`createElement`, `setAttribute`):
/// an array becomes its items joined by commas, so `["input"]` is the tag `input` and
/// `["rr-block"]` the class `rr-block`. Numbers and objects can spell no tag, type or class the
/// masker looks for, and read as empty.
pub(super) fn js_string(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Value::Null => Cow::Borrowed("null"),
        Value::Array(items) => {
            let mut out = String::new();
            // Iterative: depth is bounded by the nesting limit, but not by the stack.
            let mut stack: Vec<(&[Value], usize)> = vec![(items, 0)];
            while let Some((items, i)) = stack.pop() {
                let Some(item) = items.get(i) else { continue };
                stack.push((items, i + 1));
                if i > 0 {
                    out.push(',');
                }
                match item {
                    Value::Array(inner) => stack.push((inner, 0)),
                    Value::Null => {}
                    other => out.push_str(&js_string(other)),
                }
            }
            Cow::Owned(out)
        }
        Value::Number(_) | Value::Object(_) => Cow::Borrowed(""),
    }
}

/// A JSON number as the integer JavaScript reads: there `5`, `5.0`, `5e0` and `0.5e1` are the
/// same number (and `-0` equals `0`), so rrweb's replayer takes each for node id 5 or node
/// type 5. `None` for anything else (strings, fractions, negatives, past 2^53).
pub(super) fn int(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    (f.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&f)).then_some(f as u64)
}

pub(super) fn element_kind(tag: &str, input_type: Option<&Value>, has_value: bool) -> u8 {
    if tag.eq_ignore_ascii_case("input") {
        input_type_kind(input_type.map(js_string).as_deref())
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

/// The order to process Mutation adds in: parents before children, even when an add's parent is
/// added later in the same array (rrweb emits parents first; this only matters otherwise).
pub(super) fn add_order(adds: &[Value], parents: &[Option<u64>]) -> Vec<usize> {
    let n = adds.len();
    if n < 2 {
        return (0..n).collect();
    }
    let mut owner: HashMap<u64, usize> = HashMap::new();
    let mut ids = Vec::new();
    for (i, a) in adds.iter().enumerate() {
        if let Some(node) = a.get("node") {
            ids.clear();
            collect_ids(node, &mut ids);
            for &id in &ids {
                owner.entry(id).or_insert(i);
            }
        }
    }
    let dep = |i: usize| parents[i].and_then(|p| owner.get(&p).copied());
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
pub(super) fn collect_ids(tree: &Value, ids: &mut Vec<u64>) {
    let mut stack = vec![tree];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.iter()),
            Value::Object(map) => {
                if let Some(id) = map.get("id").and_then(int) {
                    ids.push(id);
                }
                if let Some(children) = map.get("childNodes") {
                    stack.push(children);
                }
            }
            _ => {}
        }
    }
}
