//! Admission: the HTTP upgrade decides who may open a WebSocket. Every refusal is a plain HTTP
//! response with a stable code in a JSON body, counted in `relay_handshake_rejections_total`.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assist_relay::auth::Auth;
use assist_relay_proto::{Claims, Codec, Role, ServerFrame};
use common::*;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

// ---------------------------------------------------------------------------------------------
// Helpers

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// An upgrade request for `ws://<relay><path_and_query>`.
fn request(relay: &Relay, path_and_query: &str) -> Request {
    format!("ws://{}{path_and_query}", relay.addr)
        .into_client_request()
        .expect("request")
}

fn with_header(mut req: Request, name: &'static str, value: &str) -> Request {
    req.headers_mut()
        .insert(name, HeaderValue::from_str(value).expect("header value"));
    req
}

fn bearer(req: Request, token: &str) -> Request {
    with_header(req, "authorization", &format!("Bearer {token}"))
}

/// A valid upgrade request for `room` with a bearer token and the JSON subprotocol.
fn valid_request(relay: &Relay, path_and_query: &str, token: &str) -> Request {
    with_header(
        bearer(request(relay, path_and_query), token),
        "sec-websocket-protocol",
        Codec::JSON_PROTOCOL,
    )
}

/// Performs the upgrade and expects a refusal; returns (status, JSON body).
async fn refused(req: Request) -> (u16, serde_json::Value) {
    match tokio_tungstenite::connect_async(req).await {
        Ok((_, resp)) => panic!("upgrade was accepted: {resp:?}"),
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
                panic!(
                    "refusal body is not JSON ({e}): {:?}",
                    String::from_utf8_lossy(&body)
                )
            });
            (resp.status().as_u16(), json)
        }
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
    }
}

/// Expects a refusal with `status` and `code`, a human message, and the code counted in metrics.
async fn assert_refused(relay: &Relay, req: Request, status: u16, code: &str, count: u64) {
    let (got_status, body) = refused(req).await;
    assert_eq!(
        (got_status, body["error"].as_str()),
        (status, Some(code)),
        "body: {body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "refusal carries a message: {body}"
    );
    relay
        .await_metric(
            &format!("relay_handshake_rejections_total{{reason=\"{code}\"}}"),
            count as f64,
        )
        .await;
}

/// Performs an upgrade that must succeed; returns the client and the 101 response.
async fn accepted(req: Request, codec: Codec, role: Role, sub: &str) -> (Client, Response) {
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .unwrap_or_else(|e| panic!("upgrade refused: {e}"));
    (Client::new(ws, codec, role, sub), resp)
}

fn echoed_protocol(resp: &Response) -> Option<String> {
    resp.headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().expect("ascii").to_owned())
}

/// base64url without padding (RFC 7515), for hand-made tokens.
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Signs arbitrary JSON claims with `alg` and the test secret.
fn sign_json(alg: jsonwebtoken::Algorithm, claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("encode")
}

