//! `GET /v1/webhooks/dead` on the admin listener (bearer API key, like the rest of `/v1`): the
//! most recent webhooks given up on, oldest first, `?limit=N` (default and most: 1000).
//! Embedded mode keeps them in memory (`--webhook-dead-letters`); cluster mode reads the
//! `ar:webhooks:dead` stream.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::api::{api_error, json_response, refusal};
use crate::Node;

/// Most dead letters one answer lists.
const MAX: usize = 1000;

/// `GET /v1/webhooks/dead` (routed by [`super::api`]'s table).
pub(super) async fn dead_letters(
    State(node): State<Arc<Node>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    // The API key check; "webhooks" stands in for a room id.
    if let Some(r) = refusal(&node, &headers, "webhooks") {
        return r;
    }
    let limit = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(MAX)
        .clamp(1, MAX);
    let Some(hooks) = node.webhooks.get() else {
        return json_response(StatusCode::OK, &serde_json::json!({ "dead_letters": [] }));
    };
    match hooks.dead_letters(limit).await {
        Ok(dead) => json_response(StatusCode::OK, &serde_json::json!({ "dead_letters": dead })),
        Err(e) => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    }
}
