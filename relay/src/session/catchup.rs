//! Joining and catching up: subscribe, register presence, send `joined` and the catch-up; and,
//! mid-stream, [`Outbound::recover`]: a silent resume from the log when everything after the
//! last offset sent is still there, a marked resync when it is not. Lagging viewers get only the
//! latest pointer position of a run of moves. It reads nothing from the client; the live stream
//! after the catch-up is `live.rs`'s.

use std::sync::Arc;

use assist_relay_proto::{
    CloseCode, JoinMode, Limits as WireLimits, Position, ResyncReason, ServerFrame,
};

use super::exit::Exit;
use super::outbound::Outbound;
use crate::hub::{chunk_data_bytes, now_us, Entry, EntryBody, Subscription};
use crate::store::{CatchUp, CatchUpRequest, Entered};

/// rrweb incremental sources that only move a pointer; a lagging viewer needs only the last one.
const POINTER_SOURCES: [u8; 2] = [1, 6]; // MouseMove, TouchMove

impl Outbound {
    /// Subscribes, registers presence, sends `joined` and the catch-up. `entered` is set once
    /// presence is registered (the caller then owes the room a leave).
    pub(super) async fn joined(
        &mut self,
        resume: Option<Position>,
        entered: &mut bool,
    ) -> Result<Subscription, Exit> {
        let node = self.node.clone();
        let room = self.room.to_string();
        // Subscribe first: every entry after the catch-up's head then reaches us live.
        let sub = node.broker.subscribe(&room).await?;
        let members = match node
            .broker
            .enter(
                &room,
                &self.me,
                self.conn_id,
                node.config.max_room_members,
                node.config.quotas.max_connections_per_participant,
            )
            .await?
        {
            Entered::Members(m) => m,
            Entered::Full => return Err(Exit::Close(CloseCode::RoomFull)),
            Entered::TooManyConnections => return Err(Exit::Close(CloseCode::TooManyConnections)),
        };
        *entered = true;
        let request = CatchUpRequest {
            resume,
            events: self.rights.receives_events(),
            chat_limit: node.config.chat_history,
        };
        let cu = node.log.catch_up(&room, request).await?;
        if cu.sealed {
            return Err(Exit::Close(CloseCode::RoomClosed));
        }
        if let Some(reason) = cu.reason {
            node.metrics
                .resyncs
                .with_label_values(&[reason.as_str()])
                .inc();
        }
        tracing::info!(
            mode = cu.mode.as_str(),
            entries = cu.entries.len(),
            head = cu.head,
            "joined"
        );
        crate::audit::join(
            &room,
            &self.me.id,
            self.me.role,
            self.conn_id,
            self.codec,
            self.wire.peer_addr(),
        );
        self.epoch = cu.epoch.clone();
        let max_frame = node.config.max_frame_bytes;
        let joined = ServerFrame::Joined {
            room,
            epoch: cu.epoch.to_string(),
            you: self.me.clone(),
            members,
            mode: cu.mode,
            reason: cu.reason,
            head: cu.head,
            pages: cu.pages.clone(),
            limits: Some(WireLimits {
                max_frame_bytes: max_frame as u64,
                max_upload_bytes: node.config.max_upload_bytes,
                chunk_bytes: chunk_data_bytes(assist_relay_proto::Codec::Json, max_frame) as u64,
            }),
            ice_servers: node
                .config
                .ice
                .servers_for(&self.me.id, now_us() / 1_000_000),
        };
        self.feed_frame(&joined).await?;
        self.send_catch_up(&cu, true).await?;
        Ok(sub)
    }

    /// Writes catch-up entries (all of them, or only those after `last`), then `caught_up` if
    /// `marked`, and flushes.
    pub(super) async fn send_catch_up(&mut self, cu: &CatchUp, marked: bool) -> Result<(), Exit> {
        let after = if marked { 0 } else { self.last };
        let entries: Vec<&Arc<Entry>> = cu.entries.iter().filter(|e| e.offset > after).collect();
        let coalesce = !marked || cu.mode == JoinMode::Resync;
        let superseded = if coalesce {
            superseded_pointer_moves(&entries)
        } else {
            Vec::new()
        };
        let mut bytes = 0u64;
        let mut sent = 0u64;
        for (i, e) in entries.iter().enumerate() {
            if superseded.get(i).copied().unwrap_or(false) {
                continue;
            }
            bytes += e.body.size() as u64;
            sent += 1;
            self.feed_entry(e).await?;
        }
        self.node.metrics.catchup_entries.observe(sent as f64);
        self.node.metrics.catchup_bytes.observe(bytes as f64);
        self.epoch = cu.epoch.clone();
        self.last = if marked {
            cu.head
        } else {
            self.last.max(cu.head)
        };
        if marked {
            let frame = ServerFrame::CaughtUp { offset: self.last };
            self.feed_frame(&frame).await?;
        }
        self.wire.flush().await
    }

