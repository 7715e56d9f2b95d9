//! Native-page placeholders (from the app's `native_page` frame and from the backend's HTTP
//! API) and the room's page timeline.

mod common;

use std::net::SocketAddr;

use assist_relay_proto::{
    ClientFrame, Codec, ErrorCode, NativePage, PageKind, Role, ServerFrame, SnapshotReason,
};
use common::*;

const API_KEY: &str = "test-api-key-0123456789";

const META: &str = r#"{"type":4,"data":{"href":"https://shop.example/cart","width":390,"height":844},"timestamp":1700000000000}"#;
const SNAPSHOT: &str = r#"{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":2,"tagName":"html","attributes":{},"childNodes":[{"type":2,"tagName":"head","attributes":{},"childNodes":[{"type":2,"tagName":"title","attributes":{},"childNodes":[{"type":3,"textContent":"Cart","id":5}],"id":4}],"id":3}],"id":2}],"id":1},"initialOffset":{"left":0,"top":0}},"timestamp":1700000000001}"#;

fn checkout() -> NativePage {
    NativePage {
        page_id: "checkout".into(),
        title: "Payment <b>now</b>".into(),
        template: None,
        fields: [("amount".to_owned(), "¥50,000".to_owned())].into(),
    }
}

async fn post(addr: SocketAddr, path: &str, key: Option<&str>, body: &str) -> (u16, String) {
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    raw_http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

async fn get(addr: SocketAddr, path: &str, key: &str) -> (u16, String) {
    raw_http(
        addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nAuthorization: Bearer {key}\r\n\r\n"
        ),
    )
    .await
}

/// Reads until the event at `offset`.
async fn event_at(c: &mut Client, offset: u64) -> String {
    loop {
        if let Some((o, json)) = event_json(&c.recv().await) {
            if o == offset {
                return json;
            }
        }
    }
}

async fn ack_of(c: &mut Client, id: &str) -> u64 {
    loop {
        match c.recv().await {
            ServerFrame::Ack { id: i, offset, .. } if i == id => return offset,
            ServerFrame::Error { code, message, .. } => panic!("{code}: {message}"),
            _ => {}
        }
    }
}

