//! The `relay` binary: `relay serve` runs a node, `relay token` mints a participant token.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use assist_relay::auth::Auth;
use assist_relay::config::{LogFormat, NodeConfig, ServeArgs};
use assist_relay::store::redis::{redacted_url, RedisConfig, RedisStore};
use assist_relay::telemetry::Metrics;
use assist_relay::NodeBuilder;
use assist_relay_proto::{validate_id, Claims, Role};
use clap::{Parser, Subcommand};
use std::time::Duration;

mod compactor_cmd;
use compactor_cmd::{compactor, CompactorArgs};

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
    /// Run a compaction worker: turns closed rooms (and, live, what lies below each keyframe)
    /// into recordings in the archive. Start as many as needed; they share the job stream.
    Compactor(Box<CompactorArgs>),
    /// Write a replay page (HTML + the recording) for a room's recording.
    Export(ExportArgs),
    /// Render a recording to a video file (H.264 MP4, or WebM) with rrweb's Replayer in headless
    /// Chromium and ffmpeg.
    Render(RenderArgs),
}

#[derive(clap::Args)]
struct RenderArgs {
    /// A recording directory (<archive>/<room>/<epoch>), a room id in --archive-dir (its latest
    /// recording, or --epoch), or a file of rrweb events (a JSON array).
    recording: String,
    /// The video file to write (replaced atomically).
    #[arg(long)]
    out: std::path::PathBuf,
    /// Archive directory the compactor writes to (with a room id).
    #[arg(long, env = "RELAY_ARCHIVE_DIR", default_value = "./data/archive")]
    archive_dir: std::path::PathBuf,
    /// Epoch of the recording (with a room id; default: the latest).
    #[arg(long)]
    epoch: Option<String>,
    #[command(flatten)]
    options: assist_relay::render::options::RenderOptions,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// Room id.
    room: String,
    /// Output directory (created).
    #[arg(long)]
    out: std::path::PathBuf,
    /// Archive directory the compactor writes to.
    #[arg(long, env = "RELAY_ARCHIVE_DIR", default_value = "./data/archive")]
    archive_dir: std::path::PathBuf,
    /// Epoch of the recording (default: the latest).
    #[arg(long)]
    epoch: Option<String>,
    /// rrweb-player's `dist/` directory (`npm install rrweb-player`), whose script and
    /// `style.css` are copied beside the page; default `node_modules/rrweb-player/dist` when it
    /// exists. Without either (nor --no-player) the export fails: the page cannot play.
    #[arg(long, conflicts_with = "no_player")]
    rrweb_dir: Option<std::path::PathBuf>,
    /// Write the page without the player (copy `rrweb-player/index.js` and
    /// `rrweb-player/style.css` beside it yourself).
    #[arg(long)]
    no_player: bool,
    /// Also write the audit event of this export to this file as a JSON line (it always goes
    /// to standard error).
    #[arg(long, env = "RELAY_AUDIT_LOG")]
    audit_log: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
struct TokenArgs {
    /// The HS256 secret to sign with: the relay's --jwt-secret (the same flag and variable as
    /// `relay serve`; `--secret` is kept as another name), or with --kid that key's secret from
    /// --jwt-keys.
    #[arg(
        long = "jwt-secret",
        visible_alias = "secret",
        env = "RELAY_JWT_SECRET",
        hide_env_values = true
    )]
    secret: Option<String>,
    /// Put this `kid` in the token header (the relay verifies it with that --jwt-keys key);
    /// without it the relay uses its --jwt-secret.
    #[arg(long)]
    kid: Option<String>,
    /// `aud` claim (for relays started with --jwt-audience).
    #[arg(long)]
    aud: Option<String>,
    /// `iss` claim (for relays started with --jwt-issuer).
    #[arg(long)]
    iss: Option<String>,
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
    /// A capability to grant (`guide`, `call`); repeat for several. Without any, the token has
    /// no `caps` claim and an agent may do both.
    #[arg(long = "cap")]
    caps: Vec<assist_relay_proto::Capability>,
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
        Command::Compactor(args) => {
            let tls = match args.redis_tls.load(&args.redis_url) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("relay compactor: {e}");
                    return ExitCode::from(64);
                }
            };
            let hooks = match assist_relay::config::WebhookConfig::try_from(&args.webhook) {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("relay compactor: {e}");
                    return ExitCode::from(64);
                }
            };
            if let Err(e) = init_logging(args.log_format, args.audit_log.as_deref(), false) {
                eprintln!("relay compactor: {e:#}");
                return ExitCode::from(64);
            }
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("relay compactor: cannot start runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(compactor(*args, tls, hooks)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "compactor stopped");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Export(args) => {
            if let Err(e) = init_logging(LogFormat::Json, args.audit_log.as_deref(), true) {
                eprintln!("relay export: {e:#}");
                return ExitCode::from(64);
            }
            let default_player = std::path::Path::new(assist_relay::export::DEFAULT_RRWEB_DIR);
            let rrweb_dir = match (&args.rrweb_dir, args.no_player) {
                (Some(dir), _) => Some(dir.as_path()),
                (None, true) => None,
                (None, false) if default_player.is_dir() => Some(default_player),
                (None, false) => {
                    eprintln!("relay export: {}", assist_relay::export::PLAYER_HINT);
                    return ExitCode::from(64);
                }
            };
            match assist_relay::export::export(
                &args.archive_dir,
                &args.room,
                args.epoch.as_deref(),
                &args.out,
                rrweb_dir,
            ) {
                Ok(path) => {
                    println!("{}", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("relay export: {e:#}");
                    ExitCode::from(66)
                }
            }
        }
        Command::Render(args) => match render(&args) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err((code, e)) => {
                eprintln!("relay render: {e:#}");
                ExitCode::from(code)
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
            let tls = match args.redis_url.as_deref().map(|u| args.redis_tls.load(u)) {
                Some(Err(e)) => {
                    eprintln!("relay serve: {e}");
                    return ExitCode::from(64);
                }
                Some(Ok(t)) => t,
                None => None,
            };
            if let Err(e) = init_logging(args.log_format, args.audit_log.as_deref(), false) {
                eprintln!("relay serve: {e:#}");
                return ExitCode::from(64);
            }
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = args.worker_threads {
                builder.worker_threads(usize::from(n));
            }
            let runtime = match builder.enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("relay serve: cannot start runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(*args, config, tls)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "relay stopped");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `relay render`: the video's path and figures as one JSON line; on failure an exit code (64
/// bad flags, 66 no such recording, 69 renderer unavailable, 70 the render failed) and the reason.
fn render(args: &RenderArgs) -> Result<String, (u8, anyhow::Error)> {
    use assist_relay::compactor::video::{chat_cues, read_recording_dir};
    use assist_relay::render::{self as r, RenderError};
    let cfg = args
        .options
        .config()
        .map_err(|e| (64, anyhow::anyhow!(e)))?;
    let path = std::path::Path::new(&args.recording);
    let missing = |e: &dyn std::fmt::Display| (66, anyhow::anyhow!("{}: {e}", args.recording));
    let (events, chat, started_ms) = if path.is_dir() {
        let (m, events, chat) = read_recording_dir(path).map_err(|e| missing(&e))?;
        (events, chat_cues(&chat), m.started_ms)
    } else if path.is_file() {
        (std::fs::read(path).map_err(|e| missing(&e))?, Vec::new(), 0)
    } else {
        validate_id("room", &args.recording).map_err(|e| missing(&e))?;
        let archive = assist_relay::compactor::FsArchive::new(&args.archive_dir);
        let (m, events, chat) = assist_relay::compactor::read_recording(
            &archive,
            &args.recording,
            args.epoch.as_deref(),
        )
        .map_err(|e| missing(&e))?;
        (events, chat_cues(&chat), m.started_ms)
    };
    let src = r::Source {
        events: &events,
        chat: &chat,
        started_ms,
    };
    let video = r::render(src, &cfg, &args.out).map_err(|e| {
        let code = match e {
            RenderError::Setup(_) => 69,
            RenderError::Settings(_) => 64,
            _ => 70,
        };
        (code, anyhow::Error::new(e))
    })?;
    let mut line = serde_json::to_value(&video).map_err(|e| (70, e.into()))?;
    line["out"] = serde_json::Value::from(args.out.display().to_string());
    Ok(line.to_string())
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
        caps: (!args.caps.is_empty())
            .then(|| args.caps.iter().map(|c| c.as_str().to_owned()).collect()),
    };
    let secret = args
        .secret
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!("no secret to sign with: pass --jwt-secret or set RELAY_JWT_SECRET")
        })?;
    let auth = match &args.kid {
        Some(kid) => {
            validate_id("kid", kid).map_err(anyhow::Error::msg)?;
            Auth::with_keys(None, &[(kid.clone(), secret.as_bytes().to_vec())])
        }
        None => Auth::new(secret.as_bytes()),
    };
    let extra = assist_relay::auth::ExtraClaims {
        aud: args.aud.clone(),
        iss: args.iss.clone(),
        ..Default::default()
    };
    auth.mint_with(&claims, &extra).context("signing")
}

