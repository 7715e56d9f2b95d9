//! Delivery, the same for both outboxes: items arrive in outbox order; each (endpoint, room) is
//! a FIFO whose head is attempted until it is delivered or dead-lettered before the next one
//! goes (order per room), while different rooms proceed side by side (at most
//! [`MAX_IN_FLIGHT`] at once). An attempt signs the body afresh; failures wait an exponential
//! backoff with jitter. What an outcome means for the outbox (forget it, acknowledge the stream
//! entry, record the dead letter) is the outbox's [`Settle`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::http::Client;
use super::metrics::WebhookMetrics;
use crate::config::WebhookConfig;
use crate::hub::now_us;

/// Rooms (per endpoint) whose head is being attempted at once, per node.
pub(super) const MAX_IN_FLIGHT: usize = 64;

/// One event for one endpoint, as an outbox hands it to delivery.
#[derive(Debug, Clone)]
pub(super) struct Item {
    /// The event id (`webhook-id`).
    pub id: String,
    /// Event type.
    pub kind: String,
    /// Room.
    pub room: String,
    /// Endpoint.
    pub url: String,
    /// The JSON body, as signed.
    pub body: Bytes,
    /// When the event was emitted, ms.
    pub emitted_ms: u64,
    /// The outbox's handle (a stream entry id in cluster mode), unique per item.
    pub handle: String,
}

impl Item {
    fn queue(&self) -> String {
        format!("{}\x1f{}", self.url, self.room)
    }
}

/// How an item ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// A 2xx answer.
    Delivered,
    /// Given up on, with the last failure.
    Dead(String),
}

/// What the outbox does with an item that ended.
#[async_trait]
pub(super) trait Settle: Send + Sync + 'static {
    async fn settle(&self, item: &Item, outcome: &Outcome);
}

/// Attempts one item until it is delivered or its attempts run out.
pub(super) struct Deliverer {
    client: Client,
    cfg: WebhookConfig,
    metrics: WebhookMetrics,
}

impl Deliverer {
    pub(super) fn new(cfg: WebhookConfig, metrics: WebhookMetrics) -> Deliverer {
        Deliverer {
            client: Client::new(cfg.timeout),
            cfg,
            metrics,
        }
    }

    async fn deliver(&self, item: &Item) -> Outcome {
        let Ok(url) = url::Url::parse(&item.url) else {
            return Outcome::Dead(format!("bad URL {}", item.url));
        };
        let mut last = String::new();
        for attempt in 1..=self.cfg.max_attempts {
            let ts = now_us() / 1_000_000;
            let headers = [
                ("webhook-id", item.id.clone()),
                ("webhook-timestamp", ts.to_string()),
                (
                    "webhook-signature",
                    super::sign::signature(&self.cfg.secret, ts, &item.body),
                ),
                ("webhook-key-id", self.cfg.key_id.clone()),
                ("webhook-attempt", attempt.to_string()),
            ];
            match self.client.post(&url, &headers, item.body.clone()).await {
                Ok(_) => {
                    self.metrics.sent.inc();
                    tracing::debug!(id = %item.id, kind = %item.kind, room = %item.room, attempt, "webhook delivered");
                    return Outcome::Delivered;
                }
                Err(f) => {
                    self.metrics.failed.with_label_values(&[f.reason()]).inc();
                    last = f.to_string();
                    if attempt < self.cfg.max_attempts {
                        self.metrics.retried.inc();
                        let wait = backoff(&self.cfg, attempt);
                        tracing::warn!(id = %item.id, kind = %item.kind, room = %item.room, url = %item.url, attempt, error = %f, retry_in_ms = wait.as_millis() as u64, "webhook attempt failed");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        Outcome::Dead(format!(
            "gave up after {} attempt(s): {last}",
            self.cfg.max_attempts
        ))
    }
}

/// The wait after failed attempt `n` (1-based): `base * 2^(n-1)` capped at `cap`, then a
/// uniformly random point in its upper half ("equal jitter"), so that retries of many rooms do
/// not arrive together.
pub(super) fn backoff(cfg: &WebhookConfig, n: u32) -> Duration {
    let exp = cfg
        .backoff_base
        .saturating_mul(1u32 << (n.saturating_sub(1)).min(20));
    let full = exp.min(cfg.backoff_cap);
    let half = full / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// Runs delivery over the items of `rx` until it closes and everything taken is settled.
pub(super) async fn run(
    mut rx: mpsc::Receiver<Item>,
    deliverer: Arc<Deliverer>,
    settle: Arc<dyn Settle>,
) {
    let metrics = deliverer.metrics.clone();
    // Per (endpoint, room): items waiting behind the one in flight.
    let mut waiting: HashMap<String, VecDeque<Item>> = HashMap::new();
    // Queues whose head is ready but over MAX_IN_FLIGHT.
    let mut ready: VecDeque<Item> = VecDeque::new();
    let mut busy: HashSet<String> = HashSet::new();
    // Handles held (a re-read stream entry is not queued twice), with their emission times.
    let mut held: HashMap<String, u64> = HashMap::new();
    let mut running: JoinSet<(Item, Outcome)> = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut open = true;
    let start = |running: &mut JoinSet<(Item, Outcome)>, item: Item| {
        let d = deliverer.clone();
        running.spawn(async move {
            let out = d.deliver(&item).await;
            (item, out)
        });
    };
    loop {
        if !open && running.is_empty() && ready.is_empty() {
            return;
        }
        tokio::select! {
            item = rx.recv(), if open => {
                let Some(item) = item else { open = false; continue };
                if held.contains_key(&item.handle) {
                    continue;
                }
                held.insert(item.handle.clone(), item.emitted_ms);
                let q = item.queue();
                if busy.contains(&q) {
                    waiting.entry(q).or_default().push_back(item);
                } else {
                    busy.insert(q);
                    if running.len() < MAX_IN_FLIGHT {
                        start(&mut running, item);
                    } else {
                        ready.push_back(item);
                    }
                }
            }
            Some(done) = running.join_next() => {
                let Ok((item, outcome)) = done else { continue };
                if let Outcome::Dead(why) = &outcome {
                    metrics.dead_lettered.inc();
                    tracing::error!(id = %item.id, kind = %item.kind, room = %item.room, url = %item.url, reason = %why, "webhook dead-lettered");
                }
                settle.settle(&item, &outcome).await;
                held.remove(&item.handle);
                let q = item.queue();
                match waiting.get_mut(&q).and_then(VecDeque::pop_front) {
                    Some(next) => ready.push_back(next),
                    None => {
                        waiting.remove(&q);
                        busy.remove(&q);
                    }
                }
                while running.len() < MAX_IN_FLIGHT {
                    let Some(next) = ready.pop_front() else { break };
                    start(&mut running, next);
                }
            }
            _ = tick.tick() => {
                let now = now_us() / 1000;
                let oldest = held.values().min().copied().unwrap_or(now);
                metrics.queued.set(held.len() as i64);
                metrics.queue_age.set((now.saturating_sub(oldest) / 1000) as i64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let cfg = WebhookConfig {
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_millis(1000),
            ..WebhookConfig::default()
        };
        for (n, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (30, 1000),
        ] {
            let w = backoff(&cfg, n).as_millis() as u64;
            assert!(w >= full / 2 && w <= full, "attempt {n}: {w} ms");
        }
    }
}
