//! `relay compactor`: a worker process of the Redis job stream, and the job queue nodes use in
//! cluster mode.
//!
//! Jobs live in the stream `ar:jobs` (fields `room`, `kind`), consumed by the group `compactors`.
//! Each worker reads new jobs with XREADGROUP and first reclaims jobs whose worker died (pending
//! longer than `--claim-after`) with XAUTOCLAIM. A job is acknowledged when done. A transient
//! failure leaves it pending (its reason in `ar:jobs:err:<id>`), so it is retried after
//! `--claim-after` by any worker; a job delivered more than `--max-attempts` times, or one that
//! failed for good (a corrupt log), goes to the dead-letter stream `ar:jobs:dead` with its reason,
//! and the others proceed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::streams::{
    StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamPendingReply, StreamReadReply,
};

pub use super::metrics::CompactorMetrics;
use super::video::{render_room, RenderStage};
use super::{run_job, Archive, CompactError, Job, JobKind, JobQueue, Outcome};
use crate::store::redis::RedisStore;
use crate::store::StoreError;

/// The job stream.
pub const JOBS: &str = "ar:jobs";
/// The dead-letter stream.
pub const DEAD: &str = "ar:jobs:dead";
/// The consumer group.
pub const GROUP: &str = "compactors";

/// Queues jobs on the Redis stream (cluster mode).
pub struct RedisJobQueue {
    store: RedisStore,
}

impl RedisJobQueue {
    /// A queue on `store`'s Redis.
    pub fn new(store: RedisStore) -> RedisJobQueue {
        RedisJobQueue { store }
    }
}

#[async_trait]
impl JobQueue for RedisJobQueue {
    async fn enqueue(&self, job: Job) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(JOBS)
            .arg("MAXLEN")
            .arg("~")
            .arg(1_000_000)
            .arg("*")
            .arg("room")
            .arg(&job.room)
            .arg("kind")
            .arg(job.kind.as_str());
        let _: String = self.store.command(&cmd).await?;
        Ok(())
    }
}

/// Settings of a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's consumer name (unique per process).
    pub consumer: String,
    /// A job pending this long is taken over from its worker.
    pub claim_after: Duration,
    /// Deliveries before a failing job is dead-lettered.
    pub max_attempts: u64,
    /// Hold each job this long before committing it (tests use it to kill a worker mid-job).
    pub hold: Duration,
    /// Close rooms whose customer has been gone this long (one worker at a time sweeps).
    pub idle_close: Option<Duration>,
    /// Where `recording.*` and idle `room.closed` events go.
    pub webhooks: crate::webhook::Webhooks,
    /// The render stage (`--render video`): a final job that writes a recording queues a
    /// render job, and this worker runs render jobs (one at a time: one renderer per worker).
    pub render: Option<Arc<RenderStage>>,
}

/// One delivered job.
struct Delivery {
    id: String,
    job: Option<Job>,
    reclaimed: bool,
}

impl Delivery {
    /// A job entry of the stream (fields `room`, `kind`); `job` is None when unreadable.
    fn of(entry: &StreamId, reclaimed: bool) -> Delivery {
        let room: Option<String> = entry.get("room");
        let kind = entry.get::<String>("kind").and_then(|k| JobKind::parse(&k));
        let job = match (room, kind) {
            (Some(room), Some(kind)) => Some(Job { room, kind }),
            _ => None,
        };
        Delivery {
            id: entry.id.clone(),
            job,
            reclaimed,
        }
    }
}

