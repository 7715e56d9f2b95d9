//! The Origin allow-list: browsers from other sites are refused at the upgrade; non-browser
//! clients (no Origin header) are unaffected.

mod common;

use assist_relay_proto::{Codec, Role};
use common::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

async fn upgrade(relay: &Relay, origin: Option<&str>) -> Result<(), (u16, String)> {
    let token = relay.token("o", Role::Agent, "a");
    let mut req = format!("ws://{}/ws?room=o&token={token}", relay.addr)
        .into_client_request()
        .expect("request");
    if let Some(origin) = origin {
        req.headers_mut()
            .insert("origin", HeaderValue::from_str(origin).expect("header"));
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err((resp.status().as_u16(), body))
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_from_an_origin_outside_the_allow_list_is_refused_with_403() {
    let relay =
        Relay::start_with(|c| c.allowed_origins = vec!["https://app.example.com".into()]).await;
    let (status, body) = upgrade(&relay, Some("https://evil.example"))
        .await
        .expect_err("refused");
    assert_eq!(status, 403);
    assert!(body.contains("\"origin_not_allowed\""), "{body}");
    assert!(upgrade(&relay, Some("https://app.example.com"))
        .await
        .is_ok());
    assert!(
        upgrade(&relay, None).await.is_ok(),
        "non-browser clients send no Origin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_allow_list_any_origin_may_connect() {
    let relay = Relay::start().await;
    assert!(upgrade(&relay, Some("https://anywhere.example"))
        .await
        .is_ok());
    let (_c, j) = relay.join("o", Role::Agent, "b", Codec::Json).await;
    assert_eq!(j.members().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trailing_slash_is_ignored_on_either_side_as_operations_md_says() {
    let relay =
        Relay::start_with(|c| c.allowed_origins = vec!["https://app.example.com".into()]).await;
    assert!(upgrade(&relay, Some("https://app.example.com/"))
        .await
        .is_ok());
    assert!(upgrade(&relay, Some("HTTPS://APP.example.com/"))
        .await
        .is_ok());
    let (status, _) = upgrade(&relay, Some("https://app.example.com//"))
        .await
        .expect_err("only one slash is ignored");
    assert_eq!(status, 403);
    let relay =
        Relay::start_with(|c| c.allowed_origins = vec!["https://app.example.com/".into()]).await;
    assert!(upgrade(&relay, Some("https://app.example.com/"))
        .await
        .is_ok());
    assert!(upgrade(&relay, Some("https://app.example.com"))
        .await
        .is_ok());
}