fn pages_of(j: &Joined) -> Vec<assist_relay_proto::PageRecord> {
    match &j.frame {
        ServerFrame::Joined { pages, .. } => pages.clone(),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_reports_a_native_screen_and_agents_see_a_placeholder() {
    let relay = Relay::start().await;
    let room = "native-frame";
    let (mut cust, _) = relay.join(room, Role::Customer, "cust", Codec::Json).await;
    let (mut agent, _) = relay.join(room, Role::Agent, "agent", Codec::Json).await;
    cust.publish(META, Some("m")).await;
    let meta_at = ack_of(&mut cust, "m").await;
    cust.publish(SNAPSHOT, Some("s")).await;
    ack_of(&mut cust, "s").await;

    cust.send(&ClientFrame::NativePage {
        id: Some("np-1".into()),
        page: checkout(),
    })
    .await;
    let snap_at = ack_of(&mut cust, "np-1").await;
    // A resend is idempotent.
    cust.send(&ClientFrame::NativePage {
        id: Some("np-1".into()),
        page: checkout(),
    })
    .await;
    let again = cust
        .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
        .await;
    assert_eq!(
        again,
        ServerFrame::Ack {
            id: "np-1".into(),
            offset: snap_at,
            duplicate: true
        }
    );

    // The live agent sees the placeholder: a Meta with native:// and a FullSnapshot showing the
    // title as text (escaped, never markup), with the last web page's viewport.
    let meta = event_at(&mut agent, snap_at - 1).await;
    assert!(meta.contains(r#""href":"native://checkout""#), "{meta}");
    assert!(meta.contains(r#""width":390"#), "{meta}");
    let snap = event_at(&mut agent, snap_at).await;
    let parsed: serde_json::Value = serde_json::from_str(&snap).expect("json");
    assert_eq!(parsed["type"], 2, "{snap}");
    assert!(snap.contains("Payment <b>now</b>"), "the title is text");
    assert!(
        !snap.contains(r#""tagName":"b""#),
        "the title is not markup"
    );
    assert!(snap.contains("¥50,000"));
    assert!(!snap.contains(r#""tagName":"script""#));

    // A late agent's keyframe is the placeholder, not the stale web page; the timeline lists both.
    let (_, late) = relay.join(room, Role::Agent, "late", Codec::MsgPack).await;
    let offsets: Vec<u64> = late.catch_up.iter().filter_map(|f| f.offset()).collect();
    assert_eq!(offsets, vec![snap_at - 1, snap_at]);
    let pages = pages_of(&late);
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert_eq!(pages[0].kind, PageKind::Web);
    assert_eq!(pages[0].url, "https://shop.example/cart");
    assert_eq!(pages[0].title.as_deref(), Some("Cart"));
    assert_eq!(pages[0].offset, meta_at);
    assert_eq!(pages[1].kind, PageKind::Native);
    assert_eq!(pages[1].page_id.as_deref(), Some("checkout"));
    assert_eq!(pages[1].title.as_deref(), Some("Payment <b>now</b>"));
    assert_eq!(pages[1].offset, snap_at - 1);

    // The web view comes back without a snapshot: the relay asks for one.
    cust.publish(&synthetic(3, 1), None).await;
    let f = cust
        .recv_until(|f| matches!(f, ServerFrame::SnapshotRequest { .. }))
        .await;
    assert_eq!(
        f,
        ServerFrame::SnapshotRequest {
            reason: SnapshotReason::NativePageLeft
        }
    );
    // Its new snapshot takes over as the keyframe.
    cust.publish(META, None).await;
    cust.publish(SNAPSHOT, Some("back")).await;
    let back = ack_of(&mut cust, "back").await;
    let (_, later) = relay.join(room, Role::Agent, "later", Codec::Json).await;
    let offsets: Vec<u64> = later.catch_up.iter().filter_map(|f| f.offset()).collect();
    assert_eq!(offsets, vec![back - 1, back]);
    let kinds: Vec<PageKind> = pages_of(&later).iter().map(|p| p.kind).collect();
    assert_eq!(kinds, vec![PageKind::Web, PageKind::Native, PageKind::Web]);

    // Bad reports are refused and harm nothing.
    let mut bad = checkout();
    bad.page_id = "no spaces allowed".into();
    cust.send(&ClientFrame::NativePage {
        id: Some("bad".into()),
        page: bad,
    })
    .await;
    let f = cust
        .recv_until(|f| matches!(f, ServerFrame::Error { .. }))
        .await;
    assert!(
        matches!(
            f,
            ServerFrame::Error {
                code: ErrorCode::InvalidFrame,
                ..
            }
        ),
        "{f:?}"
    );
    let mut unknown = checkout();
    unknown.template = Some("no-such-template".into());
    cust.send(&ClientFrame::NativePage {
        id: Some("unknown".into()),
        page: unknown,
    })
    .await;
    let f = cust
        .recv_until(|f| matches!(f, ServerFrame::Error { .. }))
        .await;
    assert!(
        matches!(&f, ServerFrame::Error { code: ErrorCode::InvalidFrame, id: Some(i), .. } if i == "unknown"),
        "{f:?}"
    );
    agent
        .send(&ClientFrame::NativePage {
            id: Some("agent".into()),
            page: checkout(),
        })
        .await;
    let f = agent
        .recv_until(|f| matches!(f, ServerFrame::Error { .. }))
        .await;
    assert!(
        matches!(
            f,
            ServerFrame::Error {
                code: ErrorCode::Forbidden,
                ..
            }
        ),
        "{f:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_reports_a_native_screen_over_the_http_api() {
    let relay = Relay::start_with(|c| c.api_key = Some(API_KEY.into())).await;
    let room = "native-api";
    let admins = relay.admin_addrs();
    // The agent sits on one node; the backend calls another (in cluster mode).
    let mut agent = relay
        .connect_on(0, room, Role::Agent, "agent", Codec::Json)
        .await;
    agent.join(None).await;
    let api = admins[admins.len() - 1];
    let body =
        r#"{"id":"req-1","page_id":"kyc","title":"Identity check","fields":{"step":"2 of 3"}}"#;
    let path = format!("/v1/rooms/{room}/native-page");

    // Refusals: no key, wrong key, bad room, bad body.
    assert_eq!(post(api, &path, None, body).await.0, 401);
    assert_eq!(
        post(api, &path, Some("wrong-key-0123456789"), body).await.0,
        401
    );
    let (status, text) = post(api, "/v1/rooms/bad%20room/native-page", Some(API_KEY), body).await;
    assert_eq!(status, 400, "{text}");
    let (status, text) = post(api, &path, Some(API_KEY), r#"{"title":"no id"}"#).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("invalid_body"), "{text}");

    let (status, text) = post(api, &path, Some(API_KEY), body).await;
    assert_eq!(status, 201, "{text}");
    let reply: serde_json::Value = serde_json::from_str(&text).expect("json");
    let offset = reply["offset"].as_u64().expect("offset");
    assert_eq!(reply["duplicate"], false);
    // A retry with the same id stores nothing new.
    let (status, text) = post(api, &path, Some(API_KEY), body).await;
    assert_eq!(status, 201);
    assert!(text.contains(r#""duplicate":true"#), "{text}");
    assert!(text.contains(&format!(r#""offset":{offset}"#)), "{text}");

    let snap = event_at(&mut agent, offset).await;
    assert!(
        snap.contains("Identity check") && snap.contains("2 of 3"),
        "{snap}"
    );

    // A customer joining now does not change what agents see; an agent joining sees the placeholder.
    let (_, late) = relay.join(room, Role::Agent, "late", Codec::Json).await;
    let offsets: Vec<u64> = late.catch_up.iter().filter_map(|f| f.offset()).collect();
    assert_eq!(offsets, vec![offset - 1, offset]);

    // The room at a glance.
    let (status, text) = get(admins[0], &format!("/v1/rooms/{room}"), API_KEY).await;
    assert_eq!(status, 200, "{text}");
    let info: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(info["room"], room);
    assert_eq!(info["head"], offset);
    assert_eq!(info["pages"][0]["kind"], "native");
    assert_eq!(info["pages"][0]["page_id"], "kyc");
    assert_eq!(info["pages"][0]["url"], "native://kyc");
    assert_eq!(
        relay
            .metric("relay_native_pages_total{source=\"api\"}")
            .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_is_off_without_a_key() {
    let relay = Relay::start().await;
    let body = r#"{"page_id":"kyc"}"#;
    let (status, text) = post(relay.admin, "/v1/rooms/r1/native-page", Some(API_KEY), body).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("api_disabled"), "{text}");
    let (status, _) = get(relay.admin, "/v1/rooms/r1", API_KEY).await;
    assert_eq!(status, 403);
}