    /// Brings the connection up to the log's head: a silent resume when everything after `last`
    /// is still in the log, otherwise a `resync` frame, the full state, and `caught_up`.
    pub(super) async fn recover(&mut self, cause: ResyncReason) -> Result<(), Exit> {
        let node = self.node.clone();
        let request = CatchUpRequest {
            resume: Some(Position {
                epoch: self.epoch.to_string(),
                offset: self.last,
            }),
            events: self.rights.receives_events(),
            chat_limit: node.config.chat_history,
        };
        let cu = node.log.catch_up(&self.room, request).await?;
        let resync = cu.mode != JoinMode::Resume;
        if resync {
            // Mid-stream, the cause (lag, a gap) is what the client and operator need to know;
            // a new epoch overrides it because the client must discard its offsets.
            let reason = match cu.reason {
                Some(ResyncReason::EpochChanged) => ResyncReason::EpochChanged,
                _ => cause,
            };
            node.metrics
                .resyncs
                .with_label_values(&[reason.as_str()])
                .inc();
            tracing::info!(reason = reason.as_str(), "resync");
            let frame = ServerFrame::Resync {
                epoch: cu.epoch.to_string(),
                reason,
            };
            self.feed_frame(&frame).await?;
        }
        self.send_catch_up(&cu, resync).await
    }
}

/// Which of `entries` are pointer moves that later entries make redundant: per source, every
/// move but the last one and the last one over a real node. The replayer needs the pointer's
/// latest position, and the latest node it hovered: a move whose positions all have id -1 (no
/// node: over an rr-block's content) moves no pointer and changes no hover in the Replayer, so it
/// does not supersede the move before it. Mutations and every other event are kept.
fn superseded_pointer_moves(entries: &[&Arc<Entry>]) -> Vec<bool> {
    let mut superseded = vec![false; entries.len()];
    // Per pointer source: a later move was seen; a later move over a real node was seen.
    let mut later = [(false, false); POINTER_SOURCES.len()];
    for (i, e) in entries.iter().enumerate().rev() {
        let EntryBody::Event {
            source: Some(src),
            ref event,
            ..
        } = e.body
        else {
            continue;
        };
        let Some(k) = POINTER_SOURCES.iter().position(|&s| s == src) else {
            continue;
        };
        let (any, real) = &mut later[k];
        if *real {
            superseded[i] = true;
        } else if moves_over_a_node(event.get()) {
            *real = true;
        } else {
            superseded[i] = *any;
        }
        *any = true;
    }
    superseded
}

/// Whether a MouseMove/TouchMove has a position over a real node (`id` other than -1). An event
/// that does not parse as one counts as over a node (kept, as it would be without coalescing).
fn moves_over_a_node(json: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Move {
        data: MoveData,
    }
    #[derive(serde::Deserialize)]
    struct MoveData {
        positions: Vec<Pos>,
    }
    #[derive(serde::Deserialize)]
    struct Pos {
        id: Option<i64>,
    }
    match serde_json::from_str::<Move>(json) {
        Ok(m) => m.data.positions.iter().any(|p| p.id != Some(-1)),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::moves_over_a_node;

    #[test]
    fn a_move_is_over_a_node_unless_every_position_has_id_minus_one() {
        let mv = |ids: &str| format!(r#"{{"type":3,"data":{{"source":1,"positions":[{ids}]}}}}"#);
        let pos = |id: i64| format!(r#"{{"x":1,"y":2,"id":{id},"timeOffset":0}}"#);
        assert!(moves_over_a_node(&mv(&pos(5))));
        assert!(moves_over_a_node(&mv(&format!("{},{}", pos(-1), pos(0)))));
        assert!(!moves_over_a_node(&mv(&pos(-1))));
        assert!(!moves_over_a_node(&mv(&format!("{},{}", pos(-1), pos(-1)))));
        assert!(!moves_over_a_node(&mv("")), "no position moves nothing");
        // Not a move as expected: kept, as it would be without coalescing.
        assert!(moves_over_a_node(r#"{"type":3,"data":{"source":1}}"#));
    }
}
