//! Cluster mode's outbox: Redis streams `ar:webhooks:{pN}`, one per partition (a room's
//! partition is a hash of its id modulo `--webhook-partitions`), consumed by the group
//! `webhooks`. Any node or compactor enqueues (`enqueue.lua`: once per event id, one entry per
//! endpoint); every relay node runs delivery, but a partition is delivered by one node at a
//! time, the holder of its lease (`lease.lua`), so a room's events go out in stream order.
//!
//! Nothing is lost when a node dies: its entries stay pending in the group until acknowledged
//! (after a 2xx, or after they are copied to the dead-letter stream `ar:webhooks:dead`). The
//! next holder of the partition (the lease expires [`LEASE`] after the last renewal) first
//! claims every pending entry with XAUTOCLAIM, in stream order, then reads new ones. An entry
//! in flight when its node died is sent again: delivery is at least once, and receivers drop
//! ids they have seen.
//!
//! Nodes poll a partition they hold (no blocking read: the connection is the store's, shared
//! with every room) every [`IDLE_POLL`] while it is empty.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::Script;
use tokio::sync::mpsc;

use super::deliver::{self, Deliverer, Item, Outcome, Settle};
use super::{Event, Outbox, WebhookMetrics};
use crate::config::WebhookConfig;
use crate::store::redis::RedisStore;
use crate::store::StoreError;

/// The consumer group.
pub const GROUP: &str = "webhooks";
/// The dead-letter stream (entries: `id`, `type`, `room`, `url`, `reason`, `body`).
pub const DEAD: &str = "ar:webhooks:dead";
/// Dead letters kept (approximately; the oldest are trimmed).
const DEAD_MAXLEN: u64 = 100_000;
/// How long a partition's lease lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(10);
/// How often a held partition is read while empty.
pub const IDLE_POLL: Duration = Duration::from_millis(250);
/// How long an event id is remembered against a second enqueue.
const SEEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// Entries read per request.
const BATCH: usize = 100;

const ENQUEUE: &str = include_str!("enqueue.lua");
const LEASE_SCRIPT: &str = include_str!("lease.lua");

/// The stream of partition `p`.
pub fn stream(p: u32) -> String {
    format!("ar:webhooks:{{p{p}}}")
}

/// The partition of a room (FNV-1a of its id).
pub fn partition(room: &str, partitions: u32) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in room.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % partitions.max(1)
}

/// The Redis outbox.
#[derive(Clone)]
pub struct RedisOutbox {
    store: RedisStore,
    partitions: u32,
    enqueue: Arc<Script>,
    lease: Arc<Script>,
    consumer: Arc<str>,
}

impl RedisOutbox {
    pub(super) fn new(store: RedisStore, cfg: &WebhookConfig) -> RedisOutbox {
        let me: [u8; 8] = rand::random();
        RedisOutbox {
            store,
            partitions: cfg.partitions,
            enqueue: Arc::new(Script::new(ENQUEUE)),
            lease: Arc::new(Script::new(LEASE_SCRIPT)),
            consumer: Arc::from(format!("relay-{}", hex::encode(me))),
        }
    }

    /// Starts delivery: one loop per partition (each delivers only while it holds the lease)
    /// feeding one delivery task.
    pub(super) fn spawn_delivery(&self, cfg: &WebhookConfig, metrics: WebhookMetrics) {
        let (tx, rx) = mpsc::channel(cfg.queue.max(BATCH * 2));
        let deliverer = Arc::new(Deliverer::new(cfg.clone(), metrics));
        tokio::spawn(deliver::run(rx, deliverer, Arc::new(self.clone())));
        for p in 0..self.partitions {
            tokio::spawn(self.clone().partition_loop(p, tx.clone()));
        }
    }

