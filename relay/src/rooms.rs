//! The node's local room registry: which rooms have members on this node, and how many.

use dashmap::DashMap;

use crate::telemetry::Metrics;

/// Rooms with local members. Feeds `relay_rooms`; the cluster broker uses the same notion to
/// subscribe only to rooms that have local members.
#[derive(Default)]
pub struct LocalRooms {
    members: DashMap<String, usize>,
}

impl LocalRooms {
    /// A local connection joined `room`.
    pub fn enter(&self, room: &str, metrics: &Metrics) {
        *self.members.entry(room.to_owned()).or_insert(0) += 1;
        metrics.rooms.set(self.members.len() as i64);
    }

    /// A local connection of `room` left.
    pub fn leave(&self, room: &str, metrics: &Metrics) {
        self.members.remove_if_mut(room, |_, n| {
            *n = n.saturating_sub(1);
            *n == 0
        });
        metrics.rooms.set(self.members.len() as i64);
    }

    /// Local members of `room`.
    pub fn count(&self, room: &str) -> usize {
        self.members.get(room).map_or(0, |n| *n)
    }

    /// Rooms with local members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no room has local members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}
