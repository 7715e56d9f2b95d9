//! The audit trail: one `tracing` event per security-relevant action, on the target `audit`.
//!
//! Every event is emitted by one function of this module, so each event's field set is defined
//! once (docs/operations.md, "Audit log", lists them). They reach the normal log stream (with
//! `target: "audit"`; `RELAY_LOG=info,audit=off` hides them there) and, with `--audit-log FILE`,
//! a file of their own as JSON lines ([`file_layer`]). Secrets never appear: tokens and API keys
//! are not logged; an API key is named by `key_id`, the first 8 hex digits of its SHA-256.
//!
//! Fields common to every event: `event` (the event's name) and `node` (host name and pid of
//! the process, see [`set_node`]).

use std::net::SocketAddr;
use std::sync::OnceLock;

use assist_relay_proto::{Codec, Role};
use tracing_subscriber::Layer;

/// The tracing target of audit events.
pub const TARGET: &str = "audit";

static NODE: OnceLock<String> = OnceLock::new();

/// Names this process in audit events (default: `<hostname>-<pid>`). Only the first call counts.
pub fn set_node(name: String) {
    let _ = NODE.set(name);
}

fn node() -> &'static str {
    NODE.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "host".into());
        format!("{host}-{}", std::process::id())
    })
}

/// A participant joined a room (after its `join` frame, once it is a member).
pub fn join(
    room: &str,
    sub: &str,
    role: Role,
    conn: u64,
    codec: Codec,
    remote: Option<SocketAddr>,
) {
    tracing::info!(
        target: TARGET,
        event = "join",
        node = node(),
        room,
        sub,
        role = role.as_str(),
        conn,
        codec = codec.subprotocol(),
        remote = remote.map(tracing::field::display),
    );
}

/// A joined participant's connection ended (`close`: the close code the relay sent, or
/// `peer_gone` when the peer closed or vanished).
pub fn leave(room: &str, sub: &str, role: Role, conn: u64, close: &str) {
    tracing::info!(
        target: TARGET,
        event = "leave",
        node = node(),
        room,
        sub,
        role = role.as_str(),
        conn,
        close,
    );
}

/// Someone ended a session. `by` is the participant's `sub` (an agent's `end` frame), `api` (the
/// `/v1` close call) or `idle` (its customer was gone longer than --customer-idle-close);
/// `closed` is false when the room was already closed.
pub fn session_ended(room: &str, by: &str, closed: bool) {
    tracing::info!(
        target: TARGET,
        event = "session_ended",
        node = node(),
        room,
        by,
        closed,
    );
}

/// A call of the HTTP API under `/v1` (any outcome). `key_id` names the presented API key (first
/// 8 hex digits of its SHA-256), absent without one; `authorized` says whether it was accepted.
pub fn api_call(method: &str, path: &str, status: u16, key_id: Option<&str>, authorized: bool) {
    // The path is the caller's; keep a line bounded whatever it sent.
    let path = truncate(path, 256);
    tracing::info!(
        target: TARGET,
        event = "api_call",
        node = node(),
        method,
        path,
        status,
        key_id,
        authorized,
    );
}

/// `key_id` of an API key or presented bearer value: the first 8 hex digits of its SHA-256.
pub fn key_id(key: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(key.as_bytes())[..4])
}

/// A WebSocket upgrade was refused for its token (`reason`: the handshake error code, such as
/// `token_expired` or `room_mismatch`). Nothing of the token is logged: it is not trusted.
/// Refusals that are not about the token (wrong path, draining, full) are not audited.
pub fn handshake_refused(reason: &str, remote: Option<SocketAddr>) {
    if !(reason.starts_with("token_") || reason == "room_mismatch") {
        return;
    }
    tracing::info!(
        target: TARGET,
        event = "token_refused",
        node = node(),
        reason,
        remote = remote.map(tracing::field::display),
    );
}

/// `relay export` wrote a replay page of a recording.
pub fn export(room: &str, epoch: &str, out: &std::path::Path) {
    tracing::info!(
        target: TARGET,
        event = "export",
        node = node(),
        room,
        epoch,
        out = %out.display(),
    );
}

/// The compactor finished a room's recording (`manifest`: its key in the archive).
pub fn recording_written(room: &str, epoch: &str, manifest: &str) {
    tracing::info!(
        target: TARGET,
        event = "recording_written",
        node = node(),
        room,
        epoch,
        manifest,
    );
}

/// A recording's video was written (`ready`, with its archive key) or failed (see the manifest).
pub fn video(room: &str, epoch: &str, ready: bool, key: Option<&str>) {
    tracing::info!(
        target: TARGET,
        event = if ready { "video_ready" } else { "video_failed" },
        node = node(),
        room,
        epoch,
        key = key.unwrap_or(""),
    );
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A layer that writes the audit events, and nothing else, to `file` as JSON lines (whatever
/// `RELAY_LOG` says).
pub fn file_layer<S>(file: std::fs::File) -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(std::sync::Arc::new(file))
        .with_filter(
            tracing_subscriber::filter::Targets::new().with_target(TARGET, tracing::Level::INFO),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_short_digests() {
        assert_eq!(key_id("abc").len(), 8);
        assert_ne!(key_id("abc"), key_id("abd"));
        assert_eq!(truncate("héllo", 2), "h");
    }
}
