//! Text masking: how a string becomes stars ([`Style`]), for input values (every char) and for
//! text (whitespace kept), and masking the `value` attributes of an element.
//!
//! Pure functions on parsed events (`json`, changed through `emit`); which nodes are masked is
//! decided by `walk` and `mutation`.

use super::json::{Doc, Edit, Kind};

/// How a string is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    /// Every char becomes `*` (input values).
    Input,
    /// Every non-whitespace char becomes `*` (text).
    Text,
}

/// Masks every `value` attribute, in any ASCII case; whether one changed.
pub(super) fn mask_values(doc: &mut Doc<'_>, attrs: usize) -> bool {
    let values: Vec<usize> = doc
        .pairs(attrs)
        .filter(|&(k, _)| doc.str(k).eq_ignore_ascii_case("value"))
        .map(|(_, v)| v)
        .collect();
    let mut changed = false;
    for v in values {
        changed |= mask_value(doc, v, Style::Input);
    }
    changed
}

/// Masks a string (or number) token; whether it changed.
pub(super) fn mask_value(doc: &mut Doc<'_>, i: usize, style: Style) -> bool {
    let text = match doc.kind(i) {
        Kind::Str => {
            let s = doc.str(i);
            if !needs_masking(&s, style) {
                return false;
            }
            masked(&s, style)
        }
        Kind::Num => masked(&doc.number_text(i), style),
        _ => return false,
    };
    doc.edit(i, Edit::Str(text));
    true
}

fn needs_masking(s: &str, style: Style) -> bool {
    match style {
        Style::Input => s.chars().any(|c| c != '*'),
        Style::Text => s.chars().any(|c| c != '*' && !c.is_whitespace()),
    }
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
