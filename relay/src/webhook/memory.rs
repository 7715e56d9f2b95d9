//! Embedded mode's outbox: a bounded in-process queue (`--webhook-queue`) feeding delivery, and
//! a bounded list of dead letters (`--webhook-dead-letters`, the oldest dropped first). A crash
//! or restart loses what is queued and in flight (docs/operations.md says so): run cluster mode
//! where that matters. A full queue drops the new event (logged and counted).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use super::deliver::{self, Deliverer, Item, Outcome, Settle};
use super::{Event, Outbox, WebhookMetrics};
use crate::config::WebhookConfig;
use crate::store::{StoreError, Unavailable};

/// An event given up on.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Event id.
    pub id: String,
    /// Event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Room.
    pub room: String,
    /// Endpoint.
    pub url: String,
    /// Why (the last failure).
    pub reason: String,
    /// The body that was not delivered.
    pub body: String,
    /// When it was given up on, ms.
    pub dead_ms: u64,
}

/// Event ids remembered against a second report of the same fact.
const SEEN: usize = 10_000;

/// The in-process outbox.
pub struct MemoryOutbox {
    tx: mpsc::Sender<Item>,
    dead: Arc<DeadList>,
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
}

struct DeadList {
    list: Mutex<VecDeque<DeadLetter>>,
    cap: usize,
    /// Items queued and not yet settled.
    unsettled: std::sync::atomic::AtomicUsize,
}

impl MemoryOutbox {
    /// The outbox with its delivery task.
    pub(super) fn spawn(cfg: &WebhookConfig, metrics: WebhookMetrics) -> Arc<MemoryOutbox> {
        let (tx, rx) = mpsc::channel(cfg.queue);
        let dead = Arc::new(DeadList {
            list: Mutex::new(VecDeque::new()),
            cap: cfg.dead_letters,
            unsettled: Default::default(),
        });
        let deliverer = Arc::new(Deliverer::new(cfg.clone(), metrics));
        tokio::spawn(deliver::run(rx, deliverer, dead.clone()));
        Arc::new(MemoryOutbox {
            tx,
            dead,
            seen: Default::default(),
        })
    }

    /// Waits until everything queued is settled, or `within` passes; returns how many are
    /// left (lost when the process exits).
    pub async fn flush(&self, within: std::time::Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = self.dead.unsettled.load(Ordering::SeqCst);
            if left == 0 || tokio::time::Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Dead letters, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead
            .list
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl Outbox for MemoryOutbox {
    async fn push(&self, event: &Event, body: &str, urls: &[&str]) -> Result<(), StoreError> {
        if let Ok(mut seen) = self.seen.lock() {
            let (set, order) = &mut *seen;
            if !set.insert(event.id.clone()) {
                return Ok(()); // the same fact, reported twice
            }
            order.push_back(event.id.clone());
            if order.len() > SEEN {
                if let Some(old) = order.pop_front() {
                    set.remove(&old);
                }
            }
        }
        let body = Bytes::from(body.to_owned());
        for url in urls {
            let item = Item {
                id: event.id.clone(),
                kind: event.kind.to_owned(),
                room: event.room.clone(),
                url: (*url).to_owned(),
                body: body.clone(),
                emitted_ms: event.timestamp,
                handle: format!("{}\x1f{url}", event.id),
            };
            self.dead.unsettled.fetch_add(1, Ordering::SeqCst);
            self.tx.try_send(item).map_err(|e| {
                self.dead.unsettled.fetch_sub(1, Ordering::SeqCst);
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "the webhook queue is full",
                    mpsc::error::TrySendError::Closed(_) => "webhook delivery stopped",
                };
                StoreError::Unavailable(Unavailable::Local, why.into())
            })?;
        }
        Ok(())
    }
}

#[async_trait]
impl Settle for DeadList {
    async fn settle(&self, item: &Item, outcome: &Outcome) {
        self.unsettled.fetch_sub(1, Ordering::SeqCst);
        let Outcome::Dead(reason) = outcome else {
            return;
        };
        if self.cap == 0 {
            return;
        }
        let Ok(mut list) = self.list.lock() else {
            return;
        };
        if list.len() >= self.cap {
            list.pop_front();
        }
        list.push_back(DeadLetter {
            id: item.id.clone(),
            kind: item.kind.clone(),
            room: item.room.clone(),
            url: item.url.clone(),
            reason: reason.clone(),
            body: String::from_utf8_lossy(&item.body).into_owned(),
            dead_ms: crate::hub::now_us() / 1000,
        });
    }
}
