//! Native-page placeholders: when the customer's app leaves an H5 page for a native screen, the
//! relay shows agents a synthesized page ("the customer is on screen X") instead of a frozen
//! replay.
//!
//! A [`NativePage`] report is rendered through an HTML template into two rrweb events, a Meta
//! (`type` 4) and a FullSnapshot (`type` 2), which become the room's new keyframe.
//!
//! # Templates
//! Plain HTML with placeholders, loaded by [`Templates::load`] (the built-in `native-page`
//! template plus every `*.html` of an optional directory, file stem = template name):
//! - `{{title}}`, `{{page_id}}`: the report's title and screen id;
//! - `{{field.NAME}}`: the display field `NAME` (empty when the report doesn't carry it);
//! - `{{#fields}}...{{/fields}}`: the enclosed text once per display field, in key order, with
//!   `{{name}}` and `{{value}}` inside (blocks don't nest).
//!
//! Every substituted value is HTML-escaped before the page is parsed, so a report can only ever
//! add text, never markup. Text of the form `{{...}}` that isn't a placeholder name (say CSS such
//! as `a{{`) is left as is; a placeholder-like name that isn't known (`{{titel}}`) is an error at
//! load time. The page is parsed with html5ever (via `scraper`) and converted to rrweb-snapshot's
//! serialized node tree; `<script>` elements and `on*` event-handler attributes are dropped (a
//! placeholder never runs code).

use std::collections::BTreeMap;
use std::path::Path;

use scraper::{ElementRef, Html, Node};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

/// The template used when a report names none.
pub const DEFAULT_TEMPLATE: &str = "native-page";
/// Longest screen id or template name, in bytes.
pub const MAX_PAGE_ID: usize = 128;
/// Longest title, in bytes.
pub const MAX_TITLE: usize = 256;
/// Most display fields.
pub const MAX_FIELDS: usize = 16;
/// Longest display field name, in bytes.
pub const MAX_FIELD_NAME: usize = 64;
/// Longest display field value, in bytes.
pub const MAX_FIELD_VALUE: usize = 1024;
/// Largest template file, in bytes.
pub const MAX_TEMPLATE_BYTES: u64 = 256 * 1024;
/// Deepest node nesting a template may produce (the document is depth 0). Keeps the snapshot
/// well inside JSON parsers' recursion limits (serde_json's is 128, two levels per node).
pub const MAX_DEPTH: usize = 48;

const BUILTIN: &str = include_str!("../templates/native-page.html");
const SVG_NS: &str = "http://www.w3.org/2000/svg";

/// What the app (or its backend) reports about the native screen the customer is on (the
/// protocol's type; its `validate` enforces the limits above).
pub use assist_relay_proto::NativePage;

/// Why a placeholder can't be rendered or the templates can't be loaded.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// The report breaks a rule (id syntax, sizes).
    #[error("invalid native page: {0}")]
    Invalid(String),
    /// The report names a template that isn't loaded.
    #[error("unknown template {0:?}")]
    UnknownTemplate(String),
    /// A template is malformed (placeholder syntax, size, nesting).
    #[error("template: {0}")]
    Template(String),
    /// The template directory or a file in it can't be read.
    #[error("template i/o: {0}")]
    Io(String),
}

/// Loaded templates: the built-in default (`templates/native-page.html`) plus every `*.html` in an
/// optional directory (file stem = template name; a file named `native-page.html` overrides the
/// default).
#[derive(Debug, Clone)]
pub struct Templates {
    by_name: BTreeMap<String, Vec<Seg>>,
}

impl Templates {
    /// The built-in template only.
    #[allow(clippy::expect_used)]
    pub fn builtin() -> Templates {
        let segs = compile(BUILTIN).expect("the built-in template compiles");
        let mut by_name = BTreeMap::new();
        by_name.insert(DEFAULT_TEMPLATE.to_owned(), segs);
        Templates { by_name }
    }