/// Creates the consumer group (and the stream) if missing.
pub async fn ensure_group(store: &RedisStore) -> Result<(), StoreError> {
    let mut cmd = redis::cmd("XGROUP");
    cmd.arg("CREATE")
        .arg(JOBS)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM");
    match store.query::<()>(&cmd).await {
        Ok(()) => Ok(()),
        // The group exists already (another worker, or an earlier run).
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn next_delivery(
    store: &RedisStore,
    cfg: &WorkerConfig,
) -> Result<Option<Delivery>, StoreError> {
    let mut claim = redis::cmd("XAUTOCLAIM");
    claim
        .arg(JOBS)
        .arg(GROUP)
        .arg(&cfg.consumer)
        .arg(cfg.claim_after.as_millis() as u64)
        .arg("0-0")
        .arg("COUNT")
        .arg(1);
    let reply: StreamAutoClaimReply = store.command(&claim).await?;
    if let Some(entry) = reply.claimed.first() {
        return Ok(Some(Delivery::of(entry, true)));
    }
    let mut read = redis::cmd("XREADGROUP");
    read.arg("GROUP")
        .arg(GROUP)
        .arg(&cfg.consumer)
        .arg("COUNT")
        .arg(1)
        .arg("BLOCK")
        .arg(500)
        .arg("STREAMS")
        .arg(JOBS)
        .arg(">");
    // Nil when nothing arrived within the block.
    let reply: Option<StreamReadReply> = store.command(&read).await?;
    let entry = reply
        .iter()
        .flat_map(|r| &r.keys)
        .flat_map(|k| &k.ids)
        .next();
    Ok(entry.map(|e| Delivery::of(e, false)))
}

/// How many times a pending job has been delivered.
async fn deliveries(store: &RedisStore, id: &str) -> Result<u64, StoreError> {
    let mut cmd = redis::cmd("XPENDING");
    cmd.arg(JOBS).arg(GROUP).arg(id).arg(id).arg(1);
    let reply: StreamPendingCountReply = store.command(&cmd).await?;
    Ok(reply.ids.first().map_or(1, |p| p.times_delivered as u64))
}

async fn ack(store: &RedisStore, id: &str) -> Result<(), StoreError> {
    let mut cmd = redis::cmd("XACK");
    cmd.arg(JOBS).arg(GROUP).arg(id);
    let _: i64 = store.command(&cmd).await?;
    let mut del = redis::cmd("DEL");
    del.arg(format!("{JOBS}:err:{id}"));
    let _: i64 = store.command(&del).await?;
    Ok(())
}

async fn dead_letter(
    store: &RedisStore,
    id: &str,
    job: Option<&Job>,
    reason: &str,
) -> Result<(), StoreError> {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(DEAD)
        .arg("*")
        .arg("job")
        .arg(id)
        .arg("room")
        .arg(job.map_or("", |j| j.room.as_str()))
        .arg("kind")
        .arg(job.map_or("", |j| j.kind.as_str()))
        .arg("reason")
        .arg(reason);
    let _: String = store.command(&cmd).await?;
    ack(store, id).await
}

/// Refreshes the pending gauges from XPENDING's summary.
async fn refresh_pending(store: &RedisStore, metrics: &CompactorMetrics) {
    let mut cmd = redis::cmd("XPENDING");
    cmd.arg(JOBS).arg(GROUP);
    let Ok(summary) = store.command::<StreamPendingReply>(&cmd).await else {
        return;
    };
    metrics.pending.set(summary.count() as i64);
    let age = match &summary {
        StreamPendingReply::Data(d) => d
            .start_id
            .split('-')
            .next()
            .and_then(|ms| ms.parse::<u64>().ok())
            .map_or(0, |ms| {
                (crate::hub::now_us() / 1000).saturating_sub(ms) / 1000
            }),
        _ => 0,
    };
    metrics.oldest_pending.set(age as i64);
}

/// Processes jobs until `shutdown` resolves.
pub async fn run(
    store: RedisStore,
    archive: Arc<dyn Archive>,
    cfg: WorkerConfig,
    metrics: CompactorMetrics,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), StoreError> {
    ensure_group(&store).await?;
    tracing::info!(consumer = %cfg.consumer, "compactor started");
    let queue = RedisJobQueue::new(store.clone());
    let mut next_sweep = Instant::now();
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        if let Some(idle) = cfg.idle_close.filter(|_| Instant::now() >= next_sweep) {
            let period = super::idle_sweep_period(idle);
            next_sweep = Instant::now() + period;
            // One sweeper per period across the workers.
            let mut lock = redis::cmd("SET");
            lock.arg(format!("{JOBS}:sweep"))
                .arg(&cfg.consumer)
                .arg("NX")
                .arg("PX")
                .arg(period.as_millis().max(1) as u64);
            if let Ok(Some(_)) = store.command::<Option<String>>(&lock).await {
                if let Err(e) = super::close_idle_rooms(&store, &queue, idle, &cfg.webhooks).await {
                    tracing::warn!(error = %e, "idle room sweep failed");
                }
            }
        }
        refresh_pending(&store, &metrics).await;
        let delivery = tokio::select! {
            d = next_delivery(&store, &cfg) => d,
            _ = shutdown.changed() => return Ok(()),
        };
        let d = match delivery {
            Ok(Some(d)) => d,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "job stream unavailable");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if d.reclaimed {
            metrics.reclaimed.inc();
        }
        let Some(job) = d.job.clone() else {
            let _ = dead_letter(&store, &d.id, None, "unreadable job").await;
            metrics.dead.inc();
            continue;
        };
        let attempts = deliveries(&store, &d.id).await.unwrap_or(1);
        if attempts > cfg.max_attempts {
            let mut get = redis::cmd("GET");
            get.arg(format!("{JOBS}:err:{}", d.id));
            let last: Option<String> = store.command(&get).await.unwrap_or(None);
            let reason = format!(
                "gave up after {} attempt(s): {}",
                attempts - 1,
                last.unwrap_or_else(|| "the worker stopped".into())
            );
            tracing::error!(room = %job.room, reason = %reason, "job dead-lettered");
            let _ = dead_letter(&store, &d.id, Some(&job), &reason).await;
            metrics.dead.inc();
            super::report(&cfg.webhooks, &job, Err(&reason)).await;
            continue;
        }
        let started = Instant::now();
        tracing::info!(room = %job.room, kind = job.kind.as_str(), id = %d.id, attempts, "job");
        if !cfg.hold.is_zero() {
            tokio::time::sleep(cfg.hold).await;
        }
        // Heartbeat: keep the job's idle time low while it runs, so that a long job is not
        // taken over by another worker.
        let heartbeat = {
            let store = store.clone();
            let id = d.id.clone();
            let consumer = cfg.consumer.clone();
            let every = (cfg.claim_after / 3).max(Duration::from_millis(100));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let mut claim = redis::cmd("XCLAIM");
                    claim
                        .arg(JOBS)
                        .arg(GROUP)
                        .arg(&consumer)
                        .arg(0)
                        .arg(&id)
                        .arg("JUSTID");
                    let _: Result<(), _> = store.command(&claim).await;
                }
            })
        };
        let result = match (&cfg.render, job.kind) {
            (Some(stage), JobKind::Render) => {
                let (archive, stage, room) = (archive.clone(), stage.clone(), job.room.clone());
                tokio::task::spawn_blocking(move || render_room(archive.as_ref(), &room, &stage))
                    .await
                    .map_err(|e| CompactError::Transient(format!("render task: {e}")))
                    .and_then(|r| r.map(|_| Outcome::default()))
            }
            _ => run_job(&store, &archive, &job).await,
        };
        heartbeat.abort();
        match result {
            Ok(out) => {
                metrics.record_done(&out, started.elapsed());
                // Before the acknowledgement: a crash in between runs the job again, and the
                // event's id (from the epoch) is queued once.
                super::report(&cfg.webhooks, &job, Ok(&out)).await;
                if out.recorded && job.kind == JobKind::Final && cfg.render.is_some() {
                    // Queued before the ack: a crash in between re-runs the final job, which
                    // queues it again (a render job is idempotent).
                    let render = Job {
                        room: job.room.clone(),
                        kind: JobKind::Render,
                    };
                    if let Err(e) = queue.enqueue(render).await {
                        tracing::warn!(room = %job.room, error = %e, "render job not queued; the final job will run again");
                        continue;
                    }
                }
                if let Err(e) = ack(&store, &d.id).await {
                    tracing::warn!(error = %e, "ack failed; the job will run again (idempotent)");
                }
            }
            Err(CompactError::Permanent(why)) => {
                tracing::error!(room = %job.room, reason = %why, "job dead-lettered");
                let _ = dead_letter(&store, &d.id, Some(&job), &why).await;
                metrics.dead.inc();
                super::report(&cfg.webhooks, &job, Err(&why)).await;
            }
            Err(CompactError::Transient(why)) => {
                metrics.failed.inc();
                tracing::warn!(room = %job.room, error = %why, "job failed; it will be retried");
                let mut set = redis::cmd("SET");
                set.arg(format!("{JOBS}:err:{}", d.id))
                    .arg(&why)
                    .arg("EX")
                    .arg(86_400);
                let _: Result<String, _> = store.command(&set).await;
            }
        }
    }
}

/// Serves `/metrics`, `/livez` and `/readyz` for a compactor on its (bound) admin listener.
pub async fn serve_admin(
    listener: tokio::net::TcpListener,
    metrics: CompactorMetrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ready\n" }))
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        m.render(),
                    )
                }
            }),
        );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
