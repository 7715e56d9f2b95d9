//! Webhooks: what happened in rooms, POSTed to the integrator's endpoints.
//!
//! # Layout, in the order an event flows
//! - Emitters call [`Webhooks::emit`] with an [`Event`] where the fact happens: presence (through
//!   the store's [`crate::store::PresenceWatcher`]: `room.opened`, `member.joined`,
//!   `member.left`), [`crate::Node::close_room_by`] (`room.closed`), the compactor
//!   (`recording.ready`, `recording.failed`), the API (`native_page`), and a session refusing
//!   an upload or a frame masking cannot make safe (`upload.refused`, `masking.refused`).
//! - The outbox keeps it until delivered: [`memory`] (embedded: a bounded in-process queue,
//!   lost on a crash) or [`redis`] (cluster: streams partitioned by room, consumed by a group,
//!   each partition delivered by one node at a time under a lease; a crashed node's pending
//!   entries are claimed with XAUTOCLAIM by the next holder).
//! - `deliver` attempts them in order per (endpoint, room), with backoff and jitter, then hands
//!   the outcome back to the outbox (acknowledge, or dead-letter). `http` is the POST, [`sign`]
//!   the `webhook-signature`, [`metrics`] the `relay_webhook_*` series.
//!
//! The JSON body: `{"id":"evt_…","type":"room.closed","room":"r1","timestamp":<ms>,
//! "data":{…}}`; headers and verification are in docs/operations.md.

mod deliver;
mod http;
pub mod memory;
pub mod metrics;
pub mod redis;
pub mod sign;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use sha2::Digest;

pub use memory::DeadLetter;
pub use metrics::WebhookMetrics;

use crate::config::WebhookConfig;
use crate::store::StoreError;

/// Event types (the `type` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The first member entered a room that was not open.
    RoomOpened,
    /// A participant's first connection entered.
    MemberJoined,
    /// A participant's last connection left (or expired with its node).
    MemberLeft,
    /// The room was closed; `data.reason` says why, `data.by` who.
    RoomClosed,
    /// A recording is complete; `data.recording` is its id in `GET /v1/recordings/{id}`,
    /// `data.manifest` and `data.sha256` say where and its digest.
    RecordingReady,
    /// A recording could not be written.
    RecordingFailed,
    /// The customer's app showed a native screen.
    NativePage,
    /// An upload was refused.
    UploadRefused,
    /// A frame was refused because masking could not make it safe.
    MaskingRefused,
    /// The render stage (`relay compactor --render video`) wrote the recording's video;
    /// `data.file` is its archive key.
    RecordingVideoReady,
    /// The render stage gave up on the recording's video; `data.error` says why.
    RecordingVideoFailed,
}

impl EventKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RoomOpened => "room.opened",
            EventKind::MemberJoined => "member.joined",
            EventKind::MemberLeft => "member.left",
            EventKind::RoomClosed => "room.closed",
            EventKind::RecordingReady => "recording.ready",
            EventKind::RecordingFailed => "recording.failed",
            EventKind::NativePage => "native_page",
            EventKind::UploadRefused => "upload.refused",
            EventKind::MaskingRefused => "masking.refused",
            EventKind::RecordingVideoReady => "recording.video_ready",
            EventKind::RecordingVideoFailed => "recording.video_failed",
        }
    }
}

/// One event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Idempotency id (also `webhook-id`): receivers drop an id they have seen.
    pub id: String,
    /// [`EventKind::as_str`].
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Room.
    pub room: String,
    /// When it happened, ms since the Unix epoch.
    pub timestamp: u64,
    /// Details by type.
    pub data: serde_json::Value,
}

impl Event {
    /// An event with a fresh id (for facts that exactly one caller observes, such as a
    /// presence change decided by the store's atomic step, or a seal that returned true).
    pub fn new(kind: EventKind, room: &str, data: serde_json::Value) -> Event {
        let id: [u8; 12] = rand::random();
        Event::with_id(kind, room, format!("evt_{}", hex::encode(id)), data)
    }

