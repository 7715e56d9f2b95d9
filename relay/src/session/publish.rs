//! What the customer publishes: rrweb events (masked, stored, acknowledged, with the web pages
//! they open recorded in the timeline), native-app page placeholders, and the `snapshot_request`
//! and live compaction that follow. Role checks are the caller's (`dispatch.rs`, `upload.rs`);
//! the live delivery of what is stored is `live.rs`'s.

use std::time::Duration;

use assist_relay_proto::{
    ErrorCode, EventHead, EventKind, NativePage, ServerFrame, SnapshotReason,
};
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::exit::Exit;
use super::inbound::Inbound;
use crate::hub::EntryBody;
use crate::mask::{may_need_masking, MaskPolicy, RoomMask};
use crate::pages::read_meta;
use crate::store::{Appended, NewEntry, StoreError};

/// Events larger than this are masked on the blocking pool.
const BLOCKING_MASK_BYTES: usize = 256 * 1024;

/// Payload bytes of the room's log read at once while building a connection's masking state (in
/// cluster mode each read is a copy; the log may hold `--max-log-bytes`).
const MASK_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// At most one live compaction queued per connection in this long.
const LIVE_COMPACTION_INTERVAL: Duration = Duration::from_secs(10);

/// At most one `snapshot_request` per connection in this long.
const SNAPSHOT_REQUEST_INTERVAL: Duration = Duration::from_secs(10);

impl Inbound {
    /// Masks, stores and acknowledges one rrweb event from this (customer) connection, records
    /// web pages in the timeline, and asks for a fresh snapshot when the room needs one.
    pub(super) async fn publish(
        &mut self,
        id: Option<String>,
        mut event: Box<RawValue>,
        head: EventHead,
    ) -> Result<(), Exit> {
        let policy = self.mask_policy;
        if may_need_masking(policy, head.kind.as_u8(), head.source) {
            // A store that fails here is answered as a failed append: `unavailable` with the
            // frame's id, then 4004 (not a bare close).
            if let Err(e) = self.load_mask().await {
                return self.store_failed(e, id);
            }
            if let Some(mut mask) = self.mask.take() {
                // A big snapshot takes a parse and a walk (about 100 ms for 7 MB): off the
                // runtime's worker threads.
                let (mask_back, event_back, result) = if event.get().len() > BLOCKING_MASK_BYTES {
                    let job = tokio::task::spawn_blocking(move || {
                        let r = mask.mask(&event);
                        (mask, event, r)
                    });
                    match job.await {
                        Ok(done) => done,
                        Err(e) => {
                            tracing::error!(error = %e, "masking task failed");
                            let msg = "masking failed; the event was not stored".to_owned();
                            return self.send_error(ErrorCode::Internal, msg, id);
                        }
                    }
                } else {
                    let r = mask.mask(&event);
                    (mask, event, r)
                };
                event = event_back;
                let mask = self.mask.insert(mask_back);
                match result {
                    Ok(Some(masked)) => {
                        self.node
                            .metrics
                            .masked_events
                            .with_label_values(&[policy.as_str()])
                            .inc();
                        event = masked;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let msg = format!("the event cannot be masked, so it was not stored: {e}");
                        let kind = crate::webhook::EventKind::MaskingRefused;
                        let frame = id.as_deref().unwrap_or("");
                        self.report_refused(kind, frame, "unmaskable", &msg).await;
                        return self.send_error(ErrorCode::InvalidEvent, msg, id);
                    }
                }
                let typed = mask.take_new_typed();
                if !typed.is_empty() {
                    let node = self.node.clone();
                    if let Err(e) = node.log.add_typed_hashes(&self.room, &typed).await {
                        return self.store_failed(e, id);
                    }
                }
            }
        }
        let page = match head.kind {
            EventKind::Meta => {
                self.meta = read_meta(&event);
                None
            }
            EventKind::FullSnapshot => Some(crate::pages::web_page(self.meta.as_ref(), &event)),
            _ => None,
        };
        let entry = NewEntry {
            body: EntryBody::Event {
                event: event.into(),
                kind: head.kind,
                source: head.source,
            },
            dedup: id.as_ref().map(|i| (self.me.id.clone(), i.clone())),
            sender: Some(self.node.rates.rated(&self.me.id)),
            page,
        };
        if let Some(appended) = self.store(entry, id, head.kind.label()).await? {
            if head.kind == EventKind::FullSnapshot && !appended.duplicate {
                self.maybe_compact_live().await;
            }
            self.maybe_request_snapshot(&appended, head.kind);
        }
        Ok(())
    }

