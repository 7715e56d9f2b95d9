//! Live fan-out over Redis pub/sub: subscribing a room's channel (SUBSCRIBE on one server,
//! SSUBSCRIBE on a Cluster), the node's pub/sub connection and its reconnection, routing each
//! message to its room's [`Live`] without waiting, and telling every local member to recover
//! after the connection comes back or a room's inbox overflows. Relayed (unstored) messages are
//! published here too. Ordering and the pump are in `live`; presence in `presence`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::Value;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::commands::{lock, unavailable, Backoff, Commands};
use super::keys::Keys;
use super::live::{pump, request_recover, Inbound, Live, RoomSub, Step};
use super::shared::{Inner, RedisStore, SubCmd};
use crate::store::window::Window;
use crate::store::{Bus, StoreError, Subscription, Unavailable};

/// Pub/sub messages a room's inbox holds at least before the room recovers from the log. Unlike
/// the broadcast ring, an mpsc channel allocates as it fills, so a large bound costs an idle room
/// nothing; it is not tied to a small `--room-buffer`.
const MIN_INBOX: usize = 1024;

impl Inner {
    /// SUBSCRIBE (through the node's pub/sub task) or, on a cluster, SSUBSCRIBE.
    async fn subscribe_channel(&self, channel: String) -> Result<(), StoreError> {
        if let Commands::Cluster(c) = &self.conn {
            let mut c = c.clone();
            return c.ssubscribe(channel).await.map_err(StoreError::from);
        }
        let (tx, rx) = oneshot::channel();
        if self
            .subs
            .send(SubCmd::Subscribe(channel, tx))
            .await
            .is_err()
        {
            return Err(StoreError::Unavailable(
                Unavailable::Local,
                "pub/sub task gone".to_owned(),
            ));
        }
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(r)) => r,
            _ => Err(StoreError::Unavailable(
                Unavailable::Timeout,
                "pub/sub subscription timed out".to_owned(),
            )),
        }
    }

    fn unsubscribe_channel(&self, channel: String) {
        if let Commands::Cluster(c) = &self.conn {
            let mut c = c.clone();
            tokio::spawn(async move {
                let _ = c.sunsubscribe(channel).await;
            });
            return;
        }
        let _ = self.subs.try_send(SubCmd::Unsubscribe(channel));
    }
}

/// Unsubscribes when the last local subscriber of a room goes away.
struct SubGuard {
    inner: Arc<Inner>,
    room: String,
}

impl Drop for SubGuard {
    fn drop(&mut self) {
        let mut rooms = lock(&self.inner.rooms);
        let last = match rooms.get_mut(&self.room) {
            Some(r) => {
                r.subscribers -= 1;
                r.subscribers == 0
            }
            None => false,
        };
        if last {
            if let Some(r) = rooms.remove(&self.room) {
                r.pump.abort();
            }
            self.inner.unsubscribe_channel(Keys::of(&self.room).channel);
        }
    }
}

#[async_trait]
impl Bus for RedisStore {
    async fn subscribe(&self, room: &str) -> Result<Subscription, StoreError> {
        let inner = &self.inner;
        let (rx, head_bytes, mut ready, ack) = {
            let mut rooms = lock(&inner.rooms);
            if let Some(r) = rooms.get_mut(room) {
                r.subscribers += 1;
                (
                    r.live.tx.subscribe(),
                    r.live.sent_bytes.clone(),
                    r.ready.clone(),
                    None,
                )
            } else {
                let (tx, rx) = broadcast::channel(inner.log_cfg.room_buffer.max(1));
                let (inbox_tx, inbox_rx) = mpsc::channel(inner.log_cfg.room_buffer.max(MIN_INBOX));
                let sent_bytes = Arc::new(AtomicU64::new(0));
                let (ready_tx, ready_rx) = watch::channel(None);
                let window = Window::new(
                    inner.log_cfg.room_buffer,
                    inner.log_cfg.room_buffer_bytes,
                    inner.metrics.live_bytes.clone(),
                );
                let live = Arc::new(Live::new(tx, sent_bytes.clone(), window));
                let pump = tokio::spawn(pump(
                    inner.conn.clone(),
                    inner.metrics.gap_fills.clone(),
                    room.to_owned(),
                    inbox_rx,
                    live.clone(),
                ));
                rooms.insert(
                    room.to_owned(),
                    RoomSub {
                        inbox: inbox_tx,
                        live,
                        subscribers: 1,
                        ready: ready_rx.clone(),
                        recover_pending: Arc::new(AtomicBool::new(false)),
                        pump,
                    },
                );
                (rx, sent_bytes, ready_rx, Some(ready_tx))
            }
        };
        let guard = SubGuard {
            inner: inner.clone(),
            room: room.to_owned(),
        };
        if let Some(ready_tx) = ack {
            let result = inner.subscribe_channel(Keys::of(room).channel).await;
            ready_tx.send_replace(Some(result));
        }
        let outcome = tokio::time::timeout(Duration::from_secs(5), ready.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|r| r.ok().map(|v| v.clone()))
            .flatten();
        match outcome {
            Some(Ok(())) => Ok(Subscription {
                rx,
                head_bytes,
                guard: Box::new(guard),
            }),
            Some(Err(e)) => Err(e),
            None => Err(StoreError::Unavailable(
                Unavailable::Timeout,
                "pub/sub subscription timed out".into(),
            )),
        }
    }

