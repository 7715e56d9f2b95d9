//! `guide` and `signal` frames: validation rules in both codecs, and the token capabilities.

mod common;

use assist_relay_proto::guide::{MAX_ANNOTATION_TEXT, MAX_SDP};
use assist_relay_proto::*;
use proptest::prelude::*;
use serde_json::json;

/// Decodes a JSON value as a client frame in both codecs; both must agree.
fn decode_both(v: &serde_json::Value) -> Result<ClientFrame<'static>, ErrorCode> {
    let json = serde_json::to_vec(v).expect("json");
    let mp = rmp_serde::to_vec_named(v).expect("msgpack");
    let a = ClientFrame::decode(Codec::Json, &json).map(own);
    let b = ClientFrame::decode(Codec::MsgPack, &mp).map(own);
    assert_eq!(
        a.as_ref().map_err(ProtoError::code),
        b.as_ref().map_err(ProtoError::code),
        "the codecs disagree on {v}"
    );
    a.map_err(|e| e.code())
}

fn own(f: ClientFrame<'_>) -> ClientFrame<'static> {
    match f {
        ClientFrame::Guide { id, guide } => ClientFrame::Guide { id, guide },
        ClientFrame::Signal { id, to, signal } => ClientFrame::Signal { id, to, signal },
        other => panic!("not a guide or signal frame: {other:?}"),
    }
}

#[test]
fn every_guidance_kind_decodes() {
    let f = decode_both(&json!({"type":"guide","guide":{"kind":"pointer","x":3,"y":4.5}}));
    assert_eq!(
        f,
        Ok(ClientFrame::Guide {
            id: None,
            guide: Guidance::Pointer {
                x: 3.0,
                y: 4.5,
                node: None
            }
        }),
        "integers are accepted as coordinates"
    );
    let f = decode_both(
        &json!({"type":"guide","id":"g","guide":{"kind":"annotate","node":7,"text":"hi","x":null}}),
    );
    assert_eq!(
        f,
        Ok(ClientFrame::Guide {
            id: Some("g".into()),
            guide: Guidance::Annotate {
                node: 7,
                text: "hi".into()
            }
        })
    );
    assert!(decode_both(&json!({"type":"guide","guide":{"kind":"clear","extra":[1]}})).is_ok());
}

#[test]
fn broken_guidance_is_invalid_and_mistyped_guidance_is_malformed() {
    let text = |n: usize| "é".repeat(n / 2);
    for bad in [
        json!({"type":"guide"}),
        json!({"type":"guide","guide":{}}),
        json!({"type":"guide","guide":{"kind":null}}),
        json!({"type":"guide","guide":{"kind":"pointer","x":1}}),
        json!({"type":"guide","guide":{"kind":"pointer","x":1,"y":2e7}}),
        json!({"type":"guide","guide":{"kind":"pointer","x":1,"y":2,"node":0}}),
        json!({"type":"guide","guide":{"kind":"highlight"}}),
        json!({"type":"guide","guide":{"kind":"annotate","node":1}}),
        json!({"type":"guide","guide":{"kind":"annotate","node":1,"text":""}}),
        json!({"type":"guide","guide":{"kind":"annotate","node":1,"text":text(MAX_ANNOTATION_TEXT + 2)}}),
        json!({"type":"guide","guide":{"kind":"Highlight","node":1}}),
        json!({"type":"guide","id":"","guide":{"kind":"clear"}}),
    ] {
        assert_eq!(decode_both(&bad), Err(ErrorCode::InvalidFrame), "{bad}");
    }
    assert!(decode_both(&json!({"type":"guide","guide":{"kind":"annotate","node":1,"text":text(MAX_ANNOTATION_TEXT)}})).is_ok());
    for bad in [
        json!({"type":"guide","guide":"highlight"}),
        json!({"type":"guide","guide":{"kind":1}}),
        json!({"type":"guide","guide":{"kind":"highlight","node":-1}}),
        json!({"type":"guide","guide":{"kind":"highlight","node":4294967296u64}}),
        json!({"type":"guide","guide":{"kind":"pointer","x":"1","y":2}}),
        json!({"type":"ping","guide":5}),
        json!({"type":"ping","to":5}),
        json!({"type":"ping","signal":[]}),
        json!({"type":"guide","guide":[]}),
        json!({"type":"ping","ice_servers":{}}),
    ] {
        assert_eq!(decode_both(&bad), Err(ErrorCode::Malformed), "{bad}");
    }
}

#[test]
fn signals_need_their_fields_and_stay_within_limits() {
    let ok = [
        json!({"type":"signal","signal":{"kind":"offer","call":"c","sdp":"v=0"}}),
        json!({"type":"signal","to":"cust-7","signal":{"kind":"answer","call":"c","sdp":"v=0"}}),
        json!({"type":"signal","signal":{"kind":"ice","call":"c","candidate":""}}),
        json!({"type":"signal","signal":{"kind":"hangup","call":"c"}}),
    ];
    for v in ok {
        assert!(decode_both(&v).is_ok(), "{v}");
    }
    let big = "a".repeat(MAX_SDP + 1);
    for bad in [
        json!({"type":"signal"}),
        json!({"type":"signal","signal":{"kind":"offer","sdp":"v=0"}}),
        json!({"type":"signal","signal":{"kind":"offer","call":"c"}}),
        json!({"type":"signal","signal":{"kind":"offer","call":"c","sdp":big}}),
        json!({"type":"signal","signal":{"kind":"ice","call":"c"}}),
        json!({"type":"signal","signal":{"kind":"renegotiate","call":"c"}}),
        json!({"type":"signal","signal":{"kind":"hangup","call":""}}),
        json!({"type":"signal","to":"a b","signal":{"kind":"hangup","call":"c"}}),
        json!({"type":"signal","signal":{"kind":"hangup","call":"c","reason":"x".repeat(129)}}),
    ] {
        assert_eq!(decode_both(&bad), Err(ErrorCode::InvalidFrame), "{bad}");
    }
    assert_eq!(
        decode_both(
            &json!({"type":"signal","signal":{"kind":"ice","call":"c","candidate":"x","sdp_mline_index":70000}})
        ),
        Err(ErrorCode::Malformed)
    );
}

#[test]
fn capabilities_default_to_everything_for_agents_and_are_exact_when_listed() {
    let claims = |role: Role, caps: Option<&[&str]>| Claims {
        sub: "s".into(),
        room: "r".into(),
        role,
        exp: 1,
        iat: None,
        mask: None,
        caps: caps.map(|c| c.iter().map(|s| s.to_string()).collect()),
    };
    let agent = claims(Role::Agent, None);
    assert!(agent.can(Capability::Guide) && agent.can(Capability::Call));
    let caller = claims(Role::Agent, Some(&["call", "teleport"]));
    assert!(!caller.can(Capability::Guide) && caller.can(Capability::Call));
    let none = claims(Role::Agent, Some(&[]));
    assert!(!none.can(Capability::Guide) && !none.can(Capability::Call));
    let customer = claims(Role::Customer, Some(&["guide"]));
    assert!(!customer.can(Capability::Guide) && customer.can(Capability::Call));
    let parsed: Claims = serde_json::from_value(
        json!({"sub":"s","room":"r","role":"agent","exp":1,"caps":["guide"]}),
    )
    .expect("claims");
    assert_eq!(parsed.caps, Some(vec!["guide".to_owned()]));
    assert!(serde_json::from_value::<Claims>(
        json!({"sub":"s","room":"r","role":"agent","exp":1,"caps":"guide"})
    )
    .is_err());
}

proptest! {
    #[test]
    fn guidance_round_trips_through_its_wire_map(g in common::arb_guidance()) {
        prop_assert_eq!(Guidance::from_wire(g.to_wire()), Ok(g));
    }

    #[test]
    fn any_guide_map_decodes_the_same_in_both_codecs_or_is_refused_the_same(
        kind in prop_oneof![Just("pointer".to_owned()), Just("highlight".to_owned()), Just("annotate".to_owned()), Just("clear".to_owned()), ".{0,8}"],
        x in proptest::option::of(-2.0e7f64..2.0e7),
        node in proptest::option::of(0u32..5),
        text in proptest::option::of(".{0,20}"),
    ) {
        let mut g = serde_json::Map::new();
        g.insert("kind".into(), json!(kind));
        if let Some(x) = x { g.insert("x".into(), json!(x)); g.insert("y".into(), json!(x)); }
        if let Some(n) = node { g.insert("node".into(), json!(n)); }
        if let Some(t) = text { g.insert("text".into(), json!(t)); }
        let _ = decode_both(&json!({"type":"guide","guide":g}));
    }
}