    /// The built-in template plus every `*.html` file in `dir`. Each template is compiled and
    /// rendered once with a sample report, so a broken template fails here rather than when a
    /// customer reaches a native screen.
    pub fn load(dir: Option<&Path>) -> Result<Templates, NativeError> {
        let mut t = Templates::builtin();
        let Some(dir) = dir else {
            return Ok(t);
        };
        let io = |p: &Path, e: std::io::Error| NativeError::Io(format!("{}: {e}", p.display()));
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let path = entry.map_err(|e| io(dir, e))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("html") {
                continue;
            }
            let meta = std::fs::metadata(&path).map_err(|e| io(&path, e))?;
            if !meta.is_file() {
                continue;
            }
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|s| is_name(s))
                .ok_or_else(|| {
                    NativeError::Template(format!(
                        "{}: a template's file name must be 1 to {MAX_PAGE_ID} of A-Z a-z 0-9 . _ : - then .html",
                        path.display()
                    ))
                })?
                .to_owned();
            if meta.len() > MAX_TEMPLATE_BYTES {
                return Err(NativeError::Template(format!(
                    "{}: larger than {MAX_TEMPLATE_BYTES} bytes",
                    path.display()
                )));
            }
            let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| NativeError::Template(format!("{}: not UTF-8", path.display())))?;
            let segs = compile(&text)
                .map_err(|e| NativeError::Template(format!("{}: {e}", path.display())))?;
            let sample = NativePage {
                page_id: "sample".into(),
                title: "Sample".into(),
                template: None,
                fields: BTreeMap::from([("field".into(), "value".into())]),
            };
            snapshot(&segs, &sample)
                .map_err(|e| NativeError::Template(format!("{}: {e}", path.display())))?;
            t.by_name.insert(name, segs);
        }
        Ok(t)
    }

    /// Names of the loaded templates, sorted.
    pub fn names(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }

    /// Renders the placeholder as two rrweb events (Meta, FullSnapshot), as JSON text.
    ///
    /// The Meta's href is `native://<page_id>`; `width`/`height` are the viewport to report (the
    /// last H5 Meta's, or 390x844); both events carry `timestamp_ms`.
    pub fn render(
        &self,
        page: &NativePage,
        width: u32,
        height: u32,
        timestamp_ms: u64,
    ) -> Result<(Box<RawValue>, Box<RawValue>), NativeError> {
        page.validate().map_err(NativeError::Invalid)?;
        let name = page.template.as_deref().unwrap_or(DEFAULT_TEMPLATE);
        let segs = self
            .by_name
            .get(name)
            .ok_or_else(|| NativeError::UnknownTemplate(name.to_owned()))?;
        let node = snapshot(segs, page).map_err(NativeError::Template)?;
        let meta = json!({
            "type": 4,
            "data": {"href": format!("native://{}", page.page_id), "width": width, "height": height},
            "timestamp": timestamp_ms,
        });
        let full = json!({
            "type": 2,
            "data": {"node": node, "initialOffset": {"left": 0, "top": 0}},
            "timestamp": timestamp_ms,
        });
        Ok((raw(&meta)?, raw(&full)?))
    }
}

