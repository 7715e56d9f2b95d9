//! The state every part of the Redis store shares ([`Inner`], behind [`RedisStore`]): the
//! command connection, settings, scripts, metrics, the rooms this node is subscribed to and its
//! local presence entries. It defines the handle, not the behaviour: each trait of the storage
//! seam is implemented in its own module.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use crate::hub::{Hub, Room};

use prometheus::{IntCounter, IntGauge};

use super::commands::{unavailable, Commands};
use super::config::RedisConfig;
use super::live::Feed;
use super::scripts::Scripts;
use crate::store::{LogConfig, StoreError};

/// Counters the Redis backend reports (registered by the node's telemetry).
#[derive(Clone)]
pub struct RedisMetrics {
    /// Pub/sub reconnections.
    pub reconnects: IntCounter,
    /// Entries fetched from the stream to fill a pub/sub gap.
    pub gap_fills: IntCounter,
    /// Times local members were told to recover after an outage or an overflowing inbox.
    pub recoveries: IntCounter,
    /// Payload bytes of live entries this node keeps for its rooms' rings (see
    /// [`crate::hub::window`]).
    pub live_bytes: IntGauge,
}

pub(super) struct Inner {
    pub(super) conn: Commands,
    pub(super) log_cfg: LogConfig,
    pub(super) cfg: RedisConfig,
    pub(super) metrics: RedisMetrics,
    pub(super) scripts: Scripts,
    /// The node's fan-out and its one room registry; a subscribed room's [`Feed`] lives there.
    pub(super) hub: Arc<Hub>,
    /// (room, conn) -> presence member, for refreshing.
    pub(super) local: Mutex<HashMap<(String, u64), String>>,
    /// The last PING answered (cleared at once when the connection drops).
    pub(super) ping_ok: AtomicBool,
    pub(super) node_id: String,
    /// Where presence changes are reported (the node's webhooks).
    pub(super) watcher: std::sync::OnceLock<crate::store::PresenceWatcher>,
}

impl Inner {
    /// The hub's room of `room`, if this node is subscribed to it (its feed is set up).
    pub(super) fn fed(&self, room: &str) -> Option<Arc<Room>> {
        self.hub.get(room).filter(|r| r.feed_if::<Feed>().is_some())
    }

    pub(super) fn sharded(&self) -> &'static str {
        if self.cfg.cluster {
            "1"
        } else {
            "0"
        }
    }
}

/// The Redis room store (cluster mode). Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    pub(super) inner: Arc<Inner>,
}

impl RedisStore {
    /// Runs one command on the store's connection (the compactor's job stream).
    pub async fn command<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        self.query(cmd).await.map_err(unavailable)
    }

    /// Like [`RedisStore::command`], with redis-rs's own error, for callers that match its kind
    /// or code (the compactor's `BUSYGROUP`).
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let mut conn = self.inner.conn.clone();
        cmd.query_async(&mut conn).await
    }

    /// Runs a Lua script on the store's connection (the webhook outbox's scripts).
    pub async fn invoke<T: redis::FromRedisValue>(
        &self,
        script: &redis::ScriptInvocation<'_>,
    ) -> redis::RedisResult<T> {
        let mut conn = self.inner.conn.clone();
        script.invoke_async(&mut conn).await
    }
}
