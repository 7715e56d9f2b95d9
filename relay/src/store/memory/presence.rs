//! Presence of embedded mode: who is in a room, under the room's lock, and the changes
//! (`room.opened`, joined, left) handed to the [`PresenceWatcher`] after the lock is released.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use assist_relay_proto::Member;
use async_trait::async_trait;

use super::{lock, MemoryStore, RoomState};
use crate::store::{Entered, Presence, PresenceChange, PresenceWatcher, RoomMsg, StoreError};

impl MemoryStore {
    /// [`Presence::enter`] under the room lock; `limits`: (members, connections per member).
    fn enter_locked(
        &self,
        room_id: &str,
        member: &Member,
        conn: u64,
        limits: (usize, usize),
        changes: &mut Vec<PresenceChange>,
    ) -> Entered {
        let room = self.room(room_id);
        let mut st = lock(&room);
        st.last_activity = Instant::now();
        let first = !st.presence.contains_key(&member.id);
        if first && st.presence.len() >= limits.0 {
            return Entered::Full;
        }
        if st
            .presence
            .get(&member.id)
            .is_some_and(|(_, conns)| conns.len() >= limits.1)
        {
            return Entered::TooManyConnections;
        }
        st.presence
            .entry(member.id.clone())
            .or_insert_with(|| (member.clone(), HashSet::new()))
            .1
            .insert(conn);
        st.seen.entered(member, first);
        if first {
            self.hub
                .send(room_id, RoomMsg::Joined(Arc::new(member.clone())));
            if !std::mem::replace(&mut st.opened, true) {
                changes.push(PresenceChange::Opened);
            }
            changes.push(PresenceChange::Joined(member.clone()));
        }
        if member.role == assist_relay_proto::Role::Customer {
            st.customer_left = None;
        }
        Entered::Members(st.members())
    }
}

/// Hands presence changes to the watcher, if any, outside the room lock.
pub(super) async fn report(w: Option<&PresenceWatcher>, room: &str, changes: Vec<PresenceChange>) {
    for c in changes.into_iter().filter(|_| w.is_some()) {
        if let Some(w) = w {
            w(room.to_owned(), c).await;
        }
    }
}

#[async_trait]
impl Presence for MemoryStore {
    fn watch(&self, watcher: PresenceWatcher) {
        let _ = self.watcher.set(watcher);
    }

    async fn enter(
        &self,
        room_id: &str,
        member: &Member,
        conn: u64,
        max_members: usize,
        max_conns: usize,
    ) -> Result<Entered, StoreError> {
        let mut changes = Vec::new();
        let entered = self.enter_locked(
            room_id,
            member,
            conn,
            (max_members, max_conns),
            &mut changes,
        );
        report(self.watcher.get(), room_id, changes).await;
        Ok(entered)
    }

    async fn exit(&self, room_id: &str, member: &Member, conn: u64) -> Result<(), StoreError> {
        let Some(room) = self.rooms.get(room_id).map(|r| r.clone()) else {
            return Ok(());
        };
        if self.exit_locked(&room, room_id, member, conn) {
            let left = vec![PresenceChange::Left(member.clone())];
            report(self.watcher.get(), room_id, left).await;
        }
        Ok(())
    }
}

impl MemoryStore {
    /// [`Presence::exit`] under the room lock; whether the member left.
    fn exit_locked(
        &self,
        room: &Mutex<RoomState>,
        room_id: &str,
        member: &Member,
        conn: u64,
    ) -> bool {
        let mut st = lock(room);
        st.last_activity = Instant::now();
        let last = match st.presence.get_mut(&member.id) {
            Some((_, conns)) => {
                conns.remove(&conn);
                conns.is_empty()
            }
            None => false,
        };
        if last {
            st.presence.remove(&member.id);
            st.seen.left(member);
            self.hub
                .send(room_id, RoomMsg::Left(Arc::new(member.clone())));
            let customer_present = st
                .presence
                .values()
                .any(|(m, _)| m.role == assist_relay_proto::Role::Customer);
            if member.role == assist_relay_proto::Role::Customer && !customer_present {
                st.customer_left = Some(Instant::now());
            }
        }
        last
    }
}
