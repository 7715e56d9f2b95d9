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
//! load time. The page is parsed with html5ever (into a small arena tree, `dom`) and converted to rrweb-snapshot's
//! serialized node tree; `<script>` elements and `on*` event-handler attributes are dropped (a
//! placeholder never runs code).
//!
//! # Layout
//! This module loads and renders templates; `template` is the placeholder language (compile,
//! expand, escape), `html` the parse into rrweb-snapshot nodes over `dom`'s tree. None of them uses this module.

mod dom;
mod html;
mod template;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::value::RawValue;
use serde_json::{json, Value};

pub use html::MAX_DEPTH;
pub use template::MAX_FIELD_NAME;
use template::{compile, expand_page, Seg};

/// The template used when a report names none.
pub const DEFAULT_TEMPLATE: &str = "native-page";
/// Longest screen id or template name, in bytes.
pub const MAX_PAGE_ID: usize = 128;
/// Longest title, in bytes.
pub const MAX_TITLE: usize = 256;
/// Most display fields.
pub const MAX_FIELDS: usize = 16;
/// Longest display field value, in bytes.
pub const MAX_FIELD_VALUE: usize = 1024;
/// Largest template file, in bytes.
pub const MAX_TEMPLATE_BYTES: u64 = 256 * 1024;

const BUILTIN: &str = include_str!("../../templates/native-page.html");

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
            html::snapshot(&expand_page(&segs, &sample))
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
        let node = html::snapshot(&expand_page(segs, page)).map_err(NativeError::Template)?;
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
