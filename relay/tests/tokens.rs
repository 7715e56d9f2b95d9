//! Tokens and keys under hostile input, over the wire: keys chosen by `kid` (rotation), `nbf`,
//! the lifetime cap, `aud`/`iss`, room ids that are not safe path components (handshake and
//! `/v1`), and masking hashes that do not depend on the JWT keys.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assist_relay::auth::{Auth, ExtraClaims, TokenPolicy};
use assist_relay::config::NodeConfig;
use assist_relay::store::memory::MemoryStore;
use assist_relay::telemetry::Metrics;
use assist_relay::Node;
use assist_relay_proto::{Claims, Codec, Role, ServerFrame};
use common::*;
use tokio_tungstenite::tungstenite;

const SECOND_SECRET: &str = "second-secret-second-secret-second";

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn claims(room: &str, exp: u64, iat: Option<u64>) -> Claims {
    Claims {
        sub: "cust".into(),
        room: room.into(),
        role: Role::Customer,
        exp,
        iat,
        mask: None,
        caps: None,
    }
}

/// A token for room `r1` valid for an hour, with `extra` claims, signed with the test secret.
fn token_extra(extra: ExtraClaims) -> String {
    let now = now_secs();
    Auth::new(SECRET.as_bytes())
        .mint_with(&claims("r1", now + 3600, Some(now)), &extra)
        .expect("mint")
}

fn upgrade(
    addr: SocketAddr,
    room: Option<&str>,
    token: &str,
) -> tungstenite::handshake::client::Request {
    ws_request(addr, room, token, Codec::Json)
}

/// Upgrades to `addr` with `token`: `Ok` if accepted, else the refusal's (status, `error`).
async fn try_upgrade(addr: SocketAddr, token: &str) -> Result<(), (u16, String)> {
    match tokio_tungstenite::connect_async(upgrade(addr, None, token)).await {
        Ok(_) => Ok(()),
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON refusal");
            assert!(
                json["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{json}"
            );
            Err((
                resp.status().as_u16(),
                json["error"].as_str().unwrap_or("").to_owned(),
            ))
        }
        Err(e) => panic!("expected an HTTP answer, got {e}"),
    }
}

