//! Uploads: an event too large for one frame arrives in `chunk` slices, is staged in the store,
//! stitched, checked against its digest and published like any event. Role checks are the
//! caller's (`dispatch.rs`); masking and storing the stitched event are `publish.rs`'s.

use assist_relay_proto::{ChunkData, ErrorCode, EventHead, ServerFrame};
use serde_json::value::RawValue;

use super::exit::Exit;
use super::inbound::Inbound;
use crate::store::{ChunkIn, Staged, UploadLimits};
use crate::webhook::{Event, EventKind};

/// An upload slice as received.
pub(super) struct Chunk<'a> {
    pub(super) id: String,
    pub(super) index: u32,
    pub(super) count: u32,
    pub(super) size: u64,
    pub(super) digest: String,
    pub(super) data: ChunkData<'a>,
}

impl Inbound {
    /// Emits `upload.refused` or `masking.refused`: who sent what (`id`: the upload or frame id),
    /// the refusal's `reason` kind and its message. A client sending refused frames back to back
    /// is closed by its violation budget (`--max-violations`), which bounds these events too.
    pub(super) async fn report_refused(&self, kind: EventKind, id: &str, reason: &str, msg: &str) {
        let data = serde_json::json!({
            "sub": self.me.id, "role": self.me.role.as_str(),
            "id": id, "reason": reason, "message": msg,
        });
        self.node.emit(Event::new(kind, &self.room, data)).await;
    }

    /// Stages one upload slice; stitches, checks and publishes the event when it completes.
    pub(super) async fn on_chunk(&mut self, c: Chunk<'_>) -> Result<(), Exit> {
        let node = self.node.clone();
        let uploads = &node.metrics.uploads;
        if c.size > node.config.max_upload_bytes {
            uploads.with_label_values(&["too_large"]).inc();
            let msg = format!(
                "an upload may be at most {} bytes",
                node.config.max_upload_bytes
            );
            self.report_refused(EventKind::UploadRefused, &c.id, "too_large", &msg)
                .await;
            return self.send_error(ErrorCode::TooLarge, msg, Some(c.id));
        }
        node.metrics.upload_bytes.inc_by(c.data.len() as u64);
        let max_staged = node.config.log.max_staged_bytes;
        let limits = UploadLimits {
            max_uploads: node.config.max_uploads,
            ttl: node.config.upload_ttl,
            participant_share: crate::store::cap::participant_staging_share(
                max_staged,
                node.config.max_upload_bytes,
            ),
            room_share: crate::store::cap::room_staging_share(
                max_staged,
                node.config.max_upload_bytes,
            ),
        };
        let chunk = ChunkIn {
            sender: &self.me.id,
            upload: &c.id,
            index: c.index,
            count: c.count,
            size: c.size,
            digest: &c.digest,
            data: c.data.as_bytes(),
        };
        let room = self.room.clone();
        let staged = match node.log.stage_chunk(&room, chunk, limits).await {
            Ok(s) => s,
            Err(e) => return self.store_failed(e, Some(c.id)),
        };
        let whole = match staged {
            Staged::Partial { first: true } => {
                // A resend after a lost final `ack`: the event is stored already.
                if let Some(offset) = node.log.stored_offset(&room, &self.me.id, &c.id).await? {
                    node.log.drop_upload(&room, &self.me.id, &c.id).await?;
                    self.reply(&ServerFrame::Ack {
                        id: c.id,
                        offset,
                        duplicate: true,
                    });
                    return Ok(());
                }
                self.reply(&ServerFrame::ChunkAck {
                    id: c.id,
                    index: c.index,
                });
                return Ok(());
            }
            Staged::Partial { first: false } => {
                self.reply(&ServerFrame::ChunkAck {
                    id: c.id,
                    index: c.index,
                });
                return Ok(());
            }
            Staged::TooMany => {
                uploads.with_label_values(&["limit"]).inc();
                let msg = format!(
                    "too many uploads in progress (at most {} per participant), or the staging \
                     share of this participant, room or node is full; finish one, or resend this \
                     slice later",
                    node.config.max_uploads
                );
                self.report_refused(EventKind::UploadRefused, &c.id, "limit", &msg)
                    .await;
                return self.send_error(ErrorCode::UploadLimit, msg, Some(c.id));
            }
            Staged::Mismatch(why) => {
                uploads.with_label_values(&["invalid"]).inc();
                let msg = format!("upload discarded: {why}");
                self.report_refused(EventKind::UploadRefused, &c.id, "invalid", &msg)
                    .await;
                return self.send_error(ErrorCode::UploadInvalid, msg, Some(c.id));
            }
            Staged::Complete(whole) => whole,
        };
        self.reply(&ServerFrame::ChunkAck {
            id: c.id.clone(),
            index: c.index,
        });
        let checked = check_upload(whole, &c.digest);
        let event = match checked {
            Ok(e) => e,
            Err((code, why)) => {
                uploads.with_label_values(&["invalid"]).inc();
                node.log.drop_upload(&room, &self.me.id, &c.id).await?;
                let msg = format!("upload discarded: {why}");
                self.report_refused(EventKind::UploadRefused, &c.id, "invalid", &msg)
                    .await;
                return self.send_error(code, msg, Some(c.id));
            }
        };
        let head = match EventHead::scan(&event) {
            Ok(h) => h,
            Err(e) => {
                uploads.with_label_values(&["invalid"]).inc();
                node.log.drop_upload(&room, &self.me.id, &c.id).await?;
                let msg = e.to_string();
                self.report_refused(EventKind::UploadRefused, &c.id, "invalid", &msg)
                    .await;
                return self.send_error(ErrorCode::InvalidEvent, msg, Some(c.id));
            }
        };
        self.publish(Some(c.id.clone()), event, head).await?;
        uploads.with_label_values(&["stored"]).inc();
        node.log.drop_upload(&room, &self.me.id, &c.id).await?;
        Ok(())
    }
}

/// Checks a stitched upload against its digest and reads it as one JSON value.
fn check_upload(whole: Vec<u8>, digest: &str) -> Result<Box<RawValue>, (ErrorCode, String)> {
    use sha2::Digest;
    let actual = hex::encode(sha2::Sha256::digest(&whole));
    let expected = digest
        .strip_prefix(assist_relay_proto::chunk::DIGEST_PREFIX)
        .unwrap_or(digest);
    if actual != expected {
        return Err((
            ErrorCode::UploadInvalid,
            format!("digest mismatch: the stitched event hashes to sha256:{actual}"),
        ));
    }
    let text = String::from_utf8(whole)
        .map_err(|_| (ErrorCode::InvalidEvent, "the event is not UTF-8".to_owned()))?;
    RawValue::from_string(text).map_err(|e| {
        (
            ErrorCode::InvalidEvent,
            format!("the event is not JSON: {e}"),
        )
    })
}
