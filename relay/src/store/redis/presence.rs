//! Presence in Redis: one sorted-set member per connection, scored by its expiry, entered and
//! left through `scripts/enter.lua` and `exit.lua` (after the `reap.lua` prelude, which drops
//! expired members and announces who left), and the loop that refreshes this node's members
//! and reaps those of dead nodes. Delivery of `J`/`L` messages is in `bus` and `live`.

use std::collections::HashMap;
use std::time::Duration;

use assist_relay_proto::Member;
use async_trait::async_trait;

use super::body::parse_member;
use super::commands::{lock, unavailable};
use super::keys::{Keys, LIVE_ROOMS};
use super::shared::{Inner, RedisStore};
use crate::hub::now_us;
use crate::store::{Entered, Presence, PresenceChange, PresenceWatcher, StoreError};

#[async_trait]
impl Presence for RedisStore {
    async fn enter(
        &self,
        room: &str,
        member: &Member,
        conn: u64,
        max_members: usize,
        max_conns: usize,
    ) -> Result<Entered, StoreError> {
        let inner = &self.inner;
        let k = Keys::of(room);
        let key = format!(
            "{}\x1f{}\x1f{}:{conn}",
            member.id,
            member.role.as_str(),
            inner.node_id
        );
        let now = now_us() / 1000;
        let expiry = now + inner.cfg.presence_ttl.as_millis() as u64;
        let mut c = inner.conn.clone();
        // KEYS and ARGV in the order `scripts/reap.lua` and `scripts/enter.lua` name them.
        let reply: Vec<String> = inner
            .scripts
            .enter
            .key(&k.presence)
            .key(&k.meta)
            .key(&k.log)
            .key(&k.chat)
            .key(&k.pages)
            .key(&k.typed)
            .arg(now)
            .arg(&k.channel)
            .arg(inner.sharded())
            .arg(&key)
            .arg(&member.id)
            .arg(member.role.as_str())
            .arg(max_members)
            .arg(expiry)
            .arg(inner.cfg.room_ttl.as_millis() as u64)
            .arg(max_conns)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        let refused = match reply.first().map(String::as_str) {
            Some("full") => Some(Entered::Full),
            Some("conns") => Some(Entered::TooManyConnections),
            _ => None,
        };
        if let Some(refused) = refused {
            self.report_left(room, &reply[1..]).await;
            return Ok(refused);
        }
        lock(&inner.local).insert((room.to_owned(), conn), key);
        // The directory's index of rooms (another slot than the room's keys on a Redis
        // Cluster, so not in the script); the presence loop adds it again should this fail.
        let listed: Result<(), _> = redis::cmd("ZADD")
            .arg(LIVE_ROOMS)
            .arg(0)
            .arg(room)
            .query_async(&mut c)
            .await;
        if let Err(e) = listed {
            tracing::debug!(error = %e, "room directory add failed");
        }
        let flags = reply.get(1).map_or("", String::as_str);
        let n_left: usize = reply.get(2).and_then(|n| n.parse().ok()).unwrap_or(0);
        let left_end = (3 + n_left).min(reply.len());
        self.report_left(room, &reply[3.min(left_end)..left_end])
            .await;
        if flags.contains('o') {
            self.report(room, PresenceChange::Opened).await;
        }
        if flags.contains('j') {
            self.report(room, PresenceChange::Joined(member.clone()))
                .await;
        }
        let mut members: Vec<Member> = reply[left_end..]
            .iter()
            .filter_map(|s| parse_member(s))
            .collect();
        members.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Entered::Members(members))
    }

    async fn exit(&self, room: &str, member: &Member, conn: u64) -> Result<(), StoreError> {
        let inner = &self.inner;
        let Some(key) = lock(&inner.local).remove(&(room.to_owned(), conn)) else {
            return Ok(());
        };
        let k = Keys::of(room);
        let mut c = inner.conn.clone();
        // KEYS and ARGV in the order `scripts/reap.lua` and `scripts/exit.lua` name them.
        let left: Vec<String> = inner
            .scripts
            .exit
            .key(&k.presence)
            .key(&k.meta)
            .arg(now_us() / 1000)
            .arg(&k.channel)
            .arg(inner.sharded())
            .arg(&key)
            .arg(&member.id)
            .arg(member.role.as_str())
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        self.report_left(room, &left).await;
        Ok(())
    }

    fn watch(&self, watcher: PresenceWatcher) {
        let _ = self.inner.watcher.set(watcher);
    }
}

