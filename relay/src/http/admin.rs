//! The admin listener's routes (on its own port): `/livez`, `/readyz`, `/metrics`, and the
//! HTTP API under `/v1` ([`super::api`]). `/metrics` requires `Authorization: Bearer` with
//! `--metrics-token` when one is set.
//!
//! Not here: the listener and its limits (`super::serve_admin`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::api::api_error;
use crate::node::Node;

/// The admin routes.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(super::api::routes())
        .layer(axum::middleware::from_fn(super::api::audit_api))
        .with_state(node)
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
