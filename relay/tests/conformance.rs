//! The server as docs/protocol.md describes it, where an independent client found them apart
//! (issue 22): error frames echo the refused frame's `id`, a missing required field is
//! `invalid_frame`, resent slices of a stored upload, the order of the token checks, and a
//! client over its violation budget reads every error frame and the 4501 close frame.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assist_relay::auth::Auth;
use assist_relay_proto::{ChunkData, Claims, ClientFrame, Codec, ErrorCode, Role, ServerFrame};
use common::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::Message;

/// `frame` in the client's codec. On MessagePack, `event` travels as JSON text (§4.3).
fn raw(codec: Codec, mut frame: Value) -> Message {
    match codec {
        Codec::Json => Message::Text(frame.to_string().into()),
        Codec::MsgPack => {
            if let Some(ev) = frame.get_mut("event") {
                *ev = Value::String(ev.to_string());
            }
            Message::Binary(rmp_serde::to_vec_named(&frame).expect("msgpack").into())
        }
    }
}

async fn next_error(c: &mut Client) -> (ErrorCode, Option<String>) {
    loop {
        if let ServerFrame::Error { code, id, .. } = c.recv().await {
            return (code, id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_frames_echo_the_id_of_the_refused_frame_whenever_it_could_be_read() {
    let relay = Relay::start().await;
    for codec in Codec::ALL {
        let room = format!("ids-{}", codec.label());
        let (mut cust, joined) = relay.join(&room, Role::Customer, "cust", codec).await;
        let (mut agent, _) = relay.join(&room, Role::Agent, "agent", codec).await;
        // `joined` always carries `limits` (the examples of §7 show them).
        assert!(
            matches!(
                &joined.frame,
                ServerFrame::Joined {
                    limits: Some(_),
                    ..
                }
            ),
            "{:?}",
            joined.frame
        );
        let cases = [
            // invalid_frame: a rule of a known frame broken.
            (
                false,
                json!({"type":"chat","id":"c1","text":""}),
                ErrorCode::InvalidFrame,
            ),
            (
                true,
                json!({"type":"guide","id":"g1","guide":{"kind":"highlight","node":0}}),
                ErrorCode::InvalidFrame,
            ),
            // invalid_frame, not malformed: a missing required field (§14).
            (
                false,
                json!({"type":"native_page","id":"n1","page":{"title":"Pay"}}),
                ErrorCode::InvalidFrame,
            ),
            // invalid_event: the rrweb event's `type` is not an integer.
            (
                false,
                json!({"type":"event","id":"e1","event":{"type":"x","timestamp":1}}),
                ErrorCode::InvalidEvent,
            ),
            // unknown_type: the envelope still carries an id.
            (
                false,
                json!({"type":"nope","id":"u1"}),
                ErrorCode::UnknownType,
            ),
        ];
        for (by_agent, frame, want) in cases {
            let client = if by_agent { &mut agent } else { &mut cust };
            let id = frame["id"].as_str().map(str::to_owned);
            client.send_raw(raw(codec, frame.clone())).await;
            assert_eq!(next_error(client).await, (want, id), "{codec:?} {frame}");
        }
        // An id that is not a valid client id, or a frame that does not decode, has none.
        cust.send_raw(raw(codec, json!({"type":"nope","id":""})))
            .await;
        assert_eq!(next_error(&mut cust).await, (ErrorCode::UnknownType, None));
        cust.send_raw(raw(codec, json!({"type":"chat","id":"c2","text":5})))
            .await;
        assert_eq!(next_error(&mut cust).await, (ErrorCode::Malformed, None));
        // The same native_page with its page_id is stored and acked.
        cust.send_raw(raw(
            codec,
            json!({"type":"native_page","id":"n1","page":{"page_id":"pay","title":"Pay"}}),
        ))
        .await;
        let acked = cust
            .recv_until(|f| matches!(f, ServerFrame::Ack { .. } | ServerFrame::Error { .. }))
            .await;
        assert!(
            matches!(&acked, ServerFrame::Ack { id, .. } if id == "n1"),
            "{acked:?}"
        );
    }
}

fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resent_slices_of_a_stored_upload_are_each_answered_with_a_duplicate_ack() {
    let relay = Relay::start().await;
    for codec in Codec::ALL {
        let room = format!("resend-{}", codec.label());
        let (mut cust, _) = relay.join(&room, Role::Customer, "cust", codec).await;
        let event = synthetic(2, 7);
        let bytes = event.as_bytes();
        let half = bytes.len() / 2;
        let parts = [&event[..half], &event[half..]];
        let chunk = |index: u32| ClientFrame::Chunk {
            id: "up-1".into(),
            index,
            count: 2,
            size: bytes.len() as u64,
            digest: digest(bytes),
            data: ChunkData::Text(parts[index as usize].into()),
        };
        cust.send(&chunk(0)).await;
        cust.send(&chunk(1)).await;
        let mut frames = Vec::new();
        while !matches!(frames.last(), Some(ServerFrame::Ack { .. })) {
            frames.push(cust.recv().await);
        }
        let offset = match &frames[..] {
            [ServerFrame::ChunkAck { index: 0, .. }, ServerFrame::ChunkAck { index: 1, .. }, ServerFrame::Ack {
                offset,
                duplicate: false,
                ..
            }] => *offset,
            other => panic!("{codec:?}: {other:?}"),
        };
        // The whole upload again, as §9.2 says to after a lost final ack.
        cust.send(&chunk(0)).await;
        cust.send(&chunk(1)).await;
        for _ in 0..2 {
            match cust.recv().await {
                ServerFrame::Ack {
                    id,
                    offset: o,
                    duplicate: true,
                } => assert_eq!((id.as_str(), o), ("up-1", offset)),
                other => panic!("{codec:?}: expected a duplicate ack, got {other:?}"),
            }
        }
        cust.send(&ClientFrame::Ping {
            id: Some("p".into()),
        })
        .await;
        assert!(
            matches!(cust.recv().await, ServerFrame::Pong { .. }),
            "no chunk_ack follows the duplicate acks"
        );
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn token(secret: &str, exp: u64) -> String {
    let claims = Claims {
        sub: "cust".into(),
        room: "tok".into(),
        role: Role::Customer,
        exp,
        iat: None,
        mask: None,
        caps: None,
    };
    Auth::new(secret.as_bytes()).mint(&claims).expect("mint")
}

async fn refusal(relay: &Relay, token: &str) -> String {
    let req = ws_request(relay.addr, None, token, Codec::Json);
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => "accepted".into(),
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            let json: Value = serde_json::from_slice(&body).expect("JSON refusal");
            json["error"].as_str().unwrap_or("").to_owned()
        }
        Err(e) => panic!("expected an HTTP answer, got {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signature_is_checked_before_the_payload_is_read_and_before_exp() {
    let relay = Relay::start().await;
    let other = "another-secret-another-secret-another";
    let expired = now_secs() - 3600;
    assert_eq!(
        refusal(&relay, &token(SECRET, expired)).await,
        "token_expired"
    );
    assert_eq!(
        refusal(&relay, &token(other, expired)).await,
        "token_bad_signature"
    );
    // A payload that is not JSON, under a signature that is not the relay's.
    let good = token(other, now_secs() + 600);
    let mut parts: Vec<&str> = good.split('.').collect();
    parts[1] = "bm90IGpzb24"; // base64url("not json")
    assert_eq!(
        refusal(&relay, &parts.join(".")).await,
        "token_bad_signature"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_violation_budget_reads_every_error_and_the_4501_close() {
    let relay = Relay::start_with(|c| c.max_violations = 20).await;
    for codec in Codec::ALL {
        let room = format!("flood-{}", codec.label());
        let (mut c, _) = relay.join(&room, Role::Customer, "cust", codec).await;
        for i in 0..40 {
            // Padded, so that much of what the client sent is still unread when the relay
            // closes (dropping a socket with unread bytes resets it).
            let frame = json!({"type":"nope","id":format!("f{i}"),"pad":"x".repeat(16_000)});
            // The relay reads what it does not answer any more: no reset while sending.
            c.ws_send(raw(codec, frame)).await.expect("send");
        }
        let mut errors = 0;
        while let Some(f) = tokio::time::timeout(Duration::from_secs(10), c.next_raw())
            .await
            .expect("the relay answers")
        {
            if matches!(f, ServerFrame::Error { .. }) {
                errors += 1;
            }
        }
        assert_eq!(
            c.close_frame,
            Some((4501, "policy_violation".into())),
            "{codec:?}: close frame after {errors} errors"
        );
        assert!(errors >= 20, "{codec:?}: {errors} error frames");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exp_is_checked_before_the_issuer_and_the_issuer_before_the_audience() {
    use assist_relay::auth::{ExtraClaims, TokenPolicy};
    let relay = Relay::start_with(|c| {
        c.token_policy = TokenPolicy {
            audience: Some("assist-relay".into()),
            issuer: Some("https://backend.example".into()),
            ..TokenPolicy::default()
        };
    })
    .await;
    let mint = |exp: u64, aud: &str, iss: &str| {
        let claims = Claims {
            sub: "cust".into(),
            room: "tok".into(),
            role: Role::Customer,
            exp,
            iat: None,
            mask: None,
            caps: None,
        };
        let extra = ExtraClaims {
            aud: Some(aud.into()),
            iss: Some(iss.into()),
            ..Default::default()
        };
        Auth::new(SECRET.as_bytes())
            .mint_with(&claims, &extra)
            .expect("mint")
    };
    let (past, soon) = (now_secs() - 3600, now_secs() + 600);
    for (token, want) in [
        (mint(past, "other", "https://evil.example"), "token_expired"),
        (
            mint(soon, "other", "https://evil.example"),
            "token_wrong_issuer",
        ),
        (
            mint(soon, "other", "https://backend.example"),
            "token_wrong_audience",
        ),
        (
            mint(soon, "assist-relay", "https://backend.example"),
            "accepted",
        ),
    ] {
        assert_eq!(refusal(&relay, &token).await, want);
    }
}
