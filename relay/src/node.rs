//! The node: the state every connection, the public listener and the admin listener share
//! ([`Node`]), and the one way to build it ([`NodeBuilder`]), used by `relay serve` (embedded and
//! cluster) and by the tests' harness alike: the store, the metrics, token verification, quotas,
//! native-page templates and the compaction job queue are wired here once.
//!
//! Not here: listening and HTTP (`crate::http`), one connection's session (`crate::session`), and
//! the stores themselves (`crate::store`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::auth::{Auth, TokenPolicy};
use crate::config::NodeConfig;
use crate::store::memory::MemoryStore;
use crate::store::redis::RedisStore;
use crate::store::{Broker, Store, StoreError};
use crate::telemetry::Metrics;

/// State shared by the accept loop, every connection and the admin listener.
pub struct Node {
    /// Settings.
    pub config: NodeConfig,
    /// Token verification.
    pub auth: Auth,
    /// Room logs.
    pub log: Arc<dyn Store>,
    /// Live fan-out and presence.
    pub broker: Arc<dyn Broker>,
    /// Metrics.
    pub metrics: Metrics,
    /// Native-page placeholder templates.
    pub templates: crate::native::Templates,
    /// Salt of typed-value hashes (masking of echoes): `config.mask_key`, shared by every node of
    /// a cluster and independent of the token keys (rotating those changes no hash).
    pub mask_key: [u8; 32],
    /// Where compaction jobs go (set once at startup; without it rooms still close, and no
    /// recording is made).
    pub jobs: std::sync::OnceLock<Arc<dyn crate::compactor::JobQueue>>,
    /// Where webhook events go (set once at startup; unset or without endpoints, nowhere).
    pub webhooks: std::sync::OnceLock<crate::webhook::Webhooks>,
    /// Admission quotas: handshakes in progress, connections per participant, rooms.
    pub quotas: Arc<crate::limits::Quotas>,
    /// Rates shared by a participant's connections and by a room's participants.
    pub rates: crate::limits::SharedRates,
    draining: AtomicBool,
    shutdown: watch::Sender<bool>,
    next_conn: AtomicU64,
    open: AtomicUsize,
}

impl Node {
    /// A node over a store.
    pub fn new(config: NodeConfig, log: Arc<dyn Store>, broker: Arc<dyn Broker>) -> Arc<Node> {
        Node::with_metrics(config, log, broker, Metrics::new())
    }

    /// A node over a store whose backend already reports into `metrics` (no compaction queue:
    /// [`NodeBuilder`] wires that).
    pub fn with_metrics(
        config: NodeConfig,
        log: Arc<dyn Store>,
        broker: Arc<dyn Broker>,
        metrics: Metrics,
    ) -> Arc<Node> {
        let templates = crate::native::Templates::load(config.native_templates.as_deref())
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "native-page templates; using the built-in one");
                crate::native::Templates::builtin()
            });
        // The hub keeps the one registry of rooms with subscribers here; it reports their number.
        broker.hub().report_rooms(metrics.rooms.clone());
        Arc::new(Node {
            templates,
            mask_key: config.mask_key,
            jobs: std::sync::OnceLock::new(),
            webhooks: std::sync::OnceLock::new(),
            quotas: crate::limits::Quotas::new(config.quotas.clone()),
            rates: crate::limits::SharedRates::new(&config.rates()),
            auth: auth_from_config(&config),
            config,
            log,
            broker,
            metrics,
            draining: AtomicBool::new(false),
            shutdown: watch::channel(false).0,
            next_conn: AtomicU64::new(1),
            open: AtomicUsize::new(0),
        })
    }

    /// Closes a room through the API ([`Node::close_room_by`] with reason `api`).
    pub async fn close_room(&self, room: &str) -> Result<bool, crate::store::StoreError> {
        self.close_room_by(room, "api", None).await
    }

    /// Closes a room: queues its final compaction, then seals it (members are disconnected with
    /// `room_closed`). Returns whether this call closed it; that call alone emits `room.closed`
    /// with `reason` (`api`, `ended`) and `by` (the member who ended it). Queueing first means
    /// a crash in between leaves a job whose worker seals the room itself.
    pub async fn close_room_by(
        &self,
        room: &str,
        reason: &str,
        by: Option<&assist_relay_proto::Member>,
    ) -> Result<bool, crate::store::StoreError> {
        // The final job may seal the room before this call does (it is queued first); the
        // room was still open when this call began, so the close is still this call's to
        // report. Its id comes from the epoch, so two racing closers report it once.
        let before = self.log.log_state(room).await.ok();
        if let Some(jobs) = self.jobs.get() {
            jobs.enqueue(crate::compactor::Job {
                room: room.to_owned(),
                kind: crate::compactor::JobKind::Final,
            })
            .await?;
        }
        let closed = self.log.seal(room).await?;
        if closed {
            self.metrics.rooms_closed.inc();
            tracing::info!(room, reason, "room closed");
        }
        let was_open = before.as_ref().is_none_or(|s| !s.sealed);
        if closed || was_open {
            let epoch = before.as_ref().map(|s| s.epoch.as_str());
            let event = crate::webhook::Event::room_closed(room, epoch, reason, by);
            self.emit(event).await;
        }
        Ok(closed)
    }

    /// Queues a webhook event (nothing without endpoints).
    pub async fn emit(&self, event: crate::webhook::Event) {
        if let Some(hooks) = self.webhooks.get() {
            hooks.emit(event).await;
        }
    }

    /// Wires webhooks: the emitter, and the store's presence changes into it.
    fn install_webhooks(&self, hooks: crate::webhook::Webhooks) {
        if hooks.enabled() {
            self.broker
                .watch(crate::webhook::presence_watcher(hooks.clone()));
        }
        let _ = self.webhooks.set(hooks);
    }

    /// Queues a live compaction of a room (archive what lies below its keyframe).
    pub async fn compact_live(&self, room: &str) {
        if let Some(jobs) = self.jobs.get() {
            let job = crate::compactor::Job {
                room: room.to_owned(),
                kind: crate::compactor::JobKind::Live,
            };
            if let Err(e) = jobs.enqueue(job).await {
                tracing::warn!(error = %e, "live compaction not queued");
            }
        }
    }

    /// Whether the node should receive traffic.
    pub async fn ready(&self) -> bool {
        !self.draining.load(Ordering::SeqCst) && self.broker.healthy().await
    }

    /// Whether draining has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Open WebSocket connections.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Takes a connection slot, or `None` at `--max-connections`; the slot is held as long as
    /// the guard lives.
    pub(crate) fn try_open(self: &Arc<Node>) -> Option<OpenGuard> {
        if self.open.fetch_add(1, Ordering::SeqCst) >= self.config.max_connections {
            self.open.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(OpenGuard(self.clone()))
    }

    /// The id of the next connection (for logs and the audit trail).
    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Stops admitting and tells every connection to go (close 4000).
    pub(crate) fn begin_drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.metrics.draining.set(1);
        self.shutdown.send_replace(true);
    }
}

