//! `relay compactor`: its flags and its process (a worker of the Redis job stream, with its
//! probes, webhooks and optional render stage). `relay serve` is in `main.rs`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use assist_relay::config::{LogFormat, RedisTlsArgs};
use assist_relay::store::redis::{redacted_url, RedisConfig, RedisStore};
use assist_relay::telemetry::Metrics;

use super::shutdown_signal;

#[derive(clap::Args)]
pub(crate) struct CompactorArgs {
    /// Redis URL of the cluster (as for `relay serve`).
    #[arg(long, env = "RELAY_REDIS_URL", hide_env_values = true)]
    pub(crate) redis_url: String,
    /// TLS to Redis (`rediss://`).
    #[command(flatten)]
    pub(crate) redis_tls: RedisTlsArgs,
    /// Also write the audit events (recordings written, rooms closed as idle) to this file as
    /// JSON lines.
    #[arg(long, env = "RELAY_AUDIT_LOG")]
    pub(crate) audit_log: Option<std::path::PathBuf>,
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
    pub(crate) log_format: LogFormat,
    /// Webhooks (`recording.ready`, `recording.failed`, idle `room.closed`): the same flags as
    /// `relay serve`; the compactor queues them, the relay nodes deliver them.
    #[command(flatten)]
    pub(crate) webhook: assist_relay::config::WebhookArgs,
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

pub(crate) async fn compactor(
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