    /// An event whose id is derived from the fact (`recording.ready` of a room's epoch), so
    /// that a job run twice enqueues it once (cluster) and receivers see one id.
    pub fn of_fact(kind: EventKind, room: &str, fact: &str, data: serde_json::Value) -> Event {
        let digest = sha2::Sha256::digest(format!("{}\x1f{room}\x1f{fact}", kind.as_str()));
        Event::with_id(
            kind,
            room,
            format!("evt_{}", hex::encode(&digest[..12])),
            data,
        )
    }

    /// `room.closed` with `reason` (`ended`, `api`, `idle`) and who (`by`). With the room's
    /// `epoch`, the id comes from it, so two racing closers (a node and the final job) report
    /// it once.
    pub fn room_closed(
        room: &str,
        epoch: Option<&str>,
        reason: &str,
        by: Option<&assist_relay_proto::Member>,
    ) -> Event {
        let by = by.map(|m| serde_json::json!({ "sub": m.id, "role": m.role.as_str() }));
        let data = serde_json::json!({ "reason": reason, "by": by });
        match epoch.filter(|e| !e.is_empty()) {
            Some(e) => Event::of_fact(EventKind::RoomClosed, room, e, data),
            None => Event::new(EventKind::RoomClosed, room, data),
        }
    }

    /// `native_page`: the room's keyframe is now the placeholder of a native screen, stored at
    /// `offset`, reported by the app (`source` `frame`) or the API (`api`). The screen's display
    /// fields are not included (they may hold customer data).
    pub fn native_page(
        room: &str,
        page: &assist_relay_proto::NativePage,
        offset: u64,
        source: &str,
    ) -> Event {
        let data = serde_json::json!({
            "page_id": page.page_id,
            "title": page.title,
            "offset": offset,
            "source": source,
        });
        // The store's idempotent append decided this is the one report of it.
        Event::new(EventKind::NativePage, room, data)
    }

    fn with_id(kind: EventKind, room: &str, id: String, data: serde_json::Value) -> Event {
        Event {
            id,
            kind: kind.as_str(),
            room: room.to_owned(),
            timestamp: crate::hub::now_us() / 1000,
            data,
        }
    }
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("endpoints", &self.cfg.endpoints.len())
            .finish()
    }
}

/// The store's presence changes as `room.opened`, `member.joined` and `member.left`.
pub fn presence_watcher(hooks: Webhooks) -> crate::store::PresenceWatcher {
    Arc::new(move |room: String, change: crate::store::PresenceChange| {
        let hooks = hooks.clone();
        Box::pin(async move {
            use crate::store::PresenceChange as C;
            let member = |m: &assist_relay_proto::Member| serde_json::json!({ "sub": m.id, "role": m.role.as_str() });
            let event = match &change {
                C::Opened => Event::new(EventKind::RoomOpened, &room, serde_json::json!({})),
                C::Joined(m) => Event::new(EventKind::MemberJoined, &room, member(m)),
                C::Left(m) => Event::new(EventKind::MemberLeft, &room, member(m)),
            };
            hooks.emit(event).await;
        })
    })
}

/// Where events are kept until delivered.
#[async_trait]
pub(crate) trait Outbox: Send + Sync + 'static {
    /// Keeps `event` (its serialized `body`) for each of `urls`.
    async fn push(&self, event: &Event, body: &str, urls: &[&str]) -> Result<(), StoreError>;
}

/// The emitter every part of a node (and a compactor) shares; cheap to clone. Without endpoints
/// it does nothing.
#[derive(Clone)]
pub struct Webhooks {
    cfg: Arc<WebhookConfig>,
    outbox: Option<Arc<dyn Outbox>>,
    metrics: WebhookMetrics,
    memory: Option<Arc<memory::MemoryOutbox>>,
    redis: Option<redis::RedisOutbox>,
}

