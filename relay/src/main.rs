//! The `relay` binary: `relay serve` runs a node, `relay token` mints a participant token.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use assist_relay::auth::Auth;
use assist_relay::config::{LogFormat, NodeConfig, ServeArgs};
use assist_relay::store::memory::MemoryStore;
use assist_relay::store::redis::{RedisConfig, RedisStore};
use assist_relay::telemetry::Metrics;
use assist_relay::Node;
use assist_relay_proto::{validate_id, Claims, Role};
use clap::{Parser, Subcommand};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "relay",
    version,
    about = "assist-relay: realtime relay for rrweb co-browsing and chat"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a relay node: embedded by default (every room in this process), a cluster node with
    /// --redis-url.
    Serve(Box<ServeArgs>),
    /// Print a participant token (HS256 JWT) for ops and tests.
    Token(TokenArgs),
}

#[derive(clap::Args)]
struct TokenArgs {
    /// The relay's HS256 secret.
    #[arg(long, env = "RELAY_JWT_SECRET", hide_env_values = true)]
    secret: String,
    /// Room id.
    #[arg(long)]
    room: String,
    /// customer or agent.
    #[arg(long)]
    role: Role,
    /// Participant id.
    #[arg(long)]
    sub: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// Masking policy for what this participant publishes (none, passwords, inputs,
    /// inputs+text); the node's --mask-policy when absent.
    #[arg(long)]
    mask: Option<assist_relay::mask::MaskPolicy>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Token(args) => match token(&args) {
            Ok(t) => {
                println!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("relay token: {e:#}");
                ExitCode::from(64)
            }
        },
        Command::Serve(args) => {
            let config = match NodeConfig::try_from(args.as_ref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("relay serve: {e}");
                    return ExitCode::from(64);
                }
            };
            init_logging(args.log_format);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("relay serve: cannot start runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(*args, config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "relay stopped");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn token(args: &TokenArgs) -> anyhow::Result<String> {
    validate_id("room", &args.room).map_err(anyhow::Error::msg)?;
    validate_id("sub", &args.sub).map_err(anyhow::Error::msg)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: args.sub.clone(),
        room: args.room.clone(),
        role: args.role,
        exp: now + args.ttl,
        iat: Some(now),
        mask: args.mask.map(|m| m.as_str().to_owned()),
    };
    Auth::new(args.secret.as_bytes())
        .mint(&claims)
        .context("signing")
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RELAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Pretty => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
    }
}

async fn serve(args: ServeArgs, config: NodeConfig) -> anyhow::Result<()> {
    if config.jwt_secret.len() < 32 {
        tracing::warn!(
            "the JWT secret is shorter than 32 bytes; use a long random secret in production"
        );
    }
    let metrics = Metrics::new();
    let (node, mode) = match &args.redis_url {
        None => {
            let store = MemoryStore::new(config.log.clone());
            store.spawn_sweeper();
            (
                Node::with_metrics(config, store.clone(), store, metrics),
                "embedded",
            )
        }
        Some(url) => {
            let redis = RedisConfig {
                url: url.clone(),
                inline_max: args.redis_inline_max_bytes,
                presence_ttl: args.presence_ttl,
                dedup_ttl: args.dedup_ttl,
                room_ttl: args.room_ttl,
                cluster: args.redis_cluster,
            };
            let store = RedisStore::connect(
                redis,
                config.log.clone(),
                metrics.redis.clone(),
                Duration::from_secs(30),
            )
            .await
            .context("connecting to redis")?;
            (
                Node::with_metrics(config, Arc::new(store.clone()), Arc::new(store), metrics),
                "cluster",
            )
        }
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let admin = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("binding admin {}", args.admin_listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        admin = %admin.local_addr()?,
        mode,
        "relay serving on ws://{}/ws",
        listener.local_addr()?
    );
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = tokio::spawn(assist_relay::admin::serve(admin, node.clone(), async {
        let _ = admin_stopped.await;
    }));
    assist_relay::run(listener, node.clone(), shutdown_signal()).await;
    let _ = stop_admin.send(());
    let _ = admin_task.await;
    drop(node);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}