fn refused(code: &str) -> Result<(), (u16, String)> {
    Err((401, code.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_chosen_by_kid_so_a_secret_rotates_without_dropping_sessions() {
    // Mid-rotation: the old secret (no kid) and the new key `k2` both verify.
    let relay = Relay::start_with(|c| {
        c.jwt_keys = vec![("k2".into(), SECOND_SECRET.as_bytes().to_vec())];
    })
    .await;
    let now = now_secs();
    let c = claims("r1", now + 3600, Some(now));
    let old = Auth::new(SECRET.as_bytes()).mint(&c).expect("mint");
    let new = Auth::with_keys(None, &[("k2".into(), SECOND_SECRET.as_bytes().to_vec())])
        .mint(&c)
        .expect("mint");
    assert_eq!(try_upgrade(relay.addr, &old).await, Ok(()));
    assert_eq!(try_upgrade(relay.addr, &new).await, Ok(()), "kid k2");
    // A kid the relay does not know, and a kid whose key did not sign the token.
    let unknown = Auth::with_keys(None, &[("k3".into(), SECOND_SECRET.as_bytes().to_vec())])
        .mint(&c)
        .expect("mint");
    assert_eq!(
        try_upgrade(relay.addr, &unknown).await,
        refused("token_unknown_key")
    );
    let wrong = Auth::with_keys(None, &[("k2".into(), SECRET.as_bytes().to_vec())])
        .mint(&c)
        .expect("mint");
    assert_eq!(
        try_upgrade(relay.addr, &wrong).await,
        refused("token_bad_signature")
    );
    relay
        .await_metric(
            "relay_handshake_rejections_total{reason=\"token_unknown_key\"}",
            1.0,
        )
        .await;

    // After the rotation: the old secret is gone; tokens without kid have no key left.
    let rotated = Relay::start_with(|c| {
        c.jwt_secret = Vec::new();
        c.jwt_keys = vec![("k2".into(), SECOND_SECRET.as_bytes().to_vec())];
    })
    .await;
    assert_eq!(try_upgrade(rotated.addr, &new).await, Ok(()));
    assert_eq!(
        try_upgrade(rotated.addr, &old).await,
        refused("token_unknown_key")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_before_its_nbf_is_refused_beyond_a_minute_of_leeway() {
    let relay = Relay::start().await;
    let now = now_secs();
    let later = token_extra(ExtraClaims {
        nbf: Some(now + 600),
        ..Default::default()
    });
    assert_eq!(
        try_upgrade(relay.addr, &later).await,
        refused("token_not_yet_valid")
    );
    let skewed = token_extra(ExtraClaims {
        nbf: Some(now + 20),
        ..Default::default()
    });
    assert_eq!(
        try_upgrade(relay.addr, &skewed).await,
        Ok(()),
        "within the leeway"
    );
    let past = token_extra(ExtraClaims {
        nbf: Some(now - 10),
        ..Default::default()
    });
    assert_eq!(try_upgrade(relay.addr, &past).await, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_living_longer_than_the_maximum_lifetime_are_refused() {
    let relay = Relay::start().await; // default: 24 h
    let auth = Auth::new(SECRET.as_bytes());
    let now = now_secs();
    let hour = 3600;
    for (what, exp, iat) in [
        ("exp - iat = 25 h", now + 25 * hour, Some(now)),
        ("no iat, exp - now = 25 h", now + 25 * hour, None),
        (
            "iat in the past, exp - iat = 25 h",
            now + 2 * hour,
            Some(now - 23 * hour),
        ),
        (
            "iat in the future, exp - now = 25 h",
            now + 25 * hour,
            Some(now + 2 * hour),
        ),
        ("a year", now + 365 * 24 * hour, Some(now)),
    ] {
        let t = auth.mint(&claims("r1", exp, iat)).expect("mint");
        assert_eq!(
            try_upgrade(relay.addr, &t).await,
            refused("token_lifetime_too_long"),
            "{what}"
        );
    }
    let day = auth
        .mint(&claims("r1", now + 24 * hour, Some(now)))
        .expect("mint");
    assert_eq!(try_upgrade(relay.addr, &day).await, Ok(()), "exactly 24 h");

    let strict =
        Relay::start_with(|c| c.token_policy.max_lifetime = Duration::from_secs(600)).await;
    let t = auth
        .mint(&claims("r1", now + 3600, Some(now)))
        .expect("mint");
    assert_eq!(
        try_upgrade(strict.addr, &t).await,
        refused("token_lifetime_too_long")
    );
    let t = auth
        .mint(&claims("r1", now + 600, Some(now)))
        .expect("mint");
    assert_eq!(try_upgrade(strict.addr, &t).await, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_and_issuer_are_checked_when_configured() {
    let relay = Relay::start_with(|c| {
        c.token_policy = TokenPolicy {
            audience: Some("assist-relay".into()),
            issuer: Some("https://backend.example".into()),
            ..TokenPolicy::default()
        };
    })
    .await;
    let aud = |a: &str| Some(a.to_owned());
    let iss = Some("https://backend.example".to_owned());
    for (extra, want) in [
        (
            ExtraClaims {
                iss: iss.clone(),
                ..Default::default()
            },
            refused("token_wrong_audience"),
        ),
        (
            ExtraClaims {
                aud: aud("other"),
                iss: iss.clone(),
                ..Default::default()
            },
            refused("token_wrong_audience"),
        ),
        (
            ExtraClaims {
                aud: aud("assist-relay"),
                ..Default::default()
            },
            refused("token_wrong_issuer"),
        ),
        (
            ExtraClaims {
                aud: aud("assist-relay"),
                iss: Some("https://evil.example".into()),
                ..Default::default()
            },
            refused("token_wrong_issuer"),
        ),
        (
            ExtraClaims {
                aud: aud("assist-relay"),
                iss: iss.clone(),
                ..Default::default()
            },
            Ok(()),
        ),
    ] {
        let t = token_extra(extra.clone());
        assert_eq!(try_upgrade(relay.addr, &t).await, want, "{extra:?}");
    }
    // Without --jwt-audience, a token meant for some audience is not for this relay (RFC 7519
    // 4.1.3); without --jwt-issuer, any issuer passes.
    let plain = Relay::start().await;
    let t = token_extra(ExtraClaims {
        aud: aud("assist-relay"),
        ..Default::default()
    });
    assert_eq!(
        try_upgrade(plain.addr, &t).await,
        refused("token_wrong_audience")
    );
    let t = token_extra(ExtraClaims {
        iss,
        ..Default::default()
    });
    assert_eq!(try_upgrade(plain.addr, &t).await, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_ids_made_of_dots_are_refused_at_the_handshake_and_the_api() {
    const API_KEY: &str = "api-key-api-key-api-key";
    let relay = Relay::start_with(|c| c.api_key = Some(API_KEY.into())).await;
    let now = now_secs();
    let auth = Auth::new(SECRET.as_bytes());
    for room in [".", "..", "..."] {
        let t = auth
            .mint(&claims(room, now + 3600, Some(now)))
            .expect("mint");
        assert_eq!(
            try_upgrade(relay.addr, &t).await,
            refused("token_invalid_claims"),
            "{room}"
        );
    }
    // Ids with dots among other characters stay valid.
    for room in ["room.42", ".hidden", "a..b"] {
        let t = auth
            .mint(&claims(room, now + 3600, Some(now)))
            .expect("mint");
        assert_eq!(try_upgrade(relay.addr, &t).await, Ok(()), "{room}");
    }
    for path in [
        "/v1/rooms/../close",
        "/v1/rooms/%2E%2E/close",
        "/v1/rooms/%2e/close",
        "/v1/rooms/..",
    ] {
        let method = if path.ends_with("/close") {
            "POST"
        } else {
            "GET"
        };
        let (status, body) = raw_http(
            relay.admin,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {API_KEY}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert_eq!(status, 400, "{path}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
        assert_eq!(json["error"], "invalid_room", "{path}");
    }
}

// ---------------------------------------------------------------------------------------------
// Masking hashes and JWT keys

/// Nodes with their own configurations over one room store (one Redis in cluster mode).
struct Nodes {
    addrs: Vec<SocketAddr>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    _redis: Option<RedisServer>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for s in self.stops.drain(..) {
            let _ = s.send(());
        }
    }
}

/// Starts one node per configuration. Embedded mode: over one memory store, sharing the first
/// configuration's mask key (one process, one key). Cluster mode: each node reads the mask key
/// from Redis (`SET NX` by the first), as `relay serve` does without `--mask-key`.
async fn start_nodes(mut configs: Vec<NodeConfig>) -> Nodes {
    let mut stores: Vec<(
        Arc<dyn assist_relay::store::Store>,
        Arc<dyn assist_relay::store::Broker>,
    )> = Vec::new();
    let mut redis = None;
    if cluster_mode() {
        let server = RedisServer::start().await;
        for config in &mut configs {
            let store = server.store(config.log.clone(), Metrics::new().redis).await;
            config.mask_key = assist_relay::keys::shared_mask_key(&store)
                .await
                .expect("shared mask key");
            stores.push((Arc::new(store.clone()), Arc::new(store)));
        }
        redis = Some(server);
    } else {
        let store = MemoryStore::new(configs[0].log.clone());
        let key = configs[0].mask_key;
        for config in &mut configs {
            config.mask_key = key;
            stores.push((store.clone(), store.clone()));
        }
    }
    let mut addrs = Vec::new();
    let mut stops = Vec::new();
    for (config, (log, broker)) in configs.into_iter().zip(stores) {
        let node = Node::new(config, log, broker);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        addrs.push(listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        tokio::spawn(assist_relay::run(listener, node, async move {
            let _ = stopped.await;
        }));
    }
    Nodes {
        addrs,
        stops,
        _redis: redis,
    }
}

async fn join_with(addr: SocketAddr, token: &str, role: Role, sub: &str) -> Client {
    let (ws, _) = tokio_tungstenite::connect_async(upgrade(addr, Some("form"), token))
        .await
        .expect("upgrade");
    let mut c = Client::new(ws, Codec::Json, role, sub);
    c.join(None).await;
    c
}

async fn publish_acked(c: &mut Client, event: &str, id: &str) {
    c.publish(event, Some(id)).await;
    loop {
        match c.recv().await {
            ServerFrame::Ack { id: got, .. } if got == id => return,
            ServerFrame::Error { code, message, .. } => panic!("{code}: {message}"),
            _ => {}
        }
    }
}

const PAGE: &str = r#"{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":2,"tagName":"html","attributes":{},"childNodes":[{"type":2,"tagName":"body","attributes":{},"childNodes":[{"type":2,"tagName":"input","attributes":{},"childNodes":[],"id":10},{"type":2,"tagName":"span","attributes":{},"childNodes":[{"type":3,"textContent":"-","id":21}],"id":20}],"id":3}],"id":2}],"id":1},"initialOffset":{"left":0,"top":0}},"timestamp":1}"#;
const TYPED: &str =
    r#"{"type":3,"data":{"source":5,"text":"Zhang San","isChecked":false,"id":10},"timestamp":2}"#;
const ECHO: &str = r#"{"type":3,"data":{"source":0,"texts":[{"id":21,"value":"Zhang San"}],"attributes":[],"removes":[],"adds":[]},"timestamp":3}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_jwt_secret_does_not_change_how_echoes_of_typed_values_are_masked() {
    // Node 0 still has the old secret; node 1 has been rotated to a new one. Same room store.
    let old = NodeConfig::with_secret(SECRET);
    let new = NodeConfig::with_secret(SECOND_SECRET);
    let nodes = start_nodes(vec![old, new]).await;
    let now = now_secs();
    let mut c = claims("form", now + 3600, Some(now));
    c.mask = Some("inputs".into());

    // The customer types a name through node 0 ...
    let old_token = Auth::new(SECRET.as_bytes()).mint(&c).expect("mint");
    let mut cust = join_with(nodes.addrs[0], &old_token, Role::Customer, "cust").await;
    publish_acked(&mut cust, PAGE, "p").await;
    publish_acked(&mut cust, TYPED, "t").await;
    cust.drop_abruptly();

    // ... and, reconnected through node 1 with a token of the new secret, the page echoes it.
    let new_token = Auth::new(SECOND_SECRET.as_bytes()).mint(&c).expect("mint");
    let mut cust = join_with(nodes.addrs[1], &new_token, Role::Customer, "cust").await;
    publish_acked(&mut cust, ECHO, "e").await;

    c.role = Role::Agent;
    c.sub = "agent".into();
    c.mask = None;
    let agent_token = Auth::new(SECOND_SECRET.as_bytes()).mint(&c).expect("mint");
    // A fresh agent gets the page, the typed value and the echo from the store (catch-up).
    let (ws, _) =
        tokio_tungstenite::connect_async(upgrade(nodes.addrs[1], Some("form"), &agent_token))
            .await
            .expect("upgrade");
    let mut agent = Client::new(ws, Codec::Json, Role::Agent, "agent");
    agent.capturing = true;
    agent.join(None).await;
    agent.expect_no_entries(Duration::from_millis(200)).await;
    let seen = String::from_utf8_lossy(&agent.captured).into_owned();
    assert!(seen.contains("\"id\":21"), "the echo arrived: {seen}");
    assert!(
        !seen.contains("Zhang San"),
        "the echo through the rotated node is not masked: {seen}"
    );
    assert!(seen.contains("***** ***"), "the echo is masked: {seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_a_cluster_agree_on_one_mask_key_stored_in_redis() {
    if !cluster_mode() {
        return; // embedded mode has one process and one key
    }
    let server = RedisServer::start().await;
    let mut keys = Vec::new();
    for _ in 0..3 {
        let store = server.store(Default::default(), Metrics::new().redis).await;
        keys.push(
            assist_relay::keys::shared_mask_key(&store)
                .await
                .expect("mask key"),
        );
    }
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "one key: {keys:?}");
}
