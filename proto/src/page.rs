//! Native-page reports and the room's page timeline.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most display fields a native-page report may carry.
pub const MAX_PAGE_FIELDS: usize = 16;
/// Longest native-page title, in bytes.
pub const MAX_PAGE_TITLE: usize = 256;
/// Longest display field value, in bytes.
pub const MAX_FIELD_VALUE: usize = 1024;

/// What the app (or its backend) reports about the native screen the customer is on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NativePage {
    /// App-defined screen id, e.g. `checkout` (an id: `[A-Za-z0-9._:-]{1,128}`). Required, but a
    /// missing one decodes as empty so that [`NativePage::validate`] refuses it (`invalid_frame`,
    /// like every missing required field), not the decoder (`malformed`).
    #[serde(default)]
    pub page_id: String,
    /// Title shown to the agent, e.g. `Payment`.
    #[serde(default)]
    pub title: String,
    /// Template name (default `native-page`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// A few display fields, shown in key order.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

impl NativePage {
    /// Checks ids and sizes.
    pub fn validate(&self) -> Result<(), String> {
        crate::auth::validate_id("page_id", &self.page_id)?;
        if self.title.len() > MAX_PAGE_TITLE {
            return Err(format!("title must be at most {MAX_PAGE_TITLE} bytes"));
        }
        if let Some(t) = &self.template {
            crate::auth::validate_id("template", t)?;
        }
        if self.fields.len() > MAX_PAGE_FIELDS {
            return Err(format!("at most {MAX_PAGE_FIELDS} fields"));
        }
        for (k, v) in &self.fields {
            if k.is_empty()
                || k.len() > 64
                || !k
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(format!("field name {k:?}: 1 to 64 of A-Z a-z 0-9 _ -"));
            }
            if v.len() > MAX_FIELD_VALUE {
                return Err(format!(
                    "field {k:?} must be at most {MAX_FIELD_VALUE} bytes"
                ));
            }
        }
        Ok(())
    }
}

/// Whether a timeline entry is a web page or a native screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageKind {
    /// An H5 (web) page recorded by rrweb.
    Web,
    /// A native app screen, shown to agents as a placeholder.
    Native,
}

/// One entry of a room's page timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRecord {
    /// Web page or native screen.
    pub kind: PageKind,
    /// The page URL (web) or `native://<page_id>`.
    pub url: String,
    /// The native screen id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_id: Option<String>,
    /// The page or screen title, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Offset of the page's first event (its Meta) in the room log.
    pub offset: u64,
    /// When the page started, ms since the Unix epoch.
    pub ts: u64,
}
