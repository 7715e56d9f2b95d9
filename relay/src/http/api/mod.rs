//! The server-to-server HTTP API under `/v1` on the admin listener, authenticated with
//! `--api-key` (every call audited):
//! - `GET /v1/rooms/{room}`: epoch, head and page timeline;
//! - `POST /v1/rooms/{room}/native-page`: the customer's app is on a native screen (body: a
//!   [`assist_relay_proto::NativePage`] plus an optional idempotency `id`);
//! - `POST /v1/rooms/{room}/close`: end the session (`{"closed": true}` if this call closed it);
//! - `GET /v1/rooms`: the live rooms over every node ([`rooms`]);
//! - `POST /v1/rooms/{room}/chat`: a chat message from a bot or the IM desk ([`chat`]);
//! - `GET /v1/recordings`, `/v1/recordings/{id}`, `/v1/recordings/{id}/events`: recordings
//!   ([`recordings`]).
//!
//! The whole of it is described in `docs/openapi.json` (checked against [`routes`] by a test).
//!
//! Not here: the probes and `/metrics` (`super::admin`), the listener (`super`).

use std::sync::Arc;

use assist_relay_proto::NativePage;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;

use crate::node::Node;

pub mod chat;
pub mod recordings;
pub mod rooms;

/// Every `/v1` endpoint: method, path, handler. [`routes`] is built from it and [`endpoints`]
/// lists it, so that `docs/openapi.json` is checked against what the router serves
/// (`relay/tests/openapi.rs`).
fn table() -> Vec<(&'static str, &'static str, MethodRouter<Arc<Node>>)> {
    vec![
        ("GET", "/v1/rooms", get(list_rooms)),
        ("GET", "/v1/rooms/{room}", get(room_info)),
        ("POST", "/v1/rooms/{room}/native-page", post(native_page)),
        ("POST", "/v1/rooms/{room}/close", post(close_room)),
        ("POST", "/v1/rooms/{room}/chat", post(post_chat)),
        ("GET", "/v1/recordings", get(list_recordings)),
        ("GET", "/v1/recordings/{id}", get(recording)),
        ("GET", "/v1/recordings/{id}/events", get(recording_events)),
        (
            "GET",
            "/v1/webhooks/dead",
            get(super::webhooks::dead_letters),
        ),
    ]
}

/// The `/v1` routes (audited by [`audit_api`], which the admin router puts over all its routes,
/// so that a call to an unknown `/v1` path is audited too).
pub fn routes() -> Router<Arc<Node>> {
    table()
        .into_iter()
        .fold(Router::new(), |r, (_, path, handler)| {
            r.route(path, handler)
        })
}

/// The (method, path) of every `/v1` endpoint the router serves, paths as in OpenAPI.
pub fn endpoints() -> Vec<(&'static str, &'static str)> {
    table().into_iter().map(|(m, p, _)| (m, p)).collect()
}

/// Audits every `/v1` call (method, path, status and which key, never the key itself).
pub(super) async fn audit_api(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !req.uri().path().starts_with("/v1/") {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let key_id = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(crate::audit::key_id);
    let resp = next.run(req).await;
    let status = resp.status();
    let authorized = status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN;
    crate::audit::api_call(
        method.as_str(),
        &path,
        status.as_u16(),
        key_id.as_deref(),
        authorized,
    );
    resp
}

/// A JSON error answer of the HTTP API: `{"error": code, "message": text}`.
pub(crate) fn api_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": code, "message": message.into() });
    json_response(status, &body)
}

pub(crate) fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// `GET /v1/rooms?state=&limit=&cursor=`.
async fn list_rooms(
    State(node): State<Arc<Node>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&node, &headers) {
        return r;
    }
    rooms::listing(&node, uri.query()).await
}

/// `GET /v1/recordings`.
async fn list_recordings(
    State(node): State<Arc<Node>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&node, &headers) {
        return r;
    }
    recordings::list(&node, uri.query()).await
}

/// `GET /v1/recordings/{id}`.
async fn recording(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&node, &headers) {
        return r;
    }
    recordings::one(&node, &id).await
}