impl Webhooks {
    /// Sends nothing.
    pub fn disabled() -> Webhooks {
        Webhooks {
            cfg: Arc::new(WebhookConfig::default()),
            outbox: None,
            metrics: WebhookMetrics::new(&prometheus::Registry::new()),
            memory: None,
            redis: None,
        }
    }

    /// Embedded mode: an in-process queue and its delivery (spawned here).
    pub fn embedded(cfg: WebhookConfig, metrics: WebhookMetrics) -> Webhooks {
        if !cfg.enabled() {
            return Webhooks {
                metrics,
                ..Webhooks::disabled()
            };
        }
        let outbox = memory::MemoryOutbox::spawn(&cfg, metrics.clone());
        Webhooks {
            cfg: Arc::new(cfg),
            outbox: Some(outbox.clone()),
            metrics,
            memory: Some(outbox),
            redis: None,
        }
    }

    /// Cluster mode: the Redis outbox; with `deliver`, this process also delivers (relay
    /// nodes; a compactor only enqueues).
    pub fn cluster(
        cfg: WebhookConfig,
        store: crate::store::redis::RedisStore,
        metrics: WebhookMetrics,
        deliver: bool,
    ) -> Webhooks {
        if !cfg.enabled() {
            return Webhooks {
                metrics,
                ..Webhooks::disabled()
            };
        }
        let outbox = redis::RedisOutbox::new(store, &cfg);
        if deliver {
            outbox.spawn_delivery(&cfg, metrics.clone());
        }
        Webhooks {
            cfg: Arc::new(cfg),
            outbox: Some(Arc::new(outbox.clone())),
            metrics,
            memory: None,
            redis: Some(outbox),
        }
    }

    /// Whether any endpoint is configured.
    pub fn enabled(&self) -> bool {
        self.outbox.is_some()
    }

    /// Queues `event` for every endpoint that wants it. Never fails the caller: an event that
    /// cannot be queued is logged and counted (`relay_webhook_dropped_total`).
    pub async fn emit(&self, event: Event) {
        let Some(outbox) = &self.outbox else { return };
        let urls: Vec<&str> = self
            .cfg
            .endpoints
            .iter()
            .filter(|e| e.wants(event.kind))
            .map(|e| e.url.as_str())
            .collect();
        if urls.is_empty() {
            return;
        }
        let body = match serde_json::to_string(&event) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "webhook body");
                return;
            }
        };
        tracing::debug!(id = %event.id, kind = event.kind, room = %event.room, "webhook queued");
        if let Err(e) = outbox.push(&event, &body, &urls).await {
            self.metrics.dropped.inc();
            tracing::error!(id = %event.id, kind = event.kind, room = %event.room, error = %e, "webhook dropped: the outbox refused it");
        }
    }

    /// On shutdown, after the connections have closed: embedded mode waits (at most `within`)
    /// for what is queued to be delivered or dead-lettered, and logs what is lost. Cluster mode
    /// returns at once: the outbox is in Redis, and this node's partitions pass to another node
    /// when its leases expire.
    pub async fn drain(&self, within: std::time::Duration) {
        let Some(m) = &self.memory else { return };
        let left = m.flush(within).await;
        if left > 0 {
            tracing::error!(
                left,
                "webhooks not delivered before exit are lost (embedded mode)"
            );
        }
    }

    /// The most recent dead letters (at most `limit`), oldest first: embedded mode's list, or
    /// the cluster's `ar:webhooks:dead` stream.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        if let Some(r) = &self.redis {
            return r.dead_letters(limit).await;
        }
        let mut all = self
            .memory
            .as_ref()
            .map(|m| m.dead_letters())
            .unwrap_or_default();
        let skip = all.len().saturating_sub(limit);
        Ok(all.split_off(skip))
    }
}
