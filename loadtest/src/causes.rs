//! Errors that name their cause: close codes and refused handshakes as the relay words them, and
//! what to change for the well-known ones.
//!
//! Error kinds are counted by name, so a name must say what happened: a relay close 4503 is
//! `closed_4503_room_full` (the reason of `assist_relay_proto::CloseCode`), a refused upgrade is
//! `refused_token_bad_signature` (the `error` field of the relay's JSON refusal body; other
//! servers' refusals stay `refused_<status>`). [`explain`] adds the fix for the ones a load test
//! typically meets.

use assist_relay_proto::CloseCode;

use crate::wire::Wire;

/// The error kind of a close: `closed_<code>`, and the relay's reason after it for the relay.
pub fn close_kind(wire: Wire, code: Option<u16>) -> String {
    let code = code.unwrap_or(1005);
    match (wire, CloseCode::from_code(code)) {
        (Wire::Relay(_), Some(c)) => format!("closed_{code}_{}", c.reason()),
        _ => format!("closed_{code}"),
    }
}

/// The error kind of a refused upgrade, from its status and body: `refused_<reason>` when the body
/// is the relay's `{"error": reason, "message": ...}`, `refused_<status>` otherwise. The second
/// value is the detail to show (the relay's message, or the body).
pub fn refusal_kind(status: u16, body: &str) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct Refusal {
        error: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_str::<Refusal>(body) {
        Ok(r)
            if !r.error.is_empty()
                && r.error.len() <= 64
                && r.error
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            let detail = format!("HTTP {status} {}: {}", r.error, r.message);
            (format!("refused_{}", r.error), detail)
        }
        _ => (
            format!("refused_{status}"),
            format!("HTTP {status}: {body}"),
        ),
    }
}

/// What an error kind means and what to change, for the causes a load test typically meets.
pub fn explain(kind: &str) -> Option<&'static str> {
    const CAUSES: &[(&str, &str)] = &[
        (
            "room_full",
            "the room is full: the relay admits --max-room-members participants per room \
             (default 50); viewers + stalled + the publisher must fit. Start the relay with a \
             higher `relay serve --max-room-members`, or lower --viewers / --agents",
        ),
        (
            "token_bad_signature",
            "the relay does not accept the tokens' signature: pass the relay's secret \
             (`relay serve --jwt-secret` / RELAY_JWT_SECRET) as --secret or RELAY_JWT_SECRET",
        ),
        (
            "token_unknown_key",
            "the relay runs with --jwt-keys and no default key: give it --jwt-secret too, the one \
             loadtest signs with (--secret)",
        ),
        (
            "token_wrong_audience",
            "the relay checks `aud` (--jwt-audience); loadtest mints tokens without one: run the \
             load against a relay without --jwt-audience",
        ),
        (
            "token_wrong_issuer",
            "the relay checks `iss` (--jwt-issuer); loadtest mints tokens without one: run the \
             load against a relay without --jwt-issuer",
        ),
        (
            "token_lifetime_too_long",
            "loadtest's tokens last the run plus an hour; the relay's --max-token-lifetime is \
             shorter: raise it",
        ),
        (
            "too_many_connections_for_participant",
            "one participant id has its most connections (`relay serve \
             --max-connections-per-participant`, default 8)",
        ),
        (
            "too_many_pending_from_address",
            "too many handshakes at once from one address (`relay serve \
             --max-pending-per-address`, default 64): lower --connect-concurrency or spread \
             over --source-ips",
        ),
        (
            "too_many_connections",
            "the node has its most connections (`relay serve --max-connections`)",
        ),
        (
            "too_many_rooms",
            "the node has its most rooms (`relay serve --max-rooms`)",
        ),
        (
            "rate_limited",
            "the publisher sent faster than the relay allows one connection (`relay serve \
             --max-msgs-per-sec`, default 500, and --max-bytes-per-sec): raise them above the \
             load, or lower --rate",
        ),
        (
            "closed_4001_slow",
            "the relay closed a viewer that stayed behind too long (--slow-timeout, \
             --max-queue-bytes): the clients or the server are short of CPU",
        ),
        (
            "shutting_down",
            "the node is draining; connect to another node",
        ),
        (
            "origin_not_allowed",
            "the relay has an Origin allow-list; loadtest sends no Origin header",
        ),
        (
            "tcp_connect",
            "nothing accepts connections at --url: is the server running, on that port?",
        ),
    ];
    CAUSES
        .iter()
        .find(|(needle, _)| kind.contains(needle))
        .map(|(_, why)| *why)
}

/// Error counts in one line each, with the cause of the well-known ones: for messages that end a
/// run (`no viewer could connect`).
pub fn describe(errors: &std::collections::BTreeMap<String, u64>) -> String {
    errors
        .iter()
        .map(|(kind, n)| match explain(kind) {
            Some(why) => format!("{kind} x{n} ({why})"),
            None => format!("{kind} x{n}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use assist_relay_proto::Codec;

    #[test]
    fn relay_closes_carry_the_reason() {
        let relay = Wire::Relay(Codec::Json);
        assert_eq!(close_kind(relay, Some(4503)), "closed_4503_room_full");
        assert_eq!(close_kind(relay, Some(4001)), "closed_4001_slow");
        assert_eq!(close_kind(relay, Some(1000)), "closed_1000");
        assert_eq!(close_kind(relay, None), "closed_1005");
        // Other servers' 4xxx codes mean other things.
        assert_eq!(close_kind(Wire::SocketIo, Some(4503)), "closed_4503");
    }

    #[test]
    fn refusals_carry_the_servers_reason() {
        let body = r#"{"error":"token_bad_signature","message":"the token is not signed with this relay's HS256 key"}"#;
        let (kind, detail) = refusal_kind(401, body);
        assert_eq!(kind, "refused_token_bad_signature");
        assert!(detail.contains("HS256"), "{detail}");
        assert_eq!(refusal_kind(429, "Too Many Requests").0, "refused_429");
        // A body that is not a plain code does not become a counter name.
        assert_eq!(
            refusal_kind(401, r#"{"error":"Bad Token!"}"#).0,
            "refused_401"
        );
    }

    #[test]
    fn well_known_causes_name_the_setting() {
        let room_full = explain("open_viewer_closed_4503_room_full").expect("explained");
        assert!(room_full.contains("--max-room-members"), "{room_full}");
        let sig = explain("open_agent_refused_token_bad_signature").expect("explained");
        assert!(sig.contains("--secret"), "{sig}");
        assert!(explain("publisher_server_error_rate_limited")
            .expect("explained")
            .contains("--max-msgs-per-sec"));
        assert!(explain("undecodable").is_none());
        // The participant limit is not the node's connection limit.
        assert!(explain("refused_too_many_connections_for_participant")
            .expect("explained")
            .contains("per-participant"));
    }
}
