//! The template language: `{{title}}`, `{{page_id}}`, `{{field.NAME}}` and
//! `{{#fields}}...{{/fields}}` blocks compiled into segments, and their expansion for one report,
//! every substituted value HTML-escaped (a report adds text, never markup).
//!
//! It knows nothing of HTML parsing (`html`) or of loading templates (the parent module).

use assist_relay_proto::NativePage;

/// Longest display field name, in bytes.
pub const MAX_FIELD_NAME: usize = 64;

fn is_field_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_FIELD_NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// One piece of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Lit(String),
    Title,
    PageId,
    Field(String),
    /// `{{name}}` inside a fields block.
    Name,
    /// `{{value}}` inside a fields block.
    Value,
    /// `{{#fields}}...{{/fields}}`.
    Fields(Vec<Seg>),
}

/// Whether the text between `{{` and `}}` looks like a placeholder (rather than, say, CSS).
fn is_tag(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-' | b'#' | b'/')
        })
}

pub(super) fn compile(src: &str) -> Result<Vec<Seg>, String> {
    let mut top = Vec::new();
    let mut block: Option<Vec<Seg>> = None;
    let mut lit = String::new();
    let mut rest = src;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some((tag, end)) = after
            .find("}}")
            .map(|end| (after[..end].trim(), end))
            .filter(|(tag, _)| is_tag(tag))
        else {
            lit.push_str(&rest[..start + 2]);
            rest = after;
            continue;
        };
        lit.push_str(&rest[..start]);
        rest = &after[end + 2..];
        let out = block.as_mut().unwrap_or(&mut top);
        if !lit.is_empty() {
            out.push(Seg::Lit(std::mem::take(&mut lit)));
        }
        let seg = match tag {
            "title" => Seg::Title,
            "page_id" => Seg::PageId,
            "name" | "value" if block.is_none() => {
                return Err(format!("{{{{{tag}}}}} outside {{{{#fields}}}}"));
            }
            "name" => Seg::Name,
            "value" => Seg::Value,
            "#fields" if block.is_some() => {
                return Err("{{#fields}} blocks don't nest".into());
            }
            "#fields" => {
                block = Some(Vec::new());
                continue;
            }
            "/fields" => match block.take() {
                Some(inner) => Seg::Fields(inner),
                None => return Err("{{/fields}} without {{#fields}}".into()),
            },
            _ => match tag.strip_prefix("field.") {
                Some(name) if is_field_name(name) => Seg::Field(name.to_owned()),
                _ => return Err(format!("unknown placeholder {{{{{tag}}}}}")),
            },
        };
        block.as_mut().unwrap_or(&mut top).push(seg);
    }
    lit.push_str(rest);
    if block.is_some() {
        return Err("{{#fields}} without {{/fields}}".into());
    }
    if !lit.is_empty() {
        top.push(Seg::Lit(lit));
    }
    Ok(top)
}

pub(super) fn expand(
    segs: &[Seg],
    page: &NativePage,
    item: Option<(&str, &str)>,
    out: &mut String,
) {
    for seg in segs {
        match seg {
            Seg::Lit(s) => out.push_str(s),
            Seg::Title => escape_into(&page.title, out),
            Seg::PageId => escape_into(&page.page_id, out),
            Seg::Field(k) => escape_into(page.fields.get(k).map_or("", String::as_str), out),
            Seg::Name => escape_into(item.map_or("", |i| i.0), out),
            Seg::Value => escape_into(item.map_or("", |i| i.1), out),
            Seg::Fields(inner) => {
                for (k, v) in &page.fields {
                    expand(inner, page, Some((k, v)), out);
                }
            }
        }
    }
}

/// HTML-escapes text for both element content and quoted attribute values.
fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// The template's text for `page`.
pub(super) fn expand_page(segs: &[Seg], page: &NativePage) -> String {
    let mut text = String::new();
    expand(segs, page, None, &mut text);
    text
}
