//! The admin listener, on its own port: `/livez`, `/readyz`, `/metrics`, and the
//! server-to-server HTTP API under `/v1` (authenticated with `--api-key`):
//! - `GET /v1/rooms/{room}`: epoch, head and page timeline;
//! - `POST /v1/rooms/{room}/native-page`: the customer's app is on a native screen (body: a
//!   [`assist_relay_proto::NativePage`] plus an optional idempotency `id`);
//! - `POST /v1/rooms/{room}/close`: end the session (`{"closed": true}` if this call closed it).
//!
//! The listener holds at most `--admin-max-connections` connections (past it a new connection
//! drops the oldest), gives a client `--admin-header-timeout` to
//! send a request's headers and `--admin-request-timeout` to be answered. `/metrics` requires
//! `Authorization: Bearer` with `--metrics-token` when one is set.

use std::future::Future;
use std::sync::Arc;

use assist_relay_proto::NativePage;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

use crate::server::Node;

/// The admin routes.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/rooms/{room}", get(room_info))
        .route("/v1/rooms/{room}/native-page", post(native_page))
        .route("/v1/rooms/{room}/close", post(close_room))
        .layer(axum::middleware::from_fn(audit_api))
        .with_state(node)
}

/// Audits every `/v1` call (method, path, status and which key, never the key itself).
async fn audit_api(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
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
fn api_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": code, "message": message.into() });
    json_response(status, &body)
}

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// Checks `Authorization: Bearer <api key>` and the room id; `Some` is the refusal to send.
fn refusal(node: &Node, headers: &HeaderMap, room: &str) -> Option<Response> {
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
    if let Err(e) = assist_relay_proto::validate_id("room", room) {
        return Some(api_error(StatusCode::BAD_REQUEST, "invalid_room", e));
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

async fn readyz(State(node): State<Arc<Node>>) -> impl IntoResponse {
    if node.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if node.ready().await {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "room store unavailable\n")
    }
}

async fn metrics(State(node): State<Arc<Node>>, headers: HeaderMap) -> Response {
    use sha2::{Digest, Sha256};
    if let Some(token) = node.config.quotas.metrics_token.as_deref() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Compare digests, so the comparison's timing says nothing about the token.
        if Sha256::digest(given.as_bytes()) != Sha256::digest(token.as_bytes()) {
            return api_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong metrics token (Authorization: Bearer TOKEN)",
            );
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        node.metrics.render(),
    )
        .into_response()
}

/// Serves the admin routes until `shutdown` resolves, within the listener's limits.
pub async fn serve(
    listener: TcpListener,
    node: Arc<Node>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let limits = node.config.quotas.clone();
    let max = limits.admin_max_connections.max(1);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.admin_header_timeout);
    let service = hyper_util::service::TowerToHyperService::new(Timed {
        router: router(node),
        timeout: limits.admin_request_timeout,
    });
    let mut conns = tokio::task::JoinSet::new();
    // Connections by age, to drop the oldest when a new one needs its place.
    let mut order: std::collections::VecDeque<tokio::task::AbortHandle> = Default::default();
    tokio::pin!(shutdown);
    let (stop, _) = tokio::sync::watch::channel(false);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            () = &mut shutdown => break,
        };
        // At the limit the oldest connection goes: a flood of slow clients cannot hold the
        // listener (or the process's file descriptors), and a probe that arrives still gets in.
        while conns.try_join_next().is_some() {}
        order.retain(|h| !h.is_finished());
        while conns.len() >= max {
            let Some(oldest) = order.pop_front() else {
                break;
            };
            oldest.abort();
            while conns.try_join_next().is_some() {}
            if conns.len() >= max {
                // Aborted but not yet joined: wait for it so the count is exact.
                let _ = conns.join_next().await;
            }
        }
        let conn = http.serve_connection(TokioIo::new(stream), service.clone());
        let mut stopped = stop.subscribe();
        // A keep-alive connection lives at most this long, so that idle clients give their place
        // back (the header timeout covers a request's headers, not the wait for the next one).
        let lifetime = limits.admin_request_timeout + limits.admin_header_timeout;
        let request_timeout = limits.admin_request_timeout;
        order.push_back(conns.spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stopped.changed() => {}
                () = tokio::time::sleep(lifetime) => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(request_timeout, conn).await;
        }));
    }
    stop.send_replace(true);
    drop(listener);
    while tokio::time::timeout(std::time::Duration::from_secs(5), conns.join_next())
        .await
        .ok()
        .flatten()
        .is_some()
    {}
    Ok(())
}

/// The router with a deadline per request: past it the answer is 503 `timeout`.
#[derive(Clone)]
struct Timed {
    router: Router,
    timeout: std::time::Duration,
}

impl tower_service::Service<hyper::Request<hyper::body::Incoming>> for Timed {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<Response, std::convert::Infallible>> + Send + 'static>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let req = req.map(axum::body::Body::new);
        let mut router = self.router.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let answer = tower_service::Service::call(&mut router, req);
            match tokio::time::timeout(timeout, answer).await {
                Ok(r) => r,
                Err(_) => Ok(api_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    "the request took too long",
                )),
            }
        })
    }
}