fn claims(room: &str, role: Role, sub: &str) -> Claims {
    Claims {
        sub: sub.into(),
        room: room.into(),
        role,
        exp: now_secs() + 3600,
        iat: None,
        mask: None,
        caps: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Refusals

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_token_is_refused_with_401_token_missing() {
    let relay = Relay::start().await;
    let req = with_header(
        request(&relay, "/ws?room=r1"),
        "sec-websocket-protocol",
        Codec::JSON_PROTOCOL,
    );
    assert_refused(&relay, req, 401, "token_missing", 1).await;
    // A bearer header with an empty or foreign scheme is no token either.
    let req = with_header(
        request(&relay, "/ws"),
        "authorization",
        "Basic dXNlcjpwdw==",
    );
    assert_refused(&relay, req, 401, "token_missing", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_token_is_refused_with_401_token_malformed() {
    let relay = Relay::start().await;
    let req = valid_request(&relay, "/ws", "not-a-jwt");
    assert_refused(&relay, req, 401, "token_malformed", 1).await;
    let req = request(&relay, "/ws?token=a.b");
    assert_refused(&relay, req, 401, "token_malformed", 2).await;
    // Three base64url parts, but the header is not JSON.
    let token = format!("{}.{}.c2ln", b64url(b"not json"), b64url(b"{}"));
    let req = valid_request(&relay, "/ws", &token);
    assert_refused(&relay, req, 401, "token_malformed", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_refused_with_401_token_expired() {
    let relay = Relay::start().await;
    let token = token_with("r1", Role::Customer, "cust", -120);
    assert_refused(
        &relay,
        valid_request(&relay, "/ws", &token),
        401,
        "token_expired",
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_signed_with_another_secret_is_refused_with_401_token_bad_signature() {
    let relay = Relay::start().await;
    let token = Auth::new(b"other")
        .mint(&claims("r1", Role::Customer, "cust"))
        .expect("mint");
    assert_refused(
        &relay,
        valid_request(&relay, "/ws", &token),
        401,
        "token_bad_signature",
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_with_alg_hs512_is_refused_with_401_token_bad_signature() {
    let relay = Relay::start().await;
    let body = serde_json::to_value(claims("r1", Role::Customer, "cust")).expect("claims");
    // Signed with the right secret, but not with HS256 (by hand: the relay's JWT backend signs
    // HS256 only).
    let signing_input = format!(
        "{}.{}",
        b64url(br#"{"alg":"HS512","typ":"JWT"}"#),
        b64url(body.to_string().as_bytes())
    );
    let mut mac = <hmac::Hmac<sha2::Sha512> as hmac::Mac>::new_from_slice(SECRET.as_bytes())
        .expect("hmac key");
    hmac::Mac::update(&mut mac, signing_input.as_bytes());
    let sig = hmac::Mac::finalize(mac).into_bytes();
    let token = format!("{signing_input}.{}", b64url(&sig));
    assert_refused(
        &relay,
        valid_request(&relay, "/ws", &token),
        401,
        "token_bad_signature",
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_token_with_alg_none_is_refused_with_401_token_bad_signature() {
    let relay = Relay::start().await;
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url(
        serde_json::to_string(&claims("r1", Role::Customer, "cust"))
            .expect("claims")
            .as_bytes(),
    );
    let token = format!("{header}.{payload}.");
    assert_refused(
        &relay,
        valid_request(&relay, "/ws", &token),
        401,
        "token_bad_signature",
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_without_role_or_with_unknown_role_or_bad_room_or_mask_is_refused_with_401_token_invalid_claims(
) {
    let relay = Relay::start().await;
    let exp = now_secs() + 3600;
    let hs256 = jsonwebtoken::Algorithm::HS256;
    let no_role = sign_json(
        hs256,
        &serde_json::json!({ "sub": "cust", "room": "r1", "exp": exp }),
    );
    let admin = sign_json(
        hs256,
        &serde_json::json!({ "sub": "cust", "room": "r1", "role": "admin", "exp": exp }),
    );
    let braces = Auth::new(SECRET.as_bytes())
        .mint(&claims("r{1}", Role::Customer, "cust"))
        .expect("mint");
    let bad_mask = sign_json(
        hs256,
        &serde_json::json!({ "sub": "cust", "room": "r1", "role": "customer", "exp": exp, "mask": "everything" }),
    );
    for (n, token) in [no_role, admin, braces, bad_mask].iter().enumerate() {
        assert_refused(
            &relay,
            valid_request(&relay, "/ws", token),
            401,
            "token_invalid_claims",
            n as u64 + 1,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_room_other_than_the_token_room_is_refused_with_403_room_mismatch() {
    let relay = Relay::start().await;
    let token = relay.token("r1", Role::Agent, "agent");
    assert_refused(
        &relay,
        valid_request(&relay, "/ws?room=other", &token),
        403,
        "room_mismatch",
        1,
    )
    .await;
    // The same token with the matching room is fine.
    let (mut c, _) = accepted(
        valid_request(&relay, "/ws?room=r1", &token),
        Codec::Json,
        Role::Agent,
        "agent",
    )
    .await;
    c.join(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_other_than_ws_is_refused_with_404_not_found() {
    let relay = Relay::start().await;
    let token = relay.token("r1", Role::Agent, "agent");
    assert_refused(
        &relay,
        valid_request(&relay, "/other", &token),
        404,
        "not_found",
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_unknown_subprotocols_are_refused_with_400_unsupported_protocol() {
    let relay = Relay::start().await;
    let token = relay.token("r1", Role::Agent, "agent");
    let req = with_header(
        bearer(request(&relay, "/ws"), &token),
        "sec-websocket-protocol",
        "foo.v1",
    );
    assert_refused(&relay, req, 400, "unsupported_protocol", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_per_reason_in_metrics() {
    let relay = Relay::start().await;
    let series = |r: &str| format!("relay_handshake_rejections_total{{reason=\"{r}\"}}");
    // Every reason is pre-registered at zero.
    for r in ["token_missing", "token_expired", "not_found"] {
        assert_eq!(relay.metric(&series(r)).await, Some(0.0), "{r}");
    }
    let expired = token_with("r1", Role::Customer, "cust", -120);
    for _ in 0..3 {
        refused(request(&relay, "/ws")).await;
    }
    for _ in 0..2 {
        refused(valid_request(&relay, "/ws", &expired)).await;
    }
    relay.await_metric(&series("token_missing"), 3.0).await;
    relay.await_metric(&series("token_expired"), 2.0).await;
    assert_eq!(relay.metric(&series("not_found")).await, Some(0.0));
}

// ---------------------------------------------------------------------------------------------
// Accepted upgrades

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_in_authorization_bearer_header_is_accepted() {
    let relay = Relay::start().await;
    let token = relay.token("r1", Role::Customer, "cust");
    let (mut c, resp) = accepted(
        valid_request(&relay, "/ws?room=r1", &token),
        Codec::Json,
        Role::Customer,
        "cust",
    )
    .await;
    assert_eq!(
        echoed_protocol(&resp).as_deref(),
        Some(Codec::JSON_PROTOCOL)
    );
    let j = c.join(None).await;
    assert!(matches!(&j.frame, ServerFrame::Joined { room, .. } if room == "r1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_in_query_string_is_accepted() {
    let relay = Relay::start().await;
    let token = relay.token("r1", Role::Agent, "agent");
    let req = with_header(
        request(&relay, &format!("/ws?room=r1&token={token}")),
        "sec-websocket-protocol",
        Codec::MSGPACK_PROTOCOL,
    );
    let (mut c, resp) = accepted(req, Codec::MsgPack, Role::Agent, "agent").await;
    assert_eq!(
        echoed_protocol(&resp).as_deref(),
        Some(Codec::MSGPACK_PROTOCOL)
    );
    let j = c.join(None).await;
    assert!(matches!(&j.frame, ServerFrame::Joined { you, .. } if you.id == "agent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_in_subprotocol_is_accepted_and_only_the_codec_is_echoed() {
    let relay = Relay::start().await;
    let token = relay.token("r1", Role::Customer, "cust");
    let req = with_header(
        request(&relay, "/ws"),
        "sec-websocket-protocol",
        &format!("{}, assist-relay.token.{token}", Codec::JSON_PROTOCOL),
    );
    let (mut c, resp) = accepted(req, Codec::Json, Role::Customer, "cust").await;
    assert_eq!(
        echoed_protocol(&resp).as_deref(),
        Some(Codec::JSON_PROTOCOL)
    );
    let j = c.join(None).await;
    assert!(matches!(&j.frame, ServerFrame::Joined { room, .. } if room == "r1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_subprotocol_offered_is_accepted_with_the_json_codec() {
    let relay = Relay::start().await;
    let token = relay.token("r1", Role::Customer, "cust");
    let req = bearer(request(&relay, "/ws"), &token);
    let (mut c, resp) = accepted(req, Codec::Json, Role::Customer, "cust").await;
    assert_eq!(
        echoed_protocol(&resp),
        None,
        "nothing offered, nothing echoed"
    );
    // A join sent as JSON text is answered with JSON text (`recv` asserts the frame kind).
    c.send_raw(Message::Text(r#"{"type":"join"}"#.into())).await;
    let f = c.recv().await;
    assert!(
        matches!(&f, ServerFrame::Joined { room, .. } if room == "r1"),
        "{f:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Resource limits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_never_sends_the_upgrade_request_is_dropped_after_the_handshake_timeout() {
    let relay = Relay::start_with(|cfg| cfg.handshake_timeout = Duration::from_millis(300)).await;
    let mut silent = tokio::net::TcpStream::connect(relay.addr)
        .await
        .expect("tcp connect");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("the server did not drop the silent connection");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "expected EOF or reset, got {read:?}"
    );
    relay
        .await_metric(
            "relay_handshake_rejections_total{reason=\"bad_handshake\"}",
            1.0,
        )
        .await;
    relay.await_open_connections(0).await;

    // The node still serves a normal client.
    let (mut c, _) = relay.join("r1", Role::Customer, "cust", Codec::Json).await;
    c.chat("m1", "still here").await;
    c.recv_until(|f| matches!(f, ServerFrame::Ack { id, .. } if id == "m1"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_over_max_connections_is_refused_with_503_until_one_closes() {
    let relay = Relay::start_with(|cfg| cfg.max_connections = 2).await;
    relay.pin_first_node(); // the cap is per node
    let mut first = relay
        .connect("r1", Role::Customer, "cust", Codec::Json)
        .await;
    let (mut second, _) = relay.join("r1", Role::Agent, "agent", Codec::Json).await;
    assert_eq!(relay.open_connections(), 2);

    let token = relay.token("r1", Role::Agent, "agent2");
    assert_refused(
        &relay,
        valid_request(&relay, "/ws", &token),
        503,
        "too_many_connections",
        1,
    )
    .await;
    // The refused attempt is not counted as open.
    assert_eq!(relay.open_connections(), 2);
    // The two admitted connections are unaffected.
    first.join(None).await;

    second.ws.close(None).await.expect("close");
    second.closed().await;
    relay.await_open_connections(1).await;

    let (mut third, _) = accepted(
        valid_request(&relay, "/ws", &token),
        Codec::Json,
        Role::Agent,
        "agent2",
    )
    .await;
    third.join(None).await;
}
