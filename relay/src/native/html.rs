//! HTML to rrweb-snapshot: an expanded template is parsed as a browser would (html5ever, via
//! `scraper`) and serialized as rrweb-snapshot's node tree, ids in document order; `<script>`
//! elements and `on*` attributes are dropped, nesting is bounded by [`MAX_DEPTH`].
//!
//! It knows nothing of templates or reports (`template`, the parent module).

use scraper::{ElementRef, Html, Node};
use serde_json::{json, Map, Value};

/// Deepest node nesting a template may produce (the document is depth 0). Keeps the snapshot
/// well inside JSON parsers' recursion limits (serde_json's is 128, two levels per node).
pub const MAX_DEPTH: usize = 48;
const SVG_NS: &str = "http://www.w3.org/2000/svg";

/// Parses an expanded template and serializes the document as rrweb-snapshot nodes.
pub(super) fn snapshot(text: &str) -> Result<Value, String> {
    let html = Html::parse_document(text);
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