    async fn partition_loop(self, p: u32, tx: mpsc::Sender<Item>) {
        let key = stream(p);
        let lease_key = format!("{key}:lease");
        let mut held = false;
        let mut renewed = tokio::time::Instant::now();
        loop {
            if tx.is_closed() {
                return;
            }
            // Renewed a few times per lease, not on every poll.
            if !held || renewed.elapsed() >= LEASE / 4 {
                let mut inv = self.lease.key(&lease_key);
                inv.arg(&*self.consumer).arg(LEASE.as_millis() as u64);
                let mine = matches!(self.store.invoke::<i64>(&inv).await, Ok(1));
                if mine {
                    renewed = tokio::time::Instant::now();
                } else {
                    if held {
                        tracing::info!(partition = p, "webhook partition lease lost");
                    }
                    held = false;
                }
                if !mine {
                    // Jittered, so the nodes do not all ask at once.
                    let wait = LEASE / 3 + LEASE.mul_f64(rand::random::<f64>() / 3.0);
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            if !held {
                match self.take_over(&key, &tx).await {
                    Ok(n) => {
                        held = true;
                        tracing::info!(partition = p, reclaimed = n, "webhook partition taken");
                    }
                    Err(e) => {
                        tracing::warn!(partition = p, error = %e, "webhook partition take-over failed");
                        tokio::time::sleep(IDLE_POLL * 4).await;
                        continue;
                    }
                }
            }
            // Read only what delivery can take at once, so this loop never waits on it for
            // long and keeps renewing the lease.
            if tx.capacity() < BATCH {
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
            match self.read_new(&key, &tx).await {
                Ok(0) => tokio::time::sleep(IDLE_POLL).await,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(partition = p, error = %e, "webhook outbox read failed");
                    tokio::time::sleep(IDLE_POLL * 4).await;
                }
            }
        }
    }

    /// Creates the group if missing and claims every pending entry of the partition (a former
    /// holder's, or this process's own from before), in stream order.
    async fn take_over(&self, key: &str, tx: &mpsc::Sender<Item>) -> Result<usize, StoreError> {
        let mut create = redis::cmd("XGROUP");
        create
            .arg("CREATE")
            .arg(key)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM");
        match self.store.query::<()>(&create).await {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e.into()),
        }
        let mut cursor = "0-0".to_owned();
        let mut n = 0;
        loop {
            let mut claim = redis::cmd("XAUTOCLAIM");
            claim
                .arg(key)
                .arg(GROUP)
                .arg(&*self.consumer)
                .arg(0)
                .arg(&cursor)
                .arg("COUNT")
                .arg(BATCH);
            let reply: StreamAutoClaimReply = self.store.command(&claim).await?;
            for e in &reply.claimed {
                n += self.feed(key, e, tx).await;
            }
            if reply.next_stream_id == "0-0" || reply.claimed.is_empty() {
                return Ok(n);
            }
            cursor = reply.next_stream_id;
        }
    }

    /// The last `limit` entries of `ar:webhooks:dead`, oldest first.
    pub(super) async fn dead_letters(
        &self,
        limit: usize,
    ) -> Result<Vec<super::DeadLetter>, StoreError> {
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(DEAD).arg("+").arg("-").arg("COUNT").arg(limit);
        let reply: redis::streams::StreamRangeReply = self.store.command(&cmd).await?;
        let mut out: Vec<super::DeadLetter> = reply
            .ids
            .iter()
            .map(|e| {
                let field = |name: &str| e.get::<String>(name).unwrap_or_default();
                super::DeadLetter {
                    id: field("id"),
                    kind: field("type"),
                    room: field("room"),
                    url: field("url"),
                    reason: field("reason"),
                    body: field("body"),
                    dead_ms: e
                        .id
                        .split('-')
                        .next()
                        .and_then(|ms| ms.parse().ok())
                        .unwrap_or(0),
                }
            })
            .collect();
        out.reverse();
        Ok(out)
    }

    async fn read_new(&self, key: &str, tx: &mpsc::Sender<Item>) -> Result<usize, StoreError> {
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg(GROUP)
            .arg(&*self.consumer)
            .arg("COUNT")
            .arg(BATCH)
            .arg("STREAMS")
            .arg(key)
            .arg(">");
        let reply: Option<StreamReadReply> = self.store.command(&read).await?;
        let mut n = 0;
        for e in reply.iter().flat_map(|r| &r.keys).flat_map(|k| &k.ids) {
            n += self.feed(key, e, tx).await;
        }
        Ok(n)
    }

    async fn feed(&self, key: &str, e: &StreamId, tx: &mpsc::Sender<Item>) -> usize {
        let field = |name: &str| e.get::<String>(name).unwrap_or_default();
        let item = Item {
            id: field("id"),
            kind: field("type"),
            room: field("room"),
            url: field("url"),
            body: Bytes::from(field("body")),
            emitted_ms: field("at").parse().unwrap_or(0),
            handle: format!("{key} {}", e.id),
        };
        usize::from(tx.send(item).await.is_ok())
    }
}

#[async_trait]
impl Outbox for RedisOutbox {
    async fn push(&self, event: &Event, body: &str, urls: &[&str]) -> Result<(), StoreError> {
        let key = stream(partition(&event.room, self.partitions));
        let seen = format!("{key}:seen:{}", event.id);
        let mut inv = self.enqueue.key(&key);
        inv.key(&seen)
            .arg(SEEN_TTL.as_millis() as u64)
            .arg(&event.id)
            .arg(&event.room)
            .arg(event.kind)
            .arg(body)
            .arg(event.timestamp);
        for url in urls {
            inv.arg(*url);
        }
        let _: i64 = self.store.invoke(&inv).await?;
        Ok(())
    }
}

#[async_trait]
impl Settle for RedisOutbox {
    async fn settle(&self, item: &Item, outcome: &Outcome) {
        let Some((key, entry)) = item.handle.split_once(' ') else {
            return;
        };
        let dead = if let Outcome::Dead(reason) = outcome {
            let mut xadd = redis::cmd("XADD");
            xadd.arg(DEAD)
                .arg("MAXLEN")
                .arg("~")
                .arg(DEAD_MAXLEN)
                .arg("*")
                .arg("id")
                .arg(&item.id)
                .arg("type")
                .arg(&item.kind)
                .arg("room")
                .arg(&item.room)
                .arg("url")
                .arg(&item.url)
                .arg("reason")
                .arg(reason)
                .arg("body")
                .arg(&item.body[..]);
            Some(xadd)
        } else {
            None
        };
        let mut ack = redis::cmd("XACK");
        ack.arg(key).arg(GROUP).arg(entry);
        let mut del = redis::cmd("XDEL");
        del.arg(key).arg(entry);
        // The dead letter first: acknowledged before it is kept, it would be lost.
        for attempt in 0..5u32 {
            let r = async {
                if let Some(xadd) = &dead {
                    self.store.query::<String>(xadd).await?;
                }
                self.store.query::<i64>(&ack).await?;
                self.store.query::<i64>(&del).await
            }
            .await;
            match r {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(id = %item.id, error = %e, attempt, "webhook acknowledgement failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        // Still pending: the next holder of the partition sends it again (at least once).
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_always_maps_to_the_same_partition() {
        assert_eq!(partition("room-1", 16), partition("room-1", 16));
        assert!((0..100).all(|i| partition(&format!("r{i}"), 16) < 16));
        assert_eq!(stream(3), "ar:webhooks:{p3}");
    }
}
