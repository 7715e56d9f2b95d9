//! The room directory of embedded mode: every room is in this process, so the listing reads
//! the rooms' presence and page timeline, plus the few timestamps [`Seen`] keeps.

use std::collections::HashMap;

use assist_relay_proto::{Member, Role};
use async_trait::async_trait;

use super::{lock, MemoryStore};
use crate::store::directory::{now_ms, DirectoryPage, LiveRoom, RoomSeen};
use crate::store::{Directory, StoreError};

/// When a room opened, when each member present entered, when an agent was last there.
#[derive(Debug, Default)]
pub(super) struct Seen {
    opened_ms: u64,
    joined: HashMap<String, u64>,
    agent_seen_ms: Option<u64>,
}

impl Seen {
    /// A connection of `member` entered; `first`: its first one present.
    pub(super) fn entered(&mut self, member: &Member, first: bool) {
        let now = now_ms();
        if self.opened_ms == 0 {
            self.opened_ms = now;
        }
        if first {
            self.joined.insert(member.id.clone(), now);
        }
    }

    /// The last connection of `member` left.
    pub(super) fn left(&mut self, member: &Member) {
        self.joined.remove(&member.id);
        if member.role == Role::Agent {
            self.agent_seen_ms = Some(now_ms());
        }
    }
}

#[async_trait]
impl Directory for MemoryStore {
    async fn live_rooms(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<DirectoryPage, StoreError> {
        let mut ids: Vec<String> = self
            .rooms
            .iter()
            .map(|e| e.key().clone())
            .filter(|k| after.is_none_or(|a| k.as_str() > a))
            .collect();
        ids.sort_unstable();
        let more = ids.len() > limit;
        ids.truncate(limit);
        let mut rooms = Vec::new();
        for id in &ids {
            let Some(room) = self.rooms.get(id).map(|r| r.clone()) else {
                continue;
            };
            let st = lock(&room);
            if st.sealed {
                continue;
            }
            let seen = RoomSeen {
                opened_ms: st.seen.opened_ms,
                members: st
                    .presence
                    .values()
                    .map(|(m, _)| (m.clone(), st.seen.joined.get(&m.id).copied().unwrap_or(0)))
                    .collect(),
                agent_seen_ms: st.seen.agent_seen_ms,
                page: st.pages.back().cloned(),
            };
            drop(st);
            rooms.extend(LiveRoom::build(id, seen));
        }
        Ok(DirectoryPage {
            rooms,
            more_after: if more { ids.last().cloned() } else { None },
        })
    }
}