/// `GET /v1/recordings/{id}/events`.
async fn recording_events(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&node, &headers) {
        return r;
    }
    recordings::events(&node, &id).await
}

/// `POST /v1/rooms/{room}/chat`.
async fn post_chat(
    State(node): State<Arc<Node>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = refusal(&node, &headers, &room) {
        return r;
    }
    chat::post(&node, &room, &body).await
}

/// Checks `Authorization: Bearer <api key>` and the room id; `Some` is the refusal to send.
pub(super) fn refusal(node: &Node, headers: &HeaderMap, room: &str) -> Option<Response> {
    if let Some(r) = unauthorized(node, headers) {
        return Some(r);
    }
    if let Err(e) = assist_relay_proto::validate_id("room", room) {
        return Some(api_error(StatusCode::BAD_REQUEST, "invalid_room", e));
    }
    None
}

/// Checks `Authorization: Bearer <api key>`; `Some` is the refusal to send.
fn unauthorized(node: &Node, headers: &HeaderMap) -> Option<Response> {
    use sha2::{Digest, Sha256};
    let Some(key) = node.config.api_key.as_deref() else {
        return Some(api_error(
            StatusCode::FORBIDDEN,
            "api_disabled",
            "the HTTP API is disabled; start the node with --api-key",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare digests, so the comparison's timing says nothing about the key.
    if Sha256::digest(given.as_bytes()) != Sha256::digest(key.as_bytes()) {
        return Some(api_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong API key (Authorization: Bearer KEY)",
        ));
    }
    None
}

async fn room_info(
    State(node): State<Arc<Node>>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refusal(&node, &headers, &room) {
        return r;
    }
    match node.log.info(&room).await {
        Ok(info) => json_response(StatusCode::OK, &info),
        Err(e) => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    }
}

/// `POST /v1/rooms/{room}/close`: ends the session (participants get `room_closed`; the
/// recording is made).
async fn close_room(
    State(node): State<Arc<Node>>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refusal(&node, &headers, &room) {
        return r;
    }
    match node.close_room(&room).await {
        Ok(closed) => {
            crate::audit::session_ended(&room, "api", closed);
            json_response(StatusCode::OK, &serde_json::json!({ "closed": closed }))
        }
        Err(e) => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    }
}

/// Body of `POST /v1/rooms/{room}/native-page`.
#[derive(serde::Deserialize)]
struct NativePageRequest {
    /// Makes a retry idempotent.
    #[serde(default)]
    id: Option<String>,
    #[serde(flatten)]
    page: NativePage,
}

async fn native_page(
    State(node): State<Arc<Node>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = refusal(&node, &headers, &room) {
        return r;
    }
    let req: NativePageRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, "invalid_body", e.to_string()),
    };
    if let Err(e) = req.page.validate() {
        return api_error(StatusCode::BAD_REQUEST, "invalid_body", e);
    }
    if let Some(id) = &req.id {
        if let Err(e) = assist_relay_proto::validate_id("id", id) {
            return api_error(StatusCode::BAD_REQUEST, "invalid_body", e);
        }
    }
    let stored = crate::pages::store_native_page(
        node.log.as_ref(),
        &node.templates,
        &room,
        &req.page,
        "api",
        req.id.as_deref(),
        crate::pages::DEFAULT_VIEWPORT,
    )
    .await;
    match stored {
        Ok(a) => {
            if !a.duplicate {
                let event = crate::webhook::Event::native_page(&room, &req.page, a.offset, "api");
                node.emit(event).await;
                node.metrics.native_pages.with_label_values(&["api"]).inc();
                node.metrics
                    .appends
                    .with_label_values(&["native_page"])
                    .inc();
            }
            let body = serde_json::json!({ "offset": a.offset, "duplicate": a.duplicate });
            json_response(StatusCode::CREATED, &body)
        }
        Err(crate::pages::NativePageError::Invalid(e)) => {
            api_error(StatusCode::BAD_REQUEST, "invalid_page", e.to_string())
        }
        Err(crate::pages::NativePageError::Store(e)) => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    }
}
