//! Text masking: how a string becomes stars ([`Style`]), for input values (every char) and for
//! text (whitespace kept), and masking the `value` attributes of an element.
//!
//! Pure functions on JSON values; which nodes are masked is decided by `walk` and `mutation`.

use serde_json::{Map, Value};

/// How a string is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    /// Every char becomes `*` (input values).
    Input,
    /// Every non-whitespace char becomes `*` (text).
    Text,
}

/// Masks every `value` attribute, in any ASCII case; whether one changed.
pub(super) fn mask_values(attrs: &mut Map<String, Value>) -> bool {
    let mut changed = false;
    for (k, v) in attrs.iter_mut() {
        if k.eq_ignore_ascii_case("value") {
            changed |= mask_value(v, Style::Input);
        }
    }
    changed
}

/// Masks a string (or number) value in place; whether it changed.
pub(super) fn mask_value(v: &mut Value, style: Style) -> bool {
    match v {
        Value::String(s) => mask_string(s, style),
        Value::Number(n) => {
            *v = Value::String(masked(&n.to_string(), style));
            true
        }
        _ => false,
    }
}

pub(super) fn mask_string(s: &mut String, style: Style) -> bool {
    let needed = match style {
        Style::Input => s.chars().any(|c| c != '*'),
        Style::Text => s.chars().any(|c| c != '*' && !c.is_whitespace()),
    };
    if needed {
        *s = masked(s, style);
    }
    needed
}

pub(super) fn masked(s: &str, style: Style) -> String {
    match style {
        Style::Input => "*".repeat(s.chars().count()),
        Style::Text => s
            .chars()
            .map(|c| if c.is_whitespace() { c } else { '*' })
            .collect(),
    }
}
