# The ceiling helper of b1-rate-steps.sh and b3-memory.sh (sourced after lib.sh, not run).
#
# `loadtest ceiling` runs its fan-out server (loadtest/src/fanout.rs) inside the loadtest process,
# so the server's CPU and RSS cannot be told apart from the clients'. This helper, a small crate
# generated and built (release, --offline, the workspace's Cargo.lock) into
# ${CEILING_HELPER_DIR:-${TMPDIR:-/tmp}/assist-relay-bench/ceiling-helper} (rebuilt only when changed), depends on the loadtest library and runs the same code in separate processes:
#
#   ceiling-helper server
#       FanoutServer::start() (the server of `loadtest ceiling`), prints its port, serves until
#       killed.
#   ceiling-helper ext URL ceiling <loadtest ceiling options...>
#       the `ceiling` scenario's load (broadcast::run with the Raw wire, as scenario/ceiling.rs
#       does) against the fan-out server at URL instead of an in-process one; --server-pid,
#       --json, --threshold, --max-p99-ms and --max-loss work as in loadtest. Exit 0 / 1 / 2 as loadtest.
#   ceiling-helper clients URL N SOURCE_IPS RATE SIZE SECONDS
#       N raw WebSocket clients (4 KiB read buffers) bound to SOURCE_IPS round-robin; prints
#       "open N" once all are open, reads everything, and connection 0 sends RATE text messages/s
#       of SIZE bytes (RATE 0: none) until SECONDS have passed.
#
# build_ceiling_helper sets CEILING_HELPER to the binary.
build_ceiling_helper() {
    local dir="${CEILING_HELPER_DIR:-${TMPDIR:-/tmp}/assist-relay-bench/ceiling-helper}"
    mkdir -p "$dir/src"
    cat >"$dir/Cargo.toml" <<EOF
[package]
name = "ceiling-helper"
version = "0.0.0"
edition = "2021"
publish = false

[workspace]

[dependencies]
assist-relay-loadtest = { path = "$ROOT/loadtest" }
clap = "4"
tokio = { version = "1", features = ["rt-multi-thread", "macros", "net", "sync", "time"] }
tokio-tungstenite = "0.28"
futures-util = { version = "0.3", default-features = false, features = ["sink", "std"] }
EOF
    cat >"$dir/src/main.rs" <<'EOF'
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use loadtest::cli::{Cli, Scenario};
use loadtest::scenario::broadcast::{self, Redirect};
use loadtest::wire::Wire;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

type R<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> ExitCode {
    let a: Vec<String> = std::env::args().collect();
    let r = match a.get(1).map(String::as_str) {
        Some("server") => server().await,
        Some("ext") => return ext(&a[2], &a[3..]).await,
        Some("clients") => match (a[3].parse(), a[5].parse(), a[6].parse(), a[7].parse()) {
            (Ok(n), Ok(rate), Ok(size), Ok(secs)) => clients(&a[2], n, &a[4], rate, size, secs).await,
            _ => Err("bad clients arguments".into()),
        },
        _ => Err("usage: ceiling-helper server | ext URL ceiling OPTIONS | clients URL N SOURCE_IPS RATE SIZE SECONDS".into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn server() -> R<()> {
    let s = loadtest::fanout::FanoutServer::start().await?;
    println!("{}", s.addr.port());
    std::io::stdout().flush()?;
    std::future::pending::<()>().await;
    Ok(())
}

async fn ext(url: &str, args: &[String]) -> ExitCode {
    let cli = Cli::parse_from(std::iter::once("loadtest".to_owned()).chain(args.iter().cloned()));
    let Scenario::Ceiling(a) = cli.scenario else {
        eprintln!("error: ext runs the ceiling scenario only");
        return ExitCode::from(2);
    };
    let codec = loadtest::scenario::wire_of(&a.common).map(|w| w.codec()).unwrap_or(Wire::SocketIo.codec());
    let redirect = Redirect { wire: Wire::Raw(codec), url: url.to_owned(), self_label: "loadtest (clients)" };
    let mut report = match broadcast::run(&a, Some(redirect)).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    report.check(&a.common.all_thresholds());
    if let Some(path) = &a.common.json {
        if let Err(e) = report.write_json(path) {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    }
    print!("{}", report.table());
    if report.breaches.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

async fn clients(url: &str, n: usize, ips: &str, rate: f64, size: usize, secs: u64) -> R<()> {
    let addr: SocketAddr = url.trim_start_matches("ws://").trim_end_matches('/').parse()?;
    let ips: Vec<std::net::IpAddr> = ips.split(',').map(|s| s.parse()).collect::<Result<_, _>>()?;
    let received = Arc::new(AtomicU64::new(0));
    let mut sinks = Vec::new();
    let mut opened = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let conns = futures_util::future::join_all(chunk.iter().map(|&i| {
            let ip = ips[i % ips.len()];
            async move {
                let sock = TcpSocket::new_v4()?;
                sock.bind(SocketAddr::new(ip, 0))?;
                let stream = sock.connect(addr).await?;
                stream.set_nodelay(true)?;
                let cfg = WebSocketConfig::default().read_buffer_size(4 * 1024);
                let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(cfg)).await?;
                R::Ok(ws)
            }
        }))
        .await;
        for ws in conns {
            let (sink, mut source) = ws?.split();
            let received = received.clone();
            tokio::spawn(async move {
                while let Some(Ok(m)) = source.next().await {
                    if m.is_text() || m.is_binary() {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            if sinks.is_empty() {
                sinks.push(sink);
            }
            opened += 1;
        }
    }
    println!("open {opened}");
    std::io::stdout().flush()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    if rate > 0.0 && !sinks.is_empty() {
        let payload = "x".repeat(size);
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        let mut sent = 0u64;
        while tokio::time::Instant::now() < deadline {
            tick.tick().await;
            sinks[0].send(Message::text(payload.clone())).await?;
            sent += 1;
            if sent % 10 == 0 {
                println!("sent {sent} received {}", received.load(Ordering::Relaxed));
            }
        }
    } else {
        tokio::time::sleep_until(deadline).await;
    }
    println!("received {}", received.load(Ordering::Relaxed));
    Ok(())
}
EOF
    cp "$ROOT/Cargo.lock" "$dir/Cargo.lock"
    run cargo build --release --offline --quiet --manifest-path "$dir/Cargo.toml" \
        --target-dir "$dir/target" >&2
    CEILING_HELPER="$dir/target/release/ceiling-helper"
}