/// Counts a connection for its whole life.
pub(crate) struct OpenGuard(Arc<Node>);
impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The keys and policy of a node's configuration (demo tokens accepted in demo mode only).
fn auth_from_config(config: &NodeConfig) -> Auth {
    let default = (!config.jwt_secret.is_empty()).then_some(config.jwt_secret.as_slice());
    Auth::with_keys(default, &config.jwt_keys)
        .with_policy(TokenPolicy {
            accept_demo: config.demo_dir.is_some(),
            ..config.token_policy.clone()
        })
        .with_allowed_origins(config.allowed_origins.clone())
}

/// Builds a node the way `relay serve` runs one: [`NodeBuilder::embedded`] or
/// [`NodeBuilder::cluster`]. With `config.archive_dir` set, compaction jobs are queued: to the
/// in-process compactor (embedded) or to the cluster's job stream (cluster, where `relay
/// compactor` workers take them).
pub struct NodeBuilder {
    config: NodeConfig,
    metrics: Metrics,
    shared_mask_key: bool,
}

impl NodeBuilder {
    /// A builder over a configuration, with fresh metrics.
    pub fn new(config: NodeConfig) -> NodeBuilder {
        NodeBuilder {
            config,
            metrics: Metrics::new(),
            shared_mask_key: false,
        }
    }

    /// The metrics the node reports into (a Redis store reports into `metrics.redis`, so make
    /// them before connecting it).
    pub fn metrics(mut self, metrics: Metrics) -> NodeBuilder {
        self.metrics = metrics;
        self
    }

    /// Cluster mode: take the cluster's masking key from Redis instead of `config.mask_key`
    /// (`relay serve` without `--mask-key`), so every node hashes typed values alike.
    pub fn shared_mask_key(mut self, shared: bool) -> NodeBuilder {
        self.shared_mask_key = shared;
        self
    }

    /// An embedded node: every room in this process, in a memory store (swept of idle rooms),
    /// and with `archive_dir` the in-process compactor. Returns the store too (tests reach into
    /// it).
    pub fn embedded(self) -> (Arc<Node>, Arc<MemoryStore>) {
        let store = MemoryStore::new(self.config.log.clone());
        store.spawn_sweeper();
        let archive_dir = self.config.archive_dir.clone();
        let idle_close = self.config.customer_idle_close;
        let hooks = crate::webhook::Webhooks::embedded(
            self.config.webhooks.clone(),
            self.metrics.webhook.clone(),
        );
        let node = Node::with_metrics(self.config, store.clone(), store.clone(), self.metrics);
        node.install_webhooks(hooks.clone());
        if let Some(dir) = archive_dir {
            // The recordings API reads it from the start (a missing archive directory is an
            // error there: in cluster mode it means the node cannot see the compactor's).
            if let Err(e) = std::fs::create_dir_all(&dir) {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot create the archive directory");
            }
            let archive: Arc<dyn crate::compactor::Archive> =
                Arc::new(crate::compactor::FsArchive::new(dir));
            let queue = crate::compactor::spawn_embedded(
                store.clone(),
                archive,
                crate::compactor::worker::CompactorMetrics::new(),
                idle_close,
                hooks,
            );
            let _ = node.jobs.set(queue);
        }
        (node, store)
    }

    /// A cluster node over a connected Redis store.
    pub async fn cluster(mut self, store: RedisStore) -> Result<Arc<Node>, StoreError> {
        if self.shared_mask_key {
            self.config.mask_key = crate::keys::shared_mask_key(&store).await?;
        }
        let recordings = self.config.archive_dir.is_some();
        let hooks = crate::webhook::Webhooks::cluster(
            self.config.webhooks.clone(),
            store.clone(),
            self.metrics.webhook.clone(),
            true,
        );
        let node = Node::with_metrics(
            self.config,
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            self.metrics,
        );
        node.install_webhooks(hooks);
        if recordings {
            let queue = crate::compactor::worker::RedisJobQueue::new(store);
            let _ = node.jobs.set(Arc::new(queue));
        }
        Ok(node)
    }
}
