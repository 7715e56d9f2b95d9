//! Cluster mode: room logs in Redis Streams, live fan-out over Redis pub/sub, presence in Redis.
//!
//! This module connects ([`RedisStore::connect`]) and starts the store's background tasks; each
//! part of the storage seam lives in its own module, and none of them uses this one:
//! - `keys`: the key and channel layout of a room;
//! - `body`: entry bodies and published messages as bytes;
//! - `scripts/*.lua` (`scripts`): the Lua scripts, each with its KEYS and ARGV named;
//! - `log`: append, catch-up, seal (the hot path); `uploads`; `archive` (the compactor's);
//! - `bus`: subscriptions and the pub/sub connection; `live`: a room's ordering and pump;
//! - `presence`: enter, exit and the refresh loop; `directory`: the live-room listing.
//!
//! # Flow
//! `append` runs one Lua script that assigns the offset, appends, trims below a new keyframe,
//! records the idempotency key and publishes, so log, offsets and live fan-out never disagree.
//! Payloads over `--redis-inline-max-bytes` are published by reference and read from the stream.
//! Subscriptions ride the command connection as RESP3 pushes, on one server (SUBSCRIBE) and on a
//! Redis Cluster (SSUBSCRIBE) alike; redis-rs resubscribes after it reconnects. The push reader
//! only routes messages to a bounded per-room inbox; a per-room pump puts entries in offset
//! order, fetches referenced payloads, fills gaps from the stream, and broadcasts to the node's
//! local members. When a live room's subscription is confirmed again (the connection came back),
//! every local member of it is told to recover from the log.

mod archive;
mod body;
mod bus;
mod commands;
mod config;
mod directory;
mod keys;
mod live;
mod log;
mod presence;
mod scripts;
mod shared;
mod uploads;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use self::config::{redacted_url, RedisConfig, RedisTls};
pub use self::shared::{RedisMetrics, RedisStore};

use self::commands::{unavailable, Backoff, Commands};
use self::shared::Inner;
use crate::store::{LogConfig, StoreError};

