//! HTTP on the node's two listeners, on hyper:
//! - the public listener ([`run`]): WebSocket upgrades on `/ws` and, in demo mode, the demo pages
//!   under `/demo/` ([`demo`]); one connection's way from `accept` to its session is
//!   [`public`]'s, the upgrade's HTTP details [`ws`]'s;
//! - the admin listener ([`serve_admin`]): `/livez`, `/readyz`, `/metrics` ([`admin`]) and the
//!   `/v1` API ([`api`]), within its own limits: at most `--admin-max-connections` connections
//!   (past it a new connection drops the oldest), `--admin-header-timeout` to send a request's
//!   headers, `--admin-request-timeout` to be answered.
//!
//! While a cluster node connects to Redis, [`starting`] answers the admin listener's probes
//! (`/livez` 200, `/readyz` 503).
//!
//! [`serve`] runs both for `relay serve` and the tests. Not here: admission decisions
//! (`crate::auth`, `crate::limits`), the session (`crate::session`), the node (`crate::node`).

pub mod admin;
pub mod api;
pub mod demo;
mod public;
pub mod starting;
pub mod webhooks;
pub mod ws;

use std::future::Future;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::node::Node;

/// Serves a node on its public and admin listeners until `shutdown` resolves, then drains the
/// public one ([`run`]) and stops the admin one.
pub async fn serve(
    listener: TcpListener,
    admin: TcpListener,
    node: Arc<Node>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = tokio::spawn(serve_admin(admin, node.clone(), async {
        let _ = admin_stopped.await;
    }));
    run(listener, node, shutdown).await;
    let _ = stop_admin.send(());
    let _ = admin_task.await;
}

/// Serves WebSocket clients (and the demo pages in demo mode) on `listener` until `shutdown`
/// resolves, then drains: stops accepting, tells every client to reconnect elsewhere (close
/// 4000), and returns once they are gone or the drain deadline passes.
pub async fn run(listener: TcpListener, node: Arc<Node>, shutdown: impl Future<Output = ()>) {
    let public = public::Public {
        demo: demo::router(node.clone()),
        node: node.clone(),
    };
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let public = public.clone();
                    conns.spawn(public::accept(public, stream, peer).instrument(tracing::debug_span!("accept", %peer)));
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    tracing::info!(open = node.open_connections(), "draining");
    node.begin_drain();
    drop(listener);
    let deadline = tokio::time::sleep(node.config.drain_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = conns.join_next() => if next.is_none() { break },
            () = &mut deadline => {
                tracing::warn!(left = conns.len(), "drain deadline passed; closing the rest");
                conns.abort_all();
                break;
            }
        }
    }
    tracing::info!("drained");
}

/// Serves the admin routes until `shutdown` resolves, within the listener's limits.
pub async fn serve_admin(
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
        router: admin::router(node),
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
                Err(_) => Ok(api::api_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    "the request took too long",
                )),
            }
        })
    }
}
