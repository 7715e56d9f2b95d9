//! The room's page timeline and native-page placeholders.
//!
//! A web page enters the timeline when its FullSnapshot is stored (URL from the Meta before it,
//! title read from the snapshot's `<title>`). A native screen enters it when the app (a
//! `native_page` frame) or its backend (`POST /v1/rooms/{room}/native-page`) reports it: the relay
//! renders a placeholder page from a template and stores it as the room's keyframe, Meta then
//! FullSnapshot, so that agents, including ones who join later, see "the customer is on screen X"
//! instead of a frozen web page.

use assist_relay_proto::{EventKind, NativePage, PageKind, PageRecord};
use serde_json::value::RawValue;

use crate::hub::now_us;
use crate::hub::EntryBody;
use crate::native::{NativeError, Templates};
use crate::store::{Appended, NewEntry, RoomLog, StoreError};

/// Viewport reported for a placeholder when the room's last web page is unknown (a phone).
pub const DEFAULT_VIEWPORT: (u32, u32) = (390, 844);

/// What a Meta event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaInfo {
    /// Page URL.
    pub href: String,
    /// Viewport.
    pub width: u32,
    /// Viewport.
    pub height: u32,
}

/// Reads a Meta event's `data` (small; parsed only for Meta events).
pub fn read_meta(event: &RawValue) -> Option<MetaInfo> {
    #[derive(serde::Deserialize)]
    struct Meta {
        data: Data,
    }
    #[derive(serde::Deserialize)]
    struct Data {
        #[serde(default)]
        href: String,
        #[serde(default)]
        width: f64,
        #[serde(default)]
        height: f64,
    }
    let m: Meta = serde_json::from_str(event.get()).ok()?;
    Some(MetaInfo {
        href: m.data.href,
        width: m.data.width.clamp(0.0, 100_000.0) as u32,
        height: m.data.height.clamp(0.0, 100_000.0) as u32,
    })
}

/// Finds the text of the first `<title>` in a FullSnapshot without parsing the snapshot: a scan
/// for `"tagName":"title"` and the `textContent` of its first child. rrweb writes an element's
/// `childNodes` after its `tagName`; an event the relay masked is written with sorted keys, which
/// puts them before it. (Neither pattern can occur inside a JSON string: its quotes would be
/// escaped.)
pub fn scan_title(snapshot: &str) -> Option<String> {
    const CHILDREN: &str = r#""childNodes":["#;
    const TAG: &str = r#""tagName":"#;
    const TEXT: &str = r#""textContent":""#;
    const TITLE: &str = r#""tagName":"title""#;
    const WINDOW: usize = 4096;
    let boundary = |mut i: usize| {
        while !snapshot.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let at = snapshot.find(TITLE)?;
    let after = &snapshot[at..boundary(snapshot.len().min(at + WINDOW))];
    // Sorted keys put only `type` after `tagName`; rrweb writes `type` first.
    let sorted = after[TITLE.len()..].starts_with(r#","type":"#);
    let children = if !sorted {
        // rrweb's order: the title's children follow its tag (its `attributes` hold strings).
        let c = after.find(CHILDREN)?;
        if after[1..c].contains(TAG) {
            return None;
        }
        &after[c + CHILDREN.len()..]
    } else {
        // Sorted keys: the children precede the tag (a title's children are text nodes, so the
        // nearest `childNodes` before the tag is the title's).
        let before = &snapshot[boundary(at.saturating_sub(WINDOW))..at];
        &before[before.rfind(CHILDREN)? + CHILDREN.len()..]
    };
    // The text of the first child: its other keys (`type`, `id`, `rootId`) hold numbers only.
    let key = children.find(TEXT)?;
    if children[..key].contains(['[', ']', '}']) || children[1..key].contains('{') {
        return None;
    }
    let lit = &children[key + TEXT.len() - 1..];
    // The JSON string literal ends at the first unescaped quote.
    let bytes = lit.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => {
                let title: String = serde_json::from_str(&lit[..=i]).ok()?;
                let title = title.trim();
                return (!title.is_empty()).then(|| title.chars().take(256).collect());
            }
            _ => i += 1,
        }
    }
    None
}

/// The timeline record of a web page whose FullSnapshot is being stored (offset filled in by
/// the store).
pub fn web_page(meta: Option<&MetaInfo>, snapshot: &RawValue) -> PageRecord {
    PageRecord {
        kind: PageKind::Web,
        url: meta.map(|m| m.href.clone()).unwrap_or_default(),
        page_id: None,
        title: scan_title(snapshot.get()),
        offset: 0,
        ts: now_us() / 1000,
    }
}