fn raw(v: &Value) -> Result<Box<RawValue>, NativeError> {
    serde_json::to_string(v)
        .and_then(RawValue::from_string)
        .map_err(|e| NativeError::Template(format!("serializing the event: {e}")))
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_PAGE_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn is_field_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_FIELD_NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

// ---- template language ----

/// One piece of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
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

fn compile(src: &str) -> Result<Vec<Seg>, String> {
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

fn expand(segs: &[Seg], page: &NativePage, item: Option<(&str, &str)>, out: &mut String) {
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

// ---- HTML to rrweb-snapshot ----

/// Expands the template for `page`, parses it and serializes the document as rrweb-snapshot
/// nodes.
fn snapshot(segs: &[Seg], page: &NativePage) -> Result<Value, String> {
    let mut text = String::new();
    expand(segs, page, None, &mut text);
    let html = Html::parse_document(&text);
    let mut ids = Ids(0);
    let id = ids.next();
    let mut children = Vec::new();
    for child in html.tree.root().children() {
        if let Some(v) = convert(child.value(), ElementRef::wrap(child), None, 1, &mut ids)? {
            children.push(v);
        }
    }
    // html5ever's QuirksMode isn't re-exported by scraper; its variants are
    // Quirks / LimitedQuirks / NoQuirks, and only Quirks is the DOM's "BackCompat".
    let compat = if format!("{:?}", html.quirks_mode) == "Quirks" {
        "BackCompat"
    } else {
        "CSS1Compat"
    };
    Ok(json!({"type": 0, "childNodes": children, "compatMode": compat, "id": id}))
}

/// Document-order ids, from 1.
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

/// Serializes one node (and, for an element, its subtree). `None` for nodes rrweb wouldn't see
/// or that a placeholder drops (scripts, processing instructions).
fn convert(
    node: &Node,
    el: Option<ElementRef<'_>>,
    parent_tag: Option<&str>,
    depth: usize,
    ids: &mut Ids,
) -> Result<Option<Value>, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} nodes"));
    }
    let v = match node {
        Node::Doctype(d) => json!({
            "type": 1,
            "name": d.name(),
            "publicId": d.public_id(),
            "systemId": d.system_id(),
            "id": ids.next(),
        }),
        Node::Text(t) => {
            let mut m = Map::new();
            m.insert("type".into(), 3.into());
            m.insert("textContent".into(), (*t.text).into());
            if parent_tag == Some("style") {
                m.insert("isStyle".into(), true.into());
            }
            m.insert("id".into(), ids.next().into());
            Value::Object(m)
        }
        Node::Comment(c) => json!({"type": 5, "textContent": &*c.comment, "id": ids.next()}),
        Node::Element(e) => {
            let Some(el) = el else {
                return Ok(None);
            };
            let tag = e.name().to_ascii_lowercase();
            if tag == "script" {
                return Ok(None);
            }
            let mut attributes = Map::new();
            for (name, value) in &e.attrs {
                let key = match &name.prefix {
                    Some(p) => format!("{}:{}", &**p, &*name.local),
                    None => name.local.to_string(),
                };
                if key.len() > 2 && key[..2].eq_ignore_ascii_case("on") {
                    continue;
                }
                attributes.insert(key, Value::String(value.to_string()));
            }
            let id = ids.next();
            let mut children = Vec::new();
            for child in el.children() {
                if let Some(v) = convert(
                    child.value(),
                    ElementRef::wrap(child),
                    Some(&tag),
                    depth + 1,
                    ids,
                )? {
                    children.push(v);
                }
            }
            let mut m = Map::new();
            m.insert("type".into(), 2.into());
            m.insert("tagName".into(), tag.into());
            m.insert("attributes".into(), Value::Object(attributes));
            m.insert("childNodes".into(), children.into());
            if &*e.name.ns == SVG_NS {
                m.insert("isSVG".into(), true.into());
            }
            m.insert("id".into(), id.into());
            Value::Object(m)
        }
        Node::Document | Node::Fragment | Node::ProcessingInstruction(_) => return Ok(None),
    };
    Ok(Some(v))
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn page(id: &str, title: &str) -> NativePage {
        NativePage {
            page_id: id.into(),
            title: title.into(),
            template: None,
            fields: BTreeMap::new(),
        }
    }

    fn checkout() -> NativePage {
        let mut p = page("checkout", "Payment");
        p.fields.insert("amount".into(), "¥ 50,000".into());
        p.fields.insert("step".into(), "2 of 3".into());
        p
    }

    fn parse(raw: &RawValue) -> Value {
        serde_json::from_str(raw.get()).expect("valid JSON")
    }

    /// Every node of a serialized tree, in document order.
    fn walk<'a>(n: &'a Value, out: &mut Vec<&'a Value>) {
        out.push(n);
        if let Some(kids) = n["childNodes"].as_array() {
            for k in kids {
                walk(k, out);
            }
        }
    }

    fn nodes(full: &Value) -> Vec<&Value> {
        let mut out = Vec::new();
        walk(&full["data"]["node"], &mut out);
        out
    }

    fn texts(full: &Value) -> Vec<String> {
        nodes(full)
            .into_iter()
            .filter(|n| n["type"] == 3)
            .map(|n| n["textContent"].as_str().expect("text").to_owned())
            .collect()
    }

    fn tags(full: &Value) -> Vec<String> {
        nodes(full)
            .into_iter()
            .filter(|n| n["type"] == 2)
            .map(|n| n["tagName"].as_str().expect("tag").to_owned())
            .collect()
    }

    #[test]
    fn default_template_renders() {
        let t = Templates::builtin();
        assert_eq!(t.names(), vec!["native-page".to_owned()]);
        let (meta, full) = t
            .render(&checkout(), 412, 915, 1_700_000_000_123)
            .expect("renders");
        let meta = parse(&meta);
        assert_eq!(
            meta,
            json!({"type": 4, "data": {"href": "native://checkout", "width": 412, "height": 915}, "timestamp": 1_700_000_000_123u64})
        );
        let full = parse(&full);
        assert_eq!(full["type"], 2);
        assert_eq!(full["timestamp"], 1_700_000_000_123u64);
        assert_eq!(full["data"]["initialOffset"], json!({"left": 0, "top": 0}));
        let root = &full["data"]["node"];
        assert_eq!(root["type"], 0);
        assert_eq!(root["id"], 1);
        assert_eq!(root["compatMode"], "CSS1Compat");
        assert_eq!(
            root["childNodes"][0],
            json!({"type": 1, "name": "html", "publicId": "", "systemId": "", "id": 2})
        );

        // Ids are 1..=n in document order.
        let all = nodes(&full);
        let ids: Vec<u64> = all.iter().map(|n| n["id"].as_u64().expect("id")).collect();
        assert_eq!(ids, (1..=all.len() as u64).collect::<Vec<_>>());

        let texts = texts(&full);
        for want in [
            "Payment",
            "checkout",
            "amount",
            "¥ 50,000",
            "step",
            "2 of 3",
            "App screen",
        ] {
            assert!(texts.iter().any(|t| t == want), "no text node {want:?}");
        }
        assert!(texts.iter().any(|t| t.contains("native screen of the app")));
        let tags = tags(&full);
        assert!(!tags.iter().any(|t| t == "script"));
        for want in [
            "html", "head", "style", "body", "h1", "dl", "dt", "dd", "svg",
        ] {
            assert!(tags.iter().any(|t| t == want), "no <{want}>");
        }
        // Fields are listed in key order.
        let dts: Vec<&str> = all
            .iter()
            .filter(|n| n["tagName"] == "dt")
            .map(|n| n["childNodes"][0]["textContent"].as_str().expect("dt text"))
            .collect();
        assert_eq!(dts, ["amount", "step"]);
        // Style text is flagged; svg elements are flagged.
        let style = all.iter().find(|n| n["tagName"] == "style").expect("style");
        assert_eq!(style["childNodes"][0]["isStyle"], true);
        for n in all
            .iter()
            .filter(|n| n["tagName"] == "svg" || n["tagName"] == "rect")
        {
            assert_eq!(n["isSVG"], true);
        }
        let h1 = all.iter().find(|n| n["tagName"] == "h1").expect("h1");
        assert!(h1.get("isSVG").is_none());
    }

    #[test]
    fn builtin_template_is_small_and_self_contained() {
        assert!(BUILTIN.len() < 3 * 1024, "{} bytes", BUILTIN.len());
        let lower = BUILTIN.to_ascii_lowercase();
        for bad in ["<script", "http:", "https:", "<link", "url(", "@import"] {
            assert!(!lower.contains(bad), "built-in template contains {bad}");
        }
    }

    #[test]
    fn defaults_when_no_title_or_fields() {
        let (_, full) = Templates::builtin()
            .render(&page("home", ""), 390, 844, 1)
            .expect("renders");
        let full = parse(&full);
        let all = nodes(&full);
        let h1 = all.iter().find(|n| n["tagName"] == "h1").expect("h1");
        assert_eq!(h1["childNodes"], json!([]));
        let dl = all.iter().find(|n| n["tagName"] == "dl").expect("dl");
        assert_eq!(dl["childNodes"], json!([]));
    }

    #[test]
    fn values_are_escaped() {
        let evil = "<img src=x onerror=alert(1)>";
        let mut p = page("checkout", evil);
        p.fields
            .insert("x".into(), "</dd><script>alert(1)</script>".into());
        p.fields.insert("y".into(), "\"' & <b>".into());
        let (_, full) = Templates::builtin()
            .render(&p, 390, 844, 1)
            .expect("renders");
        let full = parse(&full);
        let tags = tags(&full);
        assert!(!tags.iter().any(|t| t == "img" || t == "script" || t == "b"));
        let texts = texts(&full);
        assert!(texts.iter().any(|t| t == evil), "title as text: {texts:?}");
        assert!(texts.iter().any(|t| t == "</dd><script>alert(1)</script>"));
        assert!(texts.iter().any(|t| t == "\"' & <b>"));
        // The <title> also shows the raw text, decoded once.
        let all = nodes(&full);
        let title = all.iter().find(|n| n["tagName"] == "title").expect("title");
        assert_eq!(title["childNodes"][0]["textContent"], evil);

        // In attributes too.
        let t = Templates {
            by_name: BTreeMap::from([(
                "native-page".to_owned(),
                compile(r#"<p data-t="{{title}}" data-u='{{title}}'>x</p>"#).expect("compiles"),
            )]),
        };
        let (_, full) = t
            .render(&page("a", "\"' onclick=\"x"), 1, 1, 1)
            .expect("renders");
        let full = parse(&full);
        let p = nodes(&full)
            .into_iter()
            .find(|n| n["tagName"] == "p")
            .expect("p");
        assert_eq!(
            p["attributes"],
            json!({"data-t": "\"' onclick=\"x", "data-u": "\"' onclick=\"x"})
        );
    }

    #[test]
    fn scripts_and_handlers_are_dropped() {
        let t = Templates {
            by_name: BTreeMap::from([(
                "native-page".to_owned(),
                compile(
                    "<html><head><script>alert(1)</script></head>\
                     <body onload=\"x()\"><!-- c --><p class=a ONCLICK=y>{{title}}<script src=z></script></p></body></html>",
                )
                .expect("compiles"),
            )]),
        };
        let (_, full) = t.render(&page("a", "T"), 1, 1, 1).expect("renders");
        let full = parse(&full);
        let all = nodes(&full);
        assert!(!tags(&full).iter().any(|t| t == "script"));
        let ids: Vec<u64> = all.iter().map(|n| n["id"].as_u64().expect("id")).collect();
        assert_eq!(ids, (1..=all.len() as u64).collect::<Vec<_>>());
        let body = all.iter().find(|n| n["tagName"] == "body").expect("body");
        assert_eq!(body["attributes"], json!({}));
        assert_eq!(body["childNodes"][0]["type"], 5);
        assert_eq!(body["childNodes"][0]["textContent"], " c ");
        let p = all.iter().find(|n| n["tagName"] == "p").expect("p");
        assert_eq!(p["attributes"], json!({"class": "a"}));
        assert_eq!(p["childNodes"].as_array().expect("kids").len(), 1);
        // No doctype: quirks mode.
        assert_eq!(full["data"]["node"]["compatMode"], "BackCompat");
    }

    #[test]
    fn template_language() {
        let segs = compile(
            "a{{ title }}b{{page_id}}{{field.k}}{{field.none}}[{{#fields}}{{name}}={{value}};{{/fields}}] x{{y {{ }} a{{b:c}}",
        );
        assert!(segs.is_err(), "b:c is placeholder-like but unknown");
        let segs =
            compile("a{{ title }}b{{page_id}}{{field.k}}{{field.none}}[{{#fields}}{{name}}={{value}};{{/fields}}] x{{y {{ }} @media x{{a{color:red}}}")
                .expect("compiles");
        let mut p = page("id", "T&");
        p.fields.insert("k".into(), "v".into());
        p.fields.insert("j".into(), "<".into());
        let mut out = String::new();
        expand(&segs, &p, None, &mut out);
        assert_eq!(
            out,
            "aT&amp;bidv[j=&lt;;k=v;] x{{y {{ }} @media x{{a{color:red}}}"
        );

        for bad in [
            "{{titel}}",
            "{{name}}",
            "{{#fields}}",
            "{{/fields}}",
            "{{#fields}}{{#fields}}{{/fields}}{{/fields}}",
            "{{field.}}",
            "{{field.a.b}}",
        ] {
            assert!(compile(bad).is_err(), "{bad} compiles");
        }
    }

    #[test]
    fn validation() {
        assert!(checkout().validate().is_ok());
        let long = "x".repeat(129);
        for id in ["", "a b", "a/b", "é", long.as_str()] {
            assert!(page(id, "").validate().is_err(), "page_id {id:?}");
        }
        assert!(page(&"x".repeat(128), "").validate().is_ok());
        assert!(page("a.b:c_d-e", "").validate().is_ok());
        assert!(page("a", &"t".repeat(256)).validate().is_ok());
        assert!(page("a", &"t".repeat(257)).validate().is_err());

        let mut p = page("a", "");
        p.template = Some("../etc".into());
        assert!(p.validate().is_err());

        for key in ["", "a.b", "a b", &"k".repeat(65)] {
            let mut p = page("a", "");
            p.fields.insert(key.to_owned(), "v".into());
            assert!(p.validate().is_err(), "key {key:?}");
        }
        let mut p = page("a", "");
        p.fields.insert("k".into(), "v".repeat(1025));
        assert!(p.validate().is_err());
        p.fields.insert("k".into(), "v".repeat(1024));
        assert!(p.validate().is_ok());
        let mut p = page("a", "");
        for i in 0..17 {
            p.fields.insert(format!("k{i}"), "v".into());
        }
        assert!(p.validate().is_err());

        // render validates too.
        assert!(matches!(
            Templates::builtin().render(&page("a b", ""), 1, 1, 1),
            Err(NativeError::Invalid(_))
        ));
    }

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "assist-relay-native-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn template_dir() {
        let dir = temp_dir("ok");
        std::fs::write(
            dir.join("custom.html"),
            "<!doctype html><p id=c>{{title}} / {{field.order}}</p>",
        )
        .expect("write");
        std::fs::write(
            dir.join("native-page.html"),
            "<!doctype html><h2>Overridden {{page_id}}</h2>",
        )
        .expect("write");
        std::fs::write(dir.join("notes.txt"), "{{bogus}}").expect("write");
        std::fs::create_dir(dir.join("sub.html")).expect("mkdir");

        let t = Templates::load(Some(&dir)).expect("loads");
        assert_eq!(t.names(), ["custom", "native-page"]);

        let (meta, full) = t
            .render(&page("home", "Home"), 390, 844, 5)
            .expect("renders");
        assert_eq!(parse(&meta)["data"]["href"], "native://home");
        let full = parse(&full);
        assert!(texts(&full).iter().any(|t| t == "Overridden home"));

        let mut p = page("orders", "Orders");
        p.template = Some("custom".into());
        p.fields.insert("order".into(), "A-1".into());
        let (_, full) = t.render(&p, 390, 844, 5).expect("renders");
        let full = parse(&full);
        assert!(texts(&full).iter().any(|t| t == "Orders / A-1"));

        p.template = Some("nope".into());
        assert!(matches!(
            t.render(&p, 390, 844, 5),
            Err(NativeError::UnknownTemplate(n)) if n == "nope"
        ));
        assert!(matches!(
            Templates::builtin().render(&p, 390, 844, 5),
            Err(NativeError::UnknownTemplate(_))
        ));

        // No directory: the built-in only.
        assert_eq!(
            Templates::load(None).expect("loads").names(),
            ["native-page"]
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn template_dir_errors() {
        let missing = temp_dir("missing").join("nope");
        assert!(matches!(
            Templates::load(Some(&missing)),
            Err(NativeError::Io(_))
        ));

        let dir = temp_dir("bad");
        std::fs::write(dir.join("broken.html"), "<p>{{#fields}}</p>").expect("write");
        assert!(matches!(
            Templates::load(Some(&dir)),
            Err(NativeError::Template(m)) if m.contains("broken.html")
        ));
        std::fs::remove_file(dir.join("broken.html")).expect("rm");

        std::fs::write(dir.join("bad name.html"), "<p>x</p>").expect("write");
        assert!(matches!(
            Templates::load(Some(&dir)),
            Err(NativeError::Template(_))
        ));
        std::fs::remove_file(dir.join("bad name.html")).expect("rm");

        let deep = "<div>".repeat(MAX_DEPTH + 5);
        std::fs::write(dir.join("deep.html"), deep).expect("write");
        assert!(matches!(
            Templates::load(Some(&dir)),
            Err(NativeError::Template(m)) if m.contains("deeper")
        ));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn full_snapshot_round_trips() {
        let mut p = checkout();
        p.title = "Zahlung \u{1F4B3} \"quoted\" \\ \u{7} <tag>".into();
        let (meta, full) = Templates::builtin()
            .render(&p, 390, 844, 42)
            .expect("renders");
        for raw in [&meta, &full] {
            let v: Value = serde_json::from_str(raw.get()).expect("parses");
            let again = serde_json::to_string(&v).expect("serializes");
            let back: Value = serde_json::from_str(&again).expect("parses again");
            assert_eq!(v, back);
            let boxed: Box<RawValue> = serde_json::from_str(raw.get()).expect("raw");
            assert_eq!(boxed.get(), raw.get());
        }
        assert!(texts(&parse(&full)).iter().any(|t| t == &p.title));

        // NativePage itself round-trips, with defaults for the optional parts.
        let json = serde_json::to_string(&p).expect("serializes");
        assert!(!json.contains("template"));
        let back: NativePage = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, p);
        let min: NativePage = serde_json::from_str(r#"{"page_id":"x"}"#).expect("parses");
        assert_eq!(min, page("x", ""));
    }
}