/// The log stream (standard output, or standard error with `to_stderr`) filtered by `RELAY_LOG`,
/// plus, with `audit_log`, the audit events alone as JSON lines in that file.
fn init_logging(
    format: LogFormat,
    audit_log: Option<&std::path::Path>,
    to_stderr: bool,
) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_env("RELAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let writer = move || -> Box<dyn std::io::Write> {
        if to_stderr {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        }
    };
    let stream = tracing_subscriber::fmt::layer().with_writer(writer);
    let stream = match format {
        LogFormat::Json => stream
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => stream
            .with_ansi(!to_stderr && std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_filter(filter)
            .boxed(),
    };
    let audit = match audit_log {
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            // A new audit file is readable by the relay's user only.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options
                .open(path)
                .with_context(|| format!("--audit-log {}", path.display()))?;
            Some(assist_relay::audit::file_layer(file))
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(stream)
        .with(audit)
        .try_init()
        .context("installing the logger")
}

async fn serve(
    args: ServeArgs,
    config: NodeConfig,
    tls: Option<assist_relay::store::redis::RedisTls>,
) -> anyhow::Result<()> {
    let short = (!config.jwt_secret.is_empty() && config.jwt_secret.len() < 32)
        || config.jwt_keys.iter().any(|(_, s)| s.len() < 32);
    if short {
        tracing::warn!(
            "a JWT secret is shorter than 32 bytes; use long random secrets in production"
        );
    }
    let metrics = Metrics::new();
    let config_log = config.log.clone();
    let admin_max = config.quotas.admin_max_connections;
    // Both listeners first: a port in use fails at once, and while a cluster node waits for
    // Redis its admin listener already answers probes (`/livez` 200, `/readyz` 503).
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let admin = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("binding admin {}", args.admin_listen))?;
    let builder = NodeBuilder::new(config);
    let (node, mode, admin) = match &args.redis_url {
        None => (builder.metrics(metrics).embedded().0, "embedded", admin),
        Some(url) => {
            let at = redacted_url(url);
            tracing::info!(
                url = %at,
                tls = tls.is_some(),
                admin = %admin.local_addr()?,
                "connecting to redis at {at} (retried for 30 s; meanwhile /livez answers 200 and /readyz 503)"
            );
            let (connected, wait) = tokio::sync::oneshot::channel::<()>();
            let probes = tokio::spawn(assist_relay::http::starting::serve_starting(
                admin,
                format!("connecting to redis at {at}"),
                admin_max,
                async move {
                    let _ = wait.await;
                },
            ));
            let redis = RedisConfig {
                url: url.clone(),
                tls,
                inline_max: args.redis_inline_max_bytes,
                presence_ttl: args.presence_ttl,
                dedup_ttl: args.dedup_ttl,
                room_ttl: args.room_ttl,
                cluster: args.redis_cluster,
            };
            let node = async {
                let store = RedisStore::connect(
                    redis,
                    config_log,
                    metrics.redis.clone(),
                    Duration::from_secs(30),
                )
                .await
                .with_context(|| format!("connecting to redis at {at}"))?;
                builder
                    .metrics(metrics)
                    .shared_mask_key(args.mask_key.is_none())
                    .cluster(store)
                    .await
                    .with_context(|| format!("reading the cluster's mask key from redis at {at}"))
            }
            .await;
            let _ = connected.send(());
            let admin = probes.await.context("the admin listener's startup task")?;
            (node?, "cluster", admin)
        }
    };
    tracing::info!(
        listen = %listener.local_addr()?,
        admin = %admin.local_addr()?,
        mode,
        "relay serving on ws://{}/ws",
        listener.local_addr()?
    );
    if let Some(dir) = &node.config.demo_dir {
        tracing::warn!(
            dir = %dir.display(),
            "demo mode: http://{}/demo/ serves the demo pages and GET /demo/token hands out tokens to anyone who asks; never use --demo in production",
            listener.local_addr()?
        );
    }
    assist_relay::http::serve(listener, admin, node.clone(), shutdown_signal()).await;
    if let Some(hooks) = node.webhooks.get() {
        hooks.drain(node.config.drain_timeout).await;
    }
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
