//! `POST /v1/rooms/{room}/chat`: a chat message from a named server-side sender (a bot, the IM
//! desk), stored and fanned out in the room's order like any chat, with `from` as a
//! [`Role::System`] member. Idempotent by the client id: a retry with the same `from` and `id`
//! answers the first offset and stores nothing.

use assist_relay_proto::{validate_id, Member, Role, MAX_CHAT_TEXT, MAX_ID_LEN};
use axum::http::StatusCode;
use axum::response::Response;

use super::{api_error, json_response};
use crate::hub::{now_us, EntryBody};
use crate::node::Node;
use crate::store::{NewEntry, StoreError};

/// The body: the chat frame's `id` and `text`, and the sender's name as `from`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatRequest {
    /// The sender, shown as `from.id` (an id: `A-Z a-z 0-9 . _ : -`).
    from: String,
    /// The message text, 1 to [`MAX_CHAT_TEXT`] bytes.
    text: String,
    /// The client's message id, 1 to [`MAX_ID_LEN`] bytes: the idempotency key.
    id: String,
}

/// The idempotency key's sender part: `/` is not allowed in participant ids, so a system
/// sender's ids never collide with a connected participant's of the same name.
fn dedup_sender(from: &str) -> String {
    format!("system/{from}")
}

/// Posts `body` into `room` (authorization and the room id are the caller's).
pub async fn post(node: &Node, room: &str, body: &[u8]) -> Response {
    let bad = |m: String| api_error(StatusCode::BAD_REQUEST, "invalid_body", m);
    let req: ChatRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return bad(e.to_string()),
    };
    if let Err(e) = validate_id("from", &req.from) {
        return bad(e);
    }
    if req.id.is_empty() || req.id.len() > MAX_ID_LEN {
        return bad(format!("id must be 1 to {MAX_ID_LEN} bytes"));
    }
    if req.text.is_empty() {
        return bad("text must not be empty".into());
    }
    if req.text.len() > MAX_CHAT_TEXT {
        return api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text_too_long",
            format!("text must be at most {MAX_CHAT_TEXT} bytes"),
        );
    }
    let unavailable = |e: StoreError| {
        api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
    };
    // Only into a room a participant opened: a bot cannot create rooms.
    match node.log.log_state(room).await {
        Ok(s) if s.sealed => return closed(),
        Ok(s) if !s.exists => {
            return api_error(
                StatusCode::NOT_FOUND,
                "room_not_open",
                "no participant has opened this room (or it has been archived)",
            )
        }
        Ok(_) => {}
        Err(e) => return unavailable(e),
    }
    let entry = NewEntry {
        body: EntryBody::Chat {
            id: req.id.clone(),
            from: Member {
                id: req.from.clone(),
                role: Role::System,
            },
            text: req.text,
            ts: now_us() / 1000,
        },
        // Cluster mode holds the sender and the room to their rates across nodes (429).
        sender: Some(node.rates.rated(&dedup_sender(&req.from))),
        dedup: Some((dedup_sender(&req.from), req.id)),
        page: None,
    };
    match node.log.append(room, entry).await {
        Ok(a) => {
            if !a.duplicate {
                node.metrics.appends.with_label_values(&["chat"]).inc();
            }
            let body = serde_json::json!({ "offset": a.offset, "duplicate": a.duplicate });
            json_response(StatusCode::CREATED, &body)
        }
        Err(StoreError::Closed) => closed(),
        Err(StoreError::LogFull(m)) => api_error(StatusCode::INSUFFICIENT_STORAGE, "log_full", m),
        Err(StoreError::RateLimited) => api_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "over the sender's or the room's rate",
        ),
        Err(e) => unavailable(e),
    }
}

fn closed() -> Response {
    api_error(
        StatusCode::CONFLICT,
        "room_closed",
        "the session has ended; the room takes no more messages",
    )
}
