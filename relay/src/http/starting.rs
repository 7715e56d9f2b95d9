//! The admin listener while a node is starting (cluster mode: connecting to Redis, retried for up
//! to 30 s): `/livez` answers 200, `/readyz` and everything else 503 with what the node is
//! waiting for, so probes and operators see a live process that is not ready yet rather than a
//! refused connection. [`serve_starting`] hands the listener back for [`super::serve`].

use std::convert::Infallible;
use std::future::Future;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// Answers probes on `listener` until `until` resolves, then returns the listener. `waiting`
/// says what the node waits for (`connecting to redis at redis://10.0.0.7:6379/0`); at most
/// `max_connections` connections are served at once (more are closed at once).
pub async fn serve_starting(
    listener: TcpListener,
    waiting: String,
    max_connections: usize,
    until: impl Future<Output = ()>,
) -> TcpListener {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_secs(5));
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(until);
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
            () = &mut until => break,
        };
        if conns.len() >= max_connections.max(1) {
            continue; // dropped: closed
        }
        let waiting = waiting.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let answer = answer(req.uri().path(), &waiting);
            async move { Ok::<_, Infallible>(answer) }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        conns.spawn(async move {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), conn).await;
        });
    }
    conns.abort_all();
    listener
}

fn answer(path: &str, waiting: &str) -> Response<String> {
    let (status, body) = match path {
        "/livez" => (StatusCode::OK, "ok\n".to_owned()),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("starting: {waiting}\n"),
        ),
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
