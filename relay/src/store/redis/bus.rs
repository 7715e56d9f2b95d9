//! Live fan-out over Redis pub/sub, one engine for one server and a Redis Cluster: subscribing a
//! room's channel (SUBSCRIBE or SSUBSCRIBE as a command on the RESP3 command connection, which
//! redis-rs resubscribes after it reconnects), routing each pushed message to its room's [`Live`]
//! without waiting, and telling every local member to recover when a live room's subscription is
//! confirmed again or its inbox overflows. Relayed (unstored) messages are published here too.
//! Ordering and the pump are in `live`; presence in `presence`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;

use super::commands::{lock, unavailable, Commands};
use super::keys::Keys;
use super::live::{request_recover, Feed, Inbound, Step};
use super::shared::{Inner, RedisStore};
use crate::hub::Hub;
use crate::hub::Subscription;
use crate::store::{Bus, StoreError, Unavailable};

/// Pub/sub messages a room's inbox holds at least before the room recovers from the log. Unlike
/// the broadcast ring, an mpsc channel allocates as it fills, so a large bound costs an idle room
/// nothing; it is not tied to a small `--room-buffer`.
const MIN_INBOX: usize = 1024;

impl Inner {
    /// SUBSCRIBE on one server, SSUBSCRIBE on a Cluster: a command on the shared RESP3
    /// connection, whose messages come back as pushes (see [`route_push`]).
    async fn subscribe_channel(&self, channel: String) -> Result<(), StoreError> {
        let subscribed = match &self.conn {
            Commands::Single(c) => c.clone().subscribe(channel).await,
            Commands::Cluster(c) => c.clone().ssubscribe(channel).await,
        };
        subscribed.map_err(StoreError::from)
    }

    /// Subscribes every room with live subscribers here again, after the connection came back:
    /// redis-rs resubscribes on its own but drops a failure of that, and a room whose channel is
    /// not subscribed would get nothing live. A confirmation for a room confirmed before makes
    /// its members recover from the log ([`route_push`]); a second one changes nothing.
    pub(super) async fn resubscribe_all(&self) {
        let mut rooms = Vec::new();
        self.hub.each(|room, r| {
            if r.feed_if::<Feed>().is_some() {
                rooms.push(room.to_owned());
            }
        });
        for room in rooms {
            if let Err(e) = self.subscribe_channel(Keys::of(&room).channel).await {
                tracing::warn!(room, error = %e, "resubscription failed; retried after the next reconnection");
                self.ping_ok.store(false, Ordering::SeqCst);
            }
        }
    }

    pub(super) fn unsubscribe_channel(self: &Arc<Self>, room: String) {
        let inner = self.clone();
        tokio::spawn(async move {
            // Someone may have subscribed again in the meantime.
            if inner.fed(&room).is_some() {
                return;
            }
            let channel = Keys::of(&room).channel;
            let _ = match &inner.conn {
                Commands::Single(c) => c.clone().unsubscribe(channel).await,
                Commands::Cluster(c) => c.clone().sunsubscribe(channel).await,
            };
        });
    }
}

#[async_trait]
impl Bus for RedisStore {
    async fn subscribe(&self, room: &str) -> Result<Subscription, StoreError> {
        let inner = &self.inner;
        // The hub counts the room's subscribers here; the first one sets up its feed (pump and
        // channel subscription), which the room drops with its last subscriber.
        let (sub, hub_room) = inner.hub.subscribe(room);
        let weak = Arc::downgrade(&hub_room);
        let mut first = false;
        let inbox = inner.log_cfg.room_buffer.max(MIN_INBOX);
        let Some(feed) = hub_room.feed(|| {
            first = true;
            Feed::start(inner, room, weak, inbox)
        }) else {
            return Err(StoreError::Corrupt("room feed of another backend".into()));
        };
        let mut ready = feed.ready.clone();
        if first {
            let result = inner.subscribe_channel(Keys::of(room).channel).await;
            feed.ready_tx.send_replace(Some(result));
        }
        let outcome = tokio::time::timeout(Duration::from_secs(5), ready.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|r| r.ok().map(|v| v.clone()))
            .flatten();
        match outcome {
            Some(Ok(())) => Ok(sub),
            Some(Err(e)) => Err(e),
            None => Err(StoreError::Unavailable(
                Unavailable::Timeout,
                "pub/sub subscription timed out".into(),
            )),
        }
    }

    async fn relay(&self, room: &str, msg: crate::hub::Relayed) -> Result<(), StoreError> {
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
        self.inner.ping_ok.load(Ordering::SeqCst)
    }

    fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }
}

/// Routes one push of the connection without waiting (the reader must never stall: Redis
/// disconnects subscribers that fall behind). Messages go to their room; a subscription
/// confirmation for a room already confirmed once means the connection (to its shard) was
/// re-established and the channel resubscribed, so its members recover from the log (they may
/// have missed messages meanwhile). A dropped connection makes the node unready until a PING
/// answers again.
pub(super) fn route_push(inner: &Inner, push: redis::PushInfo) {
    let channel = |v: Option<&Value>| match v {
        Some(Value::BulkString(b)) => String::from_utf8(b.clone()).ok(),
        Some(Value::SimpleString(s)) => Some(s.clone()),
        _ => None,
    };
    match push.kind {
        redis::PushKind::Message | redis::PushKind::SMessage => {
            if let (Some(ch), Some(Value::BulkString(payload))) =
                (channel(push.data.first()), push.data.get(1))
            {
                route_payload(inner, &ch, payload);
            }
        }
        redis::PushKind::Subscribe | redis::PushKind::SSubscribe => {
            let Some(ch) = channel(push.data.first()) else {
                return;
            };
            let Some(room) = Keys::room_of_channel(&ch) else {
                return;
            };
            if let Some(hub_room) = inner.fed(room) {
                let Some(r) = hub_room.feed_if::<Feed>() else {
                    return;
                };
                if r.confirmed.swap(true, Ordering::SeqCst) {
                    inner.metrics.reconnects.inc();
                    tracing::info!(
                        room,
                        "redis subscription restored; local members recover from the log"
                    );
                    request_recover(r);
                }
            }
        }
        redis::PushKind::Disconnection => {
            inner.ping_ok.store(false, Ordering::SeqCst);
            tracing::warn!("redis connection lost; reconnecting");
        }
        _ => {}
    }
}

fn route_payload(inner: &Inner, channel: &str, payload: &[u8]) {
    let Some(room) = Keys::room_of_channel(channel) else {
        return;
    };
    let Some(hub_room) = inner.fed(room) else {
        return;
    };
    let Some(r) = hub_room.feed_if::<Feed>() else {
        return;
    };
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