impl RedisStore {
    /// Connects (retrying with backoff for up to `patience`) and starts the pub/sub reader and
    /// the presence and health tasks.
    pub async fn connect(
        cfg: RedisConfig,
        log_cfg: LogConfig,
        metrics: RedisMetrics,
        patience: Duration,
    ) -> Result<RedisStore, StoreError> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut backoff = Backoff::new();
        // Pushes (messages, subscription confirmations) may arrive before `Inner` exists; they find
        // it here.
        let router: Arc<std::sync::OnceLock<std::sync::Weak<Inner>>> = Default::default();
        let conn = if cfg.cluster {
            let seeds: Vec<String> = cfg
                .url
                .split(',')
                .map(|u| {
                    let u = u.trim();
                    if u.contains("protocol=") {
                        u.to_owned()
                    } else {
                        format!("{u}?protocol=resp3")
                    }
                })
                .collect();
            let push_router = router.clone();
            let mut builder = redis::cluster::ClusterClientBuilder::new(seeds);
            if let Some(tls) = &cfg.tls {
                builder = builder.certs(tls.certificates());
            }
            let cluster = builder
                .use_protocol(redis::ProtocolVersion::RESP3)
                .connection_timeout(Duration::from_secs(2))
                .response_timeout(Duration::from_secs(5))
                .push_sender(move |push: redis::PushInfo| {
                    if let Some(inner) = push_router.get().and_then(std::sync::Weak::upgrade) {
                        bus::route_push(&inner, push);
                    }
                    Ok::<(), redis::aio::SendError>(())
                })
                .build()
                .map_err(unavailable)?;
            let conn = loop {
                match cluster.get_async_connection().await {
                    Ok(c) => break c,
                    Err(e) if tokio::time::Instant::now() >= deadline => {
                        return Err(unavailable(e))
                    }
                    Err(e) => {
                        tracing::warn!(
                            error = %e,
                            url = %config::redacted_url(&cfg.url),
                            "redis cluster not reachable yet at {}; retrying",
                            config::redacted_url(&cfg.url)
                        );
                        tokio::time::sleep(backoff.next()).await;
                    }
                }
            };
            Commands::Cluster(conn)
        } else {
            // RESP3, so that subscriptions share the command connection and arrive as pushes.
            let info = redis::IntoConnectionInfo::into_connection_info(cfg.url.as_str())
                .map_err(unavailable)?;
            let resp3 = info
                .redis_settings()
                .clone()
                .set_protocol(redis::ProtocolVersion::RESP3);
            let info = info.set_redis_settings(resp3);
            let client = match &cfg.tls {
                Some(tls) => redis::Client::build_with_tls(info, tls.certificates()),
                None => redis::Client::open(info),
            }
            .map_err(unavailable)?;
            let push_router = router.clone();
            // The manager resubscribes every channel after it reconnects; the confirmations tell
            // `route_push` which rooms must recover.
            let manager_cfg = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(5)))
                .set_min_delay(RECONNECT_MIN_DELAY)
                .set_number_of_retries(RECONNECT_RETRIES)
                .set_max_delay(RECONNECT_MAX_DELAY)
                .set_push_sender(move |push: redis::PushInfo| {
                    if let Some(inner) = push_router.get().and_then(std::sync::Weak::upgrade) {
                        bus::route_push(&inner, push);
                    }
                    Ok::<(), redis::aio::SendError>(())
                })
                .set_automatic_resubscription();
            let conn = loop {
                match client
                    .get_connection_manager_with_config(manager_cfg.clone())
                    .await
                {
                    Ok(c) => break c,
                    Err(e) if tokio::time::Instant::now() >= deadline => {
                        return Err(unavailable(e))
                    }
                    Err(e) => {
                        tracing::warn!(
                            error = %e,
                            url = %config::redacted_url(&cfg.url),
                            "redis not reachable yet at {}; retrying",
                            config::redacted_url(&cfg.url)
                        );
                        tokio::time::sleep(backoff.next()).await;
                    }
                }
            };
            Commands::Single(conn)
        };
        let hub = crate::hub::Hub::new(crate::hub::HubConfig {
            buffer: log_cfg.room_buffer,
            held: Some((log_cfg.room_buffer_bytes, metrics.live_bytes.clone())),
        });
        let inner = Arc::new(Inner {
            conn,
            log_cfg,
            cfg,
            metrics,
            scripts: scripts::Scripts::new(),
            hub,
            local: Mutex::new(HashMap::new()),
            ping_ok: AtomicBool::new(true),
            node_id: format!("{:08x}", rand::random::<u32>()),
            watcher: Default::default(),
        });
        let _ = router.set(Arc::downgrade(&inner));
        tokio::spawn(presence::presence_loop(Arc::downgrade(&inner)));
        tokio::spawn(health_loop(Arc::downgrade(&inner)));
        Ok(RedisStore { inner })
    }
}

/// After the connection to one server drops, redis-rs tries to reconnect at once and then
/// `RECONNECT_RETRIES` more times, waiting a jittered exponential delay from `RECONNECT_MIN_DELAY`
/// (doubling, capped at `RECONNECT_MAX_DELAY`) between tries; commands wait for that round. When
/// the round fails, the next command (a health ping at the latest, [`HEALTH_INTERVAL`]) starts
/// another. So reconnection is attempted at least every `HEALTH_INTERVAL` while Redis is away,
/// and a command never waits on a dead server for more than about a second.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
const RECONNECT_RETRIES: usize = 2;
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(1);

/// How often the health loop pings Redis. A ping also makes the connection manager try to
/// reconnect when its last attempt failed, so this bounds how long after Redis returns the node
/// reconnects, turns ready and its rooms recover (docs/operations.md, "Redis: what the
/// no-loss guarantee assumes").
const HEALTH_INTERVAL: Duration = Duration::from_millis(250);
/// A PING unanswered for this long makes the node unready: `/readyz` turns 503 between
/// `PING_TIMEOUT` and `PING_TIMEOUT + HEALTH_INTERVAL` after Redis stops answering.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// Pings Redis every [`HEALTH_INTERVAL`]; feeds `/readyz`. The first answer after a failure
/// resubscribes every live room, whose members then recover from the log.
async fn health_loop(weak: std::sync::Weak<Inner>) {
    let mut tick = tokio::time::interval(HEALTH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        let mut conn = inner.conn.clone();
        let ok = matches!(
            tokio::time::timeout(
                PING_TIMEOUT,
                redis::cmd("PING").query_async::<String>(&mut conn)
            )
            .await,
            Ok(Ok(_))
        );
        let was_ok = inner.ping_ok.swap(ok, Ordering::SeqCst);
        if ok && !was_ok {
            inner.resubscribe_all().await;
        }
    }
}
