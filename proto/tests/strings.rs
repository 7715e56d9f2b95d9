//! The wire and label strings of every string-mapped enum, spelled out: they come from strum
//! derives, and a renamed variant must not silently change the protocol or a metric label.

use assist_relay_proto::{
    Capability, ClientFrameKind, CloseCode, Codec, ErrorCode, EventKind, JoinMode, ResyncReason,
    Role, ServerFrameKind, SnapshotReason,
};
use strum::{IntoEnumIterator, VariantArray};

#[test]
fn enum_strings_are_the_documented_ones() {
    let s = |v: Vec<&'static str>| v.join(" ");
    assert_eq!(s(Codec::ALL.map(Codec::label).to_vec()), "json msgpack");
    assert_eq!(
        s(ErrorCode::ALL.map(ErrorCode::as_str).to_vec()),
        "malformed invalid_frame unknown_type wrong_frame_kind not_joined already_joined \
         forbidden invalid_event too_large upload_invalid upload_limit rate_limited log_full \
         unavailable internal"
    );
    assert_eq!(
        s(CloseCode::ALL.map(CloseCode::reason).to_vec()),
        "shutdown slow join_timeout idle_timeout unavailable token_expired policy_violation \
         room_closed room_full too_many_connections_for_participant"
    );
    assert_eq!(
        s(ResyncReason::ALL.map(ResyncReason::as_str).to_vec()),
        "epoch_changed trimmed lagged ahead_of_log"
    );
    assert_eq!(
        s(SnapshotReason::ALL.map(SnapshotReason::as_str).to_vec()),
        "tail_too_large native_page_left no_keyframe"
    );
    assert_eq!(
        s(JoinMode::ALL.map(JoinMode::as_str).to_vec()),
        "fresh resume resync"
    );
    assert_eq!(
        s(Capability::ALL.map(Capability::as_str).to_vec()),
        "guide call"
    );
    assert_eq!(
        s(Role::VARIANTS.iter().map(|r| r.as_str()).collect()),
        "customer agent system"
    );
    assert_eq!(
        s(EventKind::iter().map(EventKind::label).collect()),
        "dom_content_loaded load full_snapshot incremental meta custom plugin asset other"
    );
    assert_eq!(
        s(ClientFrameKind::VARIANTS
            .iter()
            .map(|&k| k.into())
            .collect()),
        "join event chat ping chunk end native_page guide signal"
    );
    assert_eq!(
        s(ServerFrameKind::VARIANTS
            .iter()
            .map(|&k| k.into())
            .collect()),
        "joined event chat ack member_joined member_left resync caught_up error pong chunk \
         chunk_ack snapshot_request guide signal"
    );
    for code in ErrorCode::ALL {
        assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        assert_eq!(
            serde_json::to_string(&code).expect("serializes"),
            format!("\"{}\"", code.as_str())
        );
    }
    for r in ResyncReason::ALL {
        assert_eq!(ResyncReason::parse(r.as_str()), Some(r));
    }
    assert_eq!(ErrorCode::parse("Malformed"), None);
    assert_eq!("call".parse::<Capability>(), Ok(Capability::Call));
    assert_eq!(
        "x".parse::<Capability>(),
        Err("unknown capability \"x\" (expected guide or call)".to_owned())
    );
}
