//! The command connection of the Redis store (one server or a Redis Cluster) and the small
//! helpers every part uses with it: error mapping, lock recovery, connection backoff. The same
//! connection carries subscriptions as RESP3 pushes (see `bus`).

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use redis::Value;

use crate::store::{StoreError, Unavailable};

/// The command connection: one server (reconnecting manager) or a Redis Cluster (slot routing;
/// every key of a room shares its slot, so scripts and MULTI pipelines stay on one node).
#[derive(Clone)]
pub(super) enum Commands {
    Single(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Commands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Commands::Single(c) => c.req_packed_command(cmd),
            Commands::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Commands::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Commands::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Commands::Single(c) => c.get_db(),
            Commands::Cluster(c) => c.get_db(),
        }
    }
}

pub(super) fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::from(e)
}

/// A Redis error as a store error of the matching [`Unavailable`] kind; the message is
/// redis-rs's, as before.
impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> StoreError {
        let kind = if e.is_timeout() {
            Unavailable::Timeout
        } else if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.kind() == redis::ErrorKind::ClusterConnectionNotFound
        {
            Unavailable::Connection
        } else if e.code().is_some() {
            Unavailable::Server
        } else {
            Unavailable::Local
        };
        StoreError::Unavailable(kind, e.to_string())
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Jittered exponential backoff: 100 ms doubling to 5 s, each wait drawn from [d/2, d].
pub(super) struct Backoff(Duration);

impl Backoff {
    pub(super) fn new() -> Backoff {
        Backoff(Duration::from_millis(100))
    }
    pub(super) fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        d / 2 + d.mul_f64(rand::random::<f64>() / 2.0)
    }
}