    /// After a new keyframe, queues a live compaction of what lies below it (at most once per
    /// [`LIVE_COMPACTION_INTERVAL`]).
    async fn maybe_compact_live(&mut self) {
        if !self.node.config.log.keep_until_archived
            || self
                .compacted_at
                .is_some_and(|t| t.elapsed() < LIVE_COMPACTION_INTERVAL)
        {
            return;
        }
        self.compacted_at = Some(Instant::now());
        let node = self.node.clone();
        node.compact_live(&self.room).await;
    }

    /// Builds the masking state from the room's keyframe and tail (already masked) and the
    /// room's typed-value hashes, once per connection.
    async fn load_mask(&mut self) -> Result<(), StoreError> {
        if self.mask.is_some() || self.mask_policy == MaskPolicy::None {
            return Ok(());
        }
        let node = self.node.clone();
        let mut mask = RoomMask::new(self.mask_policy, node.mask_key)
            .with_classes(node.config.mask_classes.clone());
        let state = node.log.log_state(&self.room).await?;
        let (after, room) = (state.floor.saturating_sub(1), &*self.room);
        crate::store::for_each_entry(&*node.log, room, after, state.head, MASK_PAGE_BYTES, |e| {
            if let Some(event) = match &e.body {
                EntryBody::Event { event, .. } => event.raw(),
                EntryBody::Chat { .. } => None,
            } {
                mask.observe(event);
            }
        })
        .await?;
        mask.add_typed(node.log.typed_hashes(room).await?);
        self.mask = Some(mask);
        Ok(())
    }

    /// Sends `snapshot_request` when the room's keyframe is a native placeholder but web-page
    /// events arrive, or when the tail after the keyframe is over the threshold; at most once per
    /// [`SNAPSHOT_REQUEST_INTERVAL`].
    fn maybe_request_snapshot(&mut self, a: &Appended, kind: EventKind) {
        if a.duplicate || matches!(kind, EventKind::Meta | EventKind::FullSnapshot) {
            return;
        }
        let threshold = self.node.config.snapshot_after_bytes;
        let reason = if a.native_keyframe && kind == EventKind::IncrementalSnapshot {
            SnapshotReason::NativePageLeft
        } else if threshold > 0 && a.tail_bytes > threshold {
            SnapshotReason::TailTooLarge
        } else {
            return;
        };
        if self
            .snapshot_asked
            .is_some_and(|t| t.elapsed() < SNAPSHOT_REQUEST_INTERVAL)
        {
            return;
        }
        self.snapshot_asked = Some(Instant::now());
        self.node
            .metrics
            .snapshot_requests
            .with_label_values(&[reason.as_str()])
            .inc();
        tracing::info!(
            reason = reason.as_str(),
            "asking the customer for a snapshot"
        );
        self.reply(&ServerFrame::SnapshotRequest { reason });
    }

    /// Stores a native-page placeholder reported by the app (role checked by the caller).
    pub(super) async fn on_native_page(
        &mut self,
        id: Option<String>,
        page: NativePage,
    ) -> Result<(), Exit> {
        let node = self.node.clone();
        let viewport = self
            .meta
            .as_ref()
            .filter(|m| m.width > 0 && m.height > 0)
            .map_or(crate::pages::DEFAULT_VIEWPORT, |m| (m.width, m.height));
        let stored = crate::pages::store_native_page(
            node.log.as_ref(),
            &node.templates,
            &self.room,
            &page,
            &self.me.id,
            id.as_deref(),
            viewport,
        )
        .await;
        match stored {
            Ok(appended) => {
                if !appended.duplicate {
                    let (room, offset) = (&self.room, appended.offset);
                    let event = crate::webhook::Event::native_page(room, &page, offset, "frame");
                    node.emit(event).await;
                    node.metrics
                        .native_pages
                        .with_label_values(&["frame"])
                        .inc();
                    node.metrics
                        .appends
                        .with_label_values(&["native_page"])
                        .inc();
                }
                if let Some(id) = id {
                    self.reply(&ServerFrame::Ack {
                        id,
                        offset: appended.offset,
                        duplicate: appended.duplicate,
                    });
                }
                Ok(())
            }
            Err(crate::pages::NativePageError::Invalid(e)) => {
                self.send_error(ErrorCode::InvalidFrame, e.to_string(), id)
            }
            Err(crate::pages::NativePageError::Store(e)) => self.store_failed(e, id),
        }
    }
}
