//! What the Redis store writes and reads as bytes: an entry body in the stream field `b` (and,
//! when small enough, inside the pub/sub message), the published message, a page timeline item,
//! a presence member. Pure functions; no Redis calls.

use assist_relay_proto::{EventKind, Member, PageRecord, Role};
use redis::streams::StreamRangeReply;

use crate::hub::{EntryBody, EventJson};
use crate::store::StoreError;

/// What travels in the stream field `b` and, when small enough, in the pub/sub message.
/// `e` + rrweb type + source (255: none) + raw JSON, or `c` + chat JSON.
pub(super) fn encode_body(body: &EntryBody) -> Vec<u8> {
    match body {
        EntryBody::Event {
            event,
            kind,
            source,
        } => {
            let json = event.get().as_bytes();
            let mut out = Vec::with_capacity(json.len() + 3);
            out.push(b'e');
            out.push(kind.as_u8());
            out.push(source.unwrap_or(255));
            out.extend_from_slice(json);
            out
        }
        EntryBody::Chat { id, from, text, ts } => {
            let chat = serde_json::json!({ "id": id, "from": from.id, "role": from.role, "text": text, "ts": ts });
            let mut out = b"c".to_vec();
            out.extend_from_slice(chat.to_string().as_bytes());
            out
        }
    }
}

pub(super) fn decode_body(b: &[u8]) -> Result<EntryBody, StoreError> {
    let corrupt = |why: &str| StoreError::Corrupt(why.to_owned());
    match b.first() {
        Some(b'e') if b.len() > 3 => {
            // This cluster's own log: checked when it entered, so not parsed again; only the
            // UTF-8 of the text is (a `str`), which is cheap.
            let text =
                std::str::from_utf8(&b[3..]).map_err(|_| corrupt("stored event is not text"))?;
            let source = (b[2] != 255).then_some(b[2]);
            Ok(EntryBody::Event {
                event: EventJson::stored(text.into()),
                kind: EventKind::from_u8(b[1]),
                source,
            })
        }
        Some(b'c') => {
            #[derive(serde::Deserialize)]
            struct Chat {
                id: String,
                from: String,
                role: Role,
                text: String,
                ts: u64,
            }
            let c: Chat =
                serde_json::from_slice(&b[1..]).map_err(|_| corrupt("stored chat is not valid"))?;
            Ok(EntryBody::Chat {
                id: c.id,
                from: Member {
                    id: c.from,
                    role: c.role,
                },
                text: c.text,
                ts: c.ts,
            })
        }
        _ => Err(corrupt("unknown stored entry")),
    }
}

fn offset_of(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

/// Stream entries as (offset, accepted µs, body).
pub(super) fn parse_entries(
    reply: StreamRangeReply,
) -> Result<Vec<(u64, u64, EntryBody)>, StoreError> {
    let mut out = Vec::with_capacity(reply.ids.len());
    for sid in reply.ids {
        let offset = offset_of(&sid.id)
            .ok_or_else(|| StoreError::Corrupt(format!("stream id {}", sid.id)))?;
        let body: Vec<u8> = sid
            .get("b")
            .ok_or_else(|| StoreError::Corrupt("entry without body".into()))?;
        let accepted: u64 = sid.get("a").unwrap_or(0);
        out.push((offset, accepted, decode_body(&body)?));
    }
    Ok(out)
}

/// Reads the page timeline list (`<offset>\x1f<json>`, offset filling a 0 in the record).
pub(super) fn parse_pages(raw: &[Vec<u8>]) -> Vec<PageRecord> {
    raw.iter()
        .filter_map(|item| {
            let sep = item.iter().position(|&b| b == 0x1f)?;
            let start: u64 = std::str::from_utf8(&item[..sep]).ok()?.parse().ok()?;
            let mut page: PageRecord = serde_json::from_slice(&item[sep + 1..]).ok()?;
            if page.offset == 0 {
                page.offset = start;
            }
            Some(page)
        })
        .collect()
}

/// A published entry, `<epoch>:<offset>:<accepted_us>:<body or nothing>` (after the `E`).
pub(super) fn parse_published(b: &[u8]) -> Option<(&str, u64, u64, &[u8])> {
    let mut parts = b.splitn(4, |&c| c == b':');
    let epoch = std::str::from_utf8(parts.next()?).ok()?;
    let offset = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let accepted = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    Some((epoch, offset, accepted, parts.next().unwrap_or(&[])))
}

/// A participant as presence replies and `J`/`L` messages carry it: `<sub>\x1f<role>`.
pub(super) fn parse_member(s: &str) -> Option<Member> {
    let (id, role) = s.split_once('\x1f')?;
    Some(Member {
        id: id.to_owned(),
        role: role.parse().ok()?,
    })
}
