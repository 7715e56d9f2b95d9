//! The admin listener: `/livez`, `/readyz` and `/metrics`, on its own port.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::server::Node;

/// The admin routes.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
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

async fn metrics(State(node): State<Arc<Node>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        node.metrics.render(),
    )
}

/// Serves the admin routes until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    node: Arc<Node>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(node))
        .with_graceful_shutdown(shutdown)
        .await
}
