//! The `relay` binary: `relay serve` runs a node, `relay token` mints a participant token.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use assist_relay::auth::Auth;
use assist_relay::config::{LogFormat, NodeConfig, RedisTlsArgs, ServeArgs};
use assist_relay::store::redis::{redacted_url, RedisConfig, RedisStore};
use assist_relay::telemetry::Metrics;
use assist_relay::NodeBuilder;
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
struct CompactorArgs {
    /// Redis URL of the cluster (as for `relay serve`).
    #[arg(long, env = "RELAY_REDIS_URL", hide_env_values = true)]
    redis_url: String,
    /// TLS to Redis (`rediss://`).
    #[command(flatten)]
    redis_tls: RedisTlsArgs,
    /// Also write the audit events (recordings written, rooms closed as idle) to this file as
    /// JSON lines.
    #[arg(long, env = "RELAY_AUDIT_LOG")]
    audit_log: Option<std::path::PathBuf>,
    /// Treat --redis-url as seed nodes of a Redis Cluster.
    #[arg(long, env = "RELAY_REDIS_CLUSTER")]
    redis_cluster: bool,
    /// Where recordings are written.
    #[arg(long, env = "RELAY_ARCHIVE_DIR", default_value = "./data/archive")]
    archive_dir: std::path::PathBuf,
    /// Admin listener (/metrics, /livez, /readyz).
    #[arg(
        long,
        env = "RELAY_COMPACTOR_ADMIN_LISTEN",
        default_value = "127.0.0.1:9091"
    )]
    admin_listen: std::net::SocketAddr,
    /// Consumer name in the job group (unique per worker; default host name and pid).
    #[arg(long, env = "RELAY_COMPACTOR_CONSUMER")]
    consumer: Option<String>,
    /// A job pending this long (its worker died or hangs) is taken over.
    #[arg(long, env = "RELAY_COMPACTOR_CLAIM_AFTER", default_value = "30s", value_parser = humantime::parse_duration)]
    claim_after: Duration,
    /// Deliveries of a failing job before it goes to the dead-letter stream.
    #[arg(long, env = "RELAY_COMPACTOR_MAX_ATTEMPTS", default_value_t = 3)]
    max_attempts: u64,
    /// Close (and record) rooms whose customer has been gone this long; 0s never.
    #[arg(long, env = "RELAY_CUSTOMER_IDLE_CLOSE", default_value = "30m", value_parser = humantime::parse_duration)]
    customer_idle_close: Duration,
    /// Testing aid: hold every job this long before running it.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration, hide = true)]
    hold: Duration,
    /// Log format.
    #[arg(long, env = "RELAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
    /// Webhooks (`recording.ready`, `recording.failed`, idle `room.closed`): the same flags as
    /// `relay serve`; the compactor queues them, the relay nodes deliver them.
    #[command(flatten)]
    webhook: assist_relay::config::WebhookArgs,
    /// Render stage: `video` renders every recording written (a render job on the same
    /// stream; one render at a time per worker); `off` by default.
    #[arg(long, env = "RELAY_RENDER", value_enum, default_value_t = RenderStageArg::Off)]
    render: RenderStageArg,
    #[command(flatten)]
    render_options: assist_relay::render::options::RenderOptions,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RenderStageArg {
    /// No videos.
    Off,
    /// A video of every recording.
    Video,
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

/// A compactor's webhooks: queued only (relay nodes deliver them); rooms it removes report
/// their last members as left.
fn compactor_webhooks(
    cfg: assist_relay::config::WebhookConfig,
    store: &RedisStore,
) -> assist_relay::webhook::Webhooks {
    use assist_relay::store::Presence;
    let metrics = assist_relay::webhook::WebhookMetrics::new(&prometheus::Registry::new());
    let hooks = assist_relay::webhook::Webhooks::cluster(cfg, store.clone(), metrics, false);
    if hooks.enabled() {
        store.watch(assist_relay::webhook::presence_watcher(hooks.clone()));
    }
    hooks
}

/// `recording.video_ready` / `recording.video_failed` for the render stage. Called from the
/// render job's blocking thread, after the manifest records the video and before the job is
/// acknowledged: the event is in the outbox before the job is done.
fn video_webhooks(
    hooks: &assist_relay::webhook::Webhooks,
) -> Option<assist_relay::compactor::video::VideoHook> {
    use assist_relay::compactor::video::VideoNotice;
    use assist_relay::webhook::{Event, EventKind};
    if !hooks.enabled() {
        return None;
    }
    let hooks = hooks.clone();
    let handle = tokio::runtime::Handle::current();
    Some(Arc::new(move |n: &VideoNotice| {
        let ready = n.status.error.is_none() && n.key.is_some();
        let (kind, data) = if ready {
            let data = serde_json::json!({
                "recording": assist_relay::compactor::recording_id(&n.room, &n.epoch),
                "epoch": n.epoch, "file": n.key, "video": n.status.video,
            });
            (EventKind::RecordingVideoReady, data)
        } else {
            let data = serde_json::json!({
                "recording": assist_relay::compactor::recording_id(&n.room, &n.epoch),
                "epoch": n.epoch, "error": n.status.error,
            });
            (EventKind::RecordingVideoFailed, data)
        };
        let event = Event::of_fact(kind, &n.room, &n.epoch, data);
        handle.block_on(hooks.emit(event));
    }))
}

async fn compactor(
    args: CompactorArgs,
    tls: Option<assist_relay::store::redis::RedisTls>,
    hooks: assist_relay::config::WebhookConfig,
) -> anyhow::Result<()> {
    use assist_relay::compactor::worker::{self, CompactorMetrics, WorkerConfig};
    let metrics = Metrics::new();
    tracing::info!(url = %redacted_url(&args.redis_url), tls = tls.is_some(), "connecting to redis");
    let redis = RedisConfig {
        url: args.redis_url.clone(),
        tls,
        inline_max: 64 * 1024,
        presence_ttl: Duration::from_secs(15),
        dedup_ttl: Duration::from_secs(86_400),
        room_ttl: Duration::from_secs(86_400),
        cluster: args.redis_cluster,
    };
    let log = assist_relay::store::LogConfig {
        keep_until_archived: true,
        ..Default::default()
    };
    // The admin listener first: while Redis is retried, `/livez` answers 200 and `/readyz` 503.
    let admin_listener = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("binding admin {}", args.admin_listen))?;
    let at = redacted_url(&args.redis_url);
    let (connected, wait) = tokio::sync::oneshot::channel::<()>();
    let probes = tokio::spawn(assist_relay::http::starting::serve_starting(
        admin_listener,
        format!("connecting to redis at {at}"),
        64,
        async move {
            let _ = wait.await;
        },
    ));
    let store = RedisStore::connect(redis, log, metrics.redis.clone(), Duration::from_secs(30))
        .await
        .with_context(|| format!("connecting to redis at {at}"));
    let _ = connected.send(());
    let admin_listener = probes.await.context("the admin listener's startup task")?;
    let store = store?;
    let archive: Arc<dyn assist_relay::compactor::Archive> =
        Arc::new(assist_relay::compactor::FsArchive::new(&args.archive_dir));
    let consumer = args.consumer.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "host".into());
        format!("{host}-{}", std::process::id())
    });
    let cfg = WorkerConfig {
        consumer,
        claim_after: args.claim_after,
        max_attempts: args.max_attempts.max(1),
        hold: args.hold,
        idle_close: Some(args.customer_idle_close).filter(|d| !d.is_zero()),
        webhooks: compactor_webhooks(hooks, &store),
        render: None,
    };
    let cmetrics = CompactorMetrics::new();
    let cfg = if args.render == RenderStageArg::Video {
        let stage = assist_relay::compactor::video::RenderStage {
            config: args.render_options.config().map_err(anyhow::Error::msg)?,
            metrics: assist_relay::render::RenderMetrics::register(cmetrics.registry())?,
            // On the archive's filesystem (a dot directory, invisible to the archive's listing),
            // so a finished video moves in with a rename.
            scratch: args.archive_dir.join(".render"),
            notify: video_webhooks(&cfg.webhooks),
        };
        WorkerConfig {
            render: Some(Arc::new(stage)),
            ..cfg
        }
    } else {
        cfg
    };
    let admin = args.admin_listen;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut admin_stop = stop_rx.clone();
    let admin_task = tokio::spawn(worker::serve_admin(
        admin_listener,
        cmetrics.clone(),
        async move {
            let _ = admin_stop.changed().await;
        },
    ));
    tracing::info!(archive = %args.archive_dir.display(), %admin, "compactor running");
    let run = tokio::spawn(worker::run(store, archive, cfg, cmetrics, stop_rx));
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    let _ = run.await;
    let _ = admin_task.await;
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