/// Why a native page could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum NativePageError {
    /// The report or its template is wrong (the client's fault).
    #[error("{0}")]
    Invalid(#[from] NativeError),
    /// The room store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Renders a native-page placeholder and stores it as the room's keyframe (Meta, then
/// FullSnapshot with a native timeline record). With `id`, both appends are idempotent per
/// (`sender`, `id`). Returns the FullSnapshot's append.
pub async fn store_native_page(
    log: &(impl RoomLog + ?Sized),
    templates: &Templates,
    room: &str,
    page: &NativePage,
    sender: &str,
    id: Option<&str>,
    viewport: (u32, u32),
) -> Result<Appended, NativePageError> {
    let ts = now_us() / 1000;
    let (meta, snapshot) = templates.render(page, viewport.0, viewport.1, ts)?;
    let meta = NewEntry {
        body: EntryBody::Event {
            event: meta.into(),
            kind: EventKind::Meta,
            source: None,
        },
        dedup: id.map(|i| (sender.to_owned(), format!("{i}#meta"))),
        sender: None,
        page: None,
    };
    log.append(room, meta).await?;
    let record = PageRecord {
        kind: PageKind::Native,
        url: format!("native://{}", page.page_id),
        page_id: Some(page.page_id.clone()),
        title: (!page.title.is_empty()).then(|| page.title.clone()),
        offset: 0,
        ts,
    };
    let snap = NewEntry {
        body: EntryBody::Event {
            event: snapshot.into(),
            kind: EventKind::FullSnapshot,
            source: None,
        },
        dedup: id.map(|i| (sender.to_owned(), i.to_owned())),
        sender: None,
        page: Some(record),
    };
    Ok(log.append(room, snap).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_found_without_parsing() {
        let snap = r#"{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":2,"tagName":"head","attributes":{},"childNodes":[{"type":2,"tagName":"title","attributes":{},"childNodes":[{"type":3,"textContent":" Loan \"apply\" ","id":5}],"id":4}],"id":3}],"id":1}},"timestamp":1}"#;
        assert_eq!(scan_title(snap).as_deref(), Some("Loan \"apply\""));
        assert_eq!(scan_title(r#"{"type":2}"#), None);
        // As the masker writes it (sorted keys), with a `<style>` before the title.
        let sorted = r#"{"data":{"node":{"childNodes":[{"attributes":{},"childNodes":[{"attributes":{},"childNodes":[{"id":5,"isStyle":true,"textContent":"body{}","type":3}],"id":4,"tagName":"style","type":2},{"attributes":{},"childNodes":[{"id":7,"textContent":"Sign in","type":3}],"id":6,"tagName":"title","type":2},{"attributes":{},"childNodes":[{"id":9,"textContent":"after","type":3}],"id":8,"tagName":"p","type":2}],"id":3,"tagName":"head","type":2}],"id":1,"type":0}},"timestamp":1,"type":2}"#;
        assert_eq!(scan_title(sorted).as_deref(), Some("Sign in"));
        let empty = r#"{"childNodes":[],"id":6,"tagName":"title","type":2},{"childNodes":[{"id":9,"textContent":"after","type":3}]}"#;
        assert_eq!(scan_title(empty), None);
        let empty = r#"{"type":2,"tagName":"title","childNodes":[],"id":6},{"type":3,"textContent":"after"}"#;
        assert_eq!(scan_title(empty), None);
        // A window edge inside a multi-byte char does not panic.
        let wide = format!(
            r#"{}{{"type":2,"tagName":"title","childNodes":[{{"type":3,"textContent":"{}"}}]}}"#,
            "é".repeat(3000),
            "页".repeat(3000)
        );
        assert_eq!(scan_title(&wide), None);
    }

    #[test]
    fn meta_is_read() {
        let raw: Box<RawValue> = serde_json::from_str(
            r#"{"type":4,"data":{"href":"https://x.example/a","width":390,"height":844},"timestamp":1}"#,
        )
        .expect("json");
        assert_eq!(
            read_meta(&raw),
            Some(MetaInfo {
                href: "https://x.example/a".into(),
                width: 390,
                height: 844
            })
        );
    }

    #[test]
    fn fixture_titles() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/rrweb/loan-apply.json"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            return; // fixtures live beside the project; the integration tests require them
        };
        let events: Vec<Box<RawValue>> = serde_json::from_str(&text).expect("fixture");
        let titles: Vec<String> = events
            .iter()
            .filter(|e| e.get().starts_with(r#"{"type":2"#))
            .filter_map(|e| scan_title(e.get()))
            .collect();
        assert_eq!(titles.len(), 3, "{titles:?}");
    }
}
