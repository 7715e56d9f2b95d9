//! HTML to rrweb-snapshot: an expanded template is parsed as a browser would (html5ever, into the
//! small tree of `dom`) and serialized as rrweb-snapshot's node tree, ids in document order; `<script>`
//! elements and `on*` attributes are dropped, nesting is bounded by [`MAX_DEPTH`].
//!
//! It knows nothing of templates or reports (`template`, the parent module).

use html5ever::interface::QuirksMode;
use serde_json::{json, Map, Value};

use super::dom::{Document, Kind};

/// Deepest node nesting a template may produce (the document is depth 0). Keeps the snapshot
/// well inside JSON parsers' recursion limits (serde_json's is 128, two levels per node).
pub const MAX_DEPTH: usize = 48;
const SVG_NS: &str = "http://www.w3.org/2000/svg";

/// Parses an expanded template and serializes the document as rrweb-snapshot nodes.
pub(super) fn snapshot(text: &str) -> Result<Value, String> {
    let doc = Document::parse(text);
    let mut ids = Ids(0);
    let id = ids.next();
    let mut children = Vec::new();
    for &child in &doc.nodes[0].children {
        if let Some(v) = convert(&doc, child, None, 1, &mut ids)? {
            children.push(v);
        }
    }
    // Only Quirks is the DOM's "BackCompat" (LimitedQuirks and NoQuirks are "CSS1Compat").
    let compat = if doc.quirks == QuirksMode::Quirks {
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
    doc: &Document,
    at: usize,
    parent_tag: Option<&str>,
    depth: usize,
    ids: &mut Ids,
) -> Result<Option<Value>, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} nodes"));
    }
    let node = &doc.nodes[at];
    let v = match &node.kind {
        Kind::Doctype {
            name,
            public_id,
            system_id,
        } => json!({
            "type": 1,
            "name": &**name,
            "publicId": &**public_id,
            "systemId": &**system_id,
            "id": ids.next(),
        }),
        Kind::Text(t) => {
            let mut m = Map::new();
            m.insert("type".into(), 3.into());
            m.insert("textContent".into(), (**t).into());
            if parent_tag == Some("style") {
                m.insert("isStyle".into(), true.into());
            }
            m.insert("id".into(), ids.next().into());
            Value::Object(m)
        }
        Kind::Comment(c) => json!({"type": 5, "textContent": &**c, "id": ids.next()}),
        Kind::Element(attrs) => {
            let tag = str::to_ascii_lowercase(&node.name.local);
            if tag == "script" {
                return Ok(None);
            }
            let mut attributes = Map::new();
            for a in attrs {
                let key = match &a.name.prefix {
                    Some(p) => format!("{}:{}", &**p, &*a.name.local),
                    None => a.name.local.to_string(),
                };
                if key.len() > 2 && key[..2].eq_ignore_ascii_case("on") {
                    continue;
                }
                attributes.insert(key, Value::String(a.value.to_string()));
            }
            let id = ids.next();
            let mut children = Vec::new();
            for &child in &node.children {
                if let Some(v) = convert(doc, child, Some(&tag), depth + 1, ids)? {
                    children.push(v);
                }
            }
            let mut m = Map::new();
            m.insert("type".into(), 2.into());
            m.insert("tagName".into(), tag.into());
            m.insert("attributes".into(), Value::Object(attributes));
            m.insert("childNodes".into(), children.into());
            if &*node.name.ns == SVG_NS {
                m.insert("isSVG".into(), true.into());
            }
            m.insert("id".into(), id.into());
            Value::Object(m)
        }
        Kind::Document | Kind::Hidden => return Ok(None),
    };
    Ok(Some(v))
}