    async fn relay(&self, room: &str, msg: crate::guide::Relayed) -> Result<(), StoreError> {
        let inner = &self.inner;
        let k = Keys::of(room);
        let mut c = inner.conn.clone();
        // KEYS and ARGV in the order `scripts/relay.lua` names them.
        let _: i64 = inner
            .scripts
            .relay
            .key(&k.meta)
            .arg(&k.channel)
            .arg(inner.sharded())
            .arg(msg.to_bytes())
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn healthy(&self) -> bool {
        self.inner.pubsub_up.load(Ordering::SeqCst) && self.inner.ping_ok.load(Ordering::SeqCst)
    }
}

/// The node's pub/sub connection: (re)connects with backoff, resubscribes, routes messages.
pub(super) async fn pubsub_loop(
    inner: Arc<Inner>,
    client: redis::Client,
    mut cmds: mpsc::Receiver<SubCmd>,
) {
    let mut backoff = Backoff::new();
    let mut connected_before = false;
    loop {
        let pubsub = match client.get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                inner.pubsub_up.store(false, Ordering::SeqCst);
                tracing::warn!(error = %e, "redis pub/sub unreachable; retrying");
                let wait = tokio::time::sleep(backoff.next());
                tokio::pin!(wait);
                // Refuse subscriptions while down instead of letting them hang.
                loop {
                    tokio::select! {
                        () = &mut wait => break,
                        cmd = cmds.recv() => match cmd {
                            Some(SubCmd::Subscribe(_, ack)) => {
                                let down = StoreError::Unavailable(Unavailable::Connection, "redis pub/sub is down".into());
                                let _ = ack.send(Err(down));
                            }
                            Some(SubCmd::Unsubscribe(_)) => {}
                            None => return,
                        }
                    }
                }
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let channels: Vec<String> = lock(&inner.rooms)
            .keys()
            .map(|r| Keys::of(r).channel)
            .collect();
        let mut ok = true;
        for ch in &channels {
            if sink.subscribe(ch).await.is_err() {
                ok = false;
                break;
            }
        }
        if !ok {
            tokio::time::sleep(backoff.next()).await;
            continue;
        }
        inner.pubsub_up.store(true, Ordering::SeqCst);
        backoff.reset();
        if connected_before {
            inner.metrics.reconnects.inc();
            tracing::info!(
                rooms = channels.len(),
                "redis pub/sub reconnected; local members recover from the log"
            );
            for r in lock(&inner.rooms).values() {
                request_recover(r);
            }
        }
        connected_before = true;
        loop {
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(SubCmd::Subscribe(ch, ack)) => {
                        let mut sink = sink.clone();
                        tokio::spawn(async move {
                            let _ = ack.send(sink.subscribe(ch).await.map_err(StoreError::from));
                        });
                    }
                    Some(SubCmd::Unsubscribe(ch)) => {
                        // Someone may have subscribed again in the meantime.
                        let room = Keys::room_of_channel(&ch).map(str::to_owned);
                        if room.is_some_and(|r| !lock(&inner.rooms).contains_key(&r)) {
                            let mut sink = sink.clone();
                            tokio::spawn(async move { let _ = sink.unsubscribe(ch).await; });
                        }
                    }
                    None => return,
                },
                msg = stream.next() => match msg {
                    Some(msg) => route(&inner, &msg),
                    None => break,
                },
            }
        }
        inner.pubsub_up.store(false, Ordering::SeqCst);
        tracing::warn!("redis pub/sub connection lost; reconnecting");
    }
}

/// Routes one pub/sub message to its room's pump without waiting (the reader must never stall:
/// Redis disconnects subscribers that fall behind).
fn route(inner: &Inner, msg: &redis::Msg) {
    route_payload(inner, msg.get_channel_name(), msg.get_payload_bytes());
}

/// Cluster mode: sharded messages go to their room; a (re)subscription confirmation for a room
/// that was already live means the connection to its shard was re-established, so its members
/// recover from the log.
pub(super) fn route_push(inner: &Inner, push: redis::PushInfo) {
    let channel = |v: Option<&Value>| match v {
        Some(Value::BulkString(b)) => String::from_utf8(b.clone()).ok(),
        Some(Value::SimpleString(s)) => Some(s.clone()),
        _ => None,
    };
    match push.kind {
        redis::PushKind::SMessage => {
            if let (Some(ch), Some(Value::BulkString(payload))) =
                (channel(push.data.first()), push.data.get(1))
            {
                route_payload(inner, &ch, payload);
            }
        }
        redis::PushKind::SSubscribe => {
            let Some(ch) = channel(push.data.first()) else {
                return;
            };
            let Some(room) = Keys::room_of_channel(&ch) else {
                return;
            };
            let rooms = lock(&inner.rooms);
            if let Some(r) = rooms.get(room) {
                let resubscribed = matches!(&*r.ready.borrow(), Some(Ok(())));
                if resubscribed {
                    inner.metrics.reconnects.inc();
                    request_recover(r);
                }
            }
        }
        _ => {}
    }
}

fn route_payload(inner: &Inner, channel: &str, payload: &[u8]) {
    let Some(room) = Keys::room_of_channel(channel) else {
        return;
    };
    let rooms = lock(&inner.rooms);
    let Some(r) = rooms.get(room) else { return };
    let mut st = lock(&r.live.state);
    if st.queued == 0 {
        match r.live.handle(&mut st, payload, room) {
            Step::Done => return,
            Step::Fetch { .. } => {}
        }
    }
    let payload = bytes::Bytes::copy_from_slice(payload);
    if r.inbox.try_send(Inbound::Published(payload)).is_ok() {
        st.queued += 1;
    } else {
        drop(st);
        // The pump is behind; its members will recover from the log instead.
        inner.metrics.recoveries.inc();
        request_recover(r);
    }
}