impl RedisStore {
    async fn report(&self, room: &str, change: PresenceChange) {
        if let Some(w) = self.inner.watcher.get() {
            w(room.to_owned(), change).await;
        }
    }

    /// Reports `<sub>\x1f<role>` entries as left.
    pub(super) async fn report_left(&self, room: &str, left: &[String]) {
        for m in left.iter().filter_map(|s| parse_member(s)) {
            self.report(room, PresenceChange::Left(m)).await;
        }
    }
}

/// Refreshes this node's presence entries and reaps expired ones (members of dead nodes).
pub(super) async fn presence_loop(weak: std::sync::Weak<Inner>) {
    let period = match weak.upgrade() {
        Some(i) => (i.cfg.presence_ttl / 3).max(Duration::from_millis(100)),
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        let local: Vec<((String, u64), String)> = lock(&inner.local)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let now = now_us() / 1000;
        let expiry = now + inner.cfg.presence_ttl.as_millis() as u64;
        let mut by_room: HashMap<&str, Vec<&String>> = HashMap::new();
        for ((room, _), member) in &local {
            by_room.entry(room.as_str()).or_default().push(member);
        }
        let ttl = inner.cfg.room_ttl.as_millis() as i64;
        let mut conn = inner.conn.clone();
        let rooms: Vec<&str> = by_room.keys().copied().collect();
        // One pipeline per room: a room's keys share a slot; different rooms may not.
        for (room, members) in &by_room {
            let k = Keys::of(room);
            let mut pipe = redis::pipe();
            for m in members {
                pipe.cmd("ZADD")
                    .arg(&k.presence)
                    .arg("XX")
                    .arg(expiry)
                    .arg(*m)
                    .ignore();
            }
            // A customer is here: the room is not idle (see `idle_rooms`).
            if members.iter().any(|m| m.contains("\x1fcustomer\x1f")) {
                pipe.hset(&k.meta, "cseen", now).ignore();
            }
            // An agent is here (the directory's `aseen`: when one was last present).
            if members.iter().any(|m| m.contains("\x1fagent\x1f")) {
                pipe.hset(&k.meta, "aseen", now).ignore();
            }
            for key in [&k.meta, &k.log, &k.chat, &k.presence, &k.pages, &k.typed] {
                pipe.pexpire(key, ttl).ignore();
            }
            if let Err(e) = pipe.query_async::<()>(&mut conn).await {
                tracing::debug!(error = %e, "presence refresh failed");
            }
        }
        if !rooms.is_empty() {
            let mut add = redis::cmd("ZADD");
            add.arg(LIVE_ROOMS);
            for room in &rooms {
                add.arg(0).arg(*room);
            }
            if let Err(e) = add.query_async::<()>(&mut conn).await {
                tracing::debug!(error = %e, "room directory refresh failed");
            }
        }
        for room in rooms {
            let k = Keys::of(room);
            // KEYS and ARGV in the order `scripts/reap.lua` names them.
            let r: Result<Vec<String>, _> = inner
                .scripts
                .reap
                .key(&k.presence)
                .arg(now)
                .arg(&k.channel)
                .arg(inner.sharded())
                .invoke_async(&mut conn)
                .await;
            match r {
                Ok(left) => {
                    let store = RedisStore {
                        inner: inner.clone(),
                    };
                    store.report_left(room, &left).await;
                }
                Err(e) => tracing::debug!(error = %e, "presence reap failed"),
            }
        }
    }
}
