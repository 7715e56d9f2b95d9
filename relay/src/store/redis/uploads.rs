//! Staged uploads in Redis: one hash per upload, the sender's uploads in progress, and the
//! room's staging tally, kept by `scripts/stage.lua`, `drop.lua` and `release.lua` (after the
//! `staging.lua` prelude). It does not store the finished event (that is an `append`).

use std::time::Duration;

use async_trait::async_trait;

use super::commands::unavailable;
use super::keys::Keys;
use super::shared::RedisStore;
use crate::hub::now_us;
use crate::store::{ChunkIn, Staged, StoreError, UploadLimits, Uploads};

#[async_trait]
impl Uploads for RedisStore {
    async fn stage_chunk(
        &self,
        room: &str,
        c: ChunkIn<'_>,
        limits: UploadLimits,
    ) -> Result<Staged, StoreError> {
        let inner = &self.inner;
        let k = Keys::of(room);
        let key = k.upload(c.sender, c.upload);
        let mut conn = inner.conn.clone();
        let (stg, stx) = k.staging();
        // KEYS and ARGV in the order `scripts/stage.lua` names them.
        let reply: Vec<String> = inner
            .scripts
            .stage
            .key(&key)
            .key(k.uploads(c.sender))
            .key(&stg)
            .key(&stx)
            .arg(c.index)
            .arg(c.count)
            .arg(c.size)
            .arg(c.digest)
            .arg(c.data)
            .arg(limits.max_uploads)
            .arg(limits.ttl.as_millis().max(1) as u64)
            .arg(now_us() / 1000)
            .arg(c.upload)
            .arg(c.sender)
            .arg(limits.participant_share)
            .arg(limits.room_share)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        match reply.first().map(String::as_str) {
            Some("partial") => Ok(Staged::Partial {
                first: reply.get(1).map(String::as_str) == Some("1"),
            }),
            Some("too_many") => Ok(Staged::TooMany),
            Some("mismatch") => Ok(Staged::Mismatch(match reply.get(1).map(String::as_str) {
                Some("the slices add up to more than size") => {
                    "the slices add up to more than size"
                }
                Some("the slices do not add up to size") => "the slices do not add up to size",
                _ => "count, size or digest differs from the upload's first slice",
            })),
            Some("complete") => {
                // Read the slices back in batches (a 64 MiB upload is a few hundred slices).
                let mut whole = Vec::with_capacity(c.size as usize);
                let mut i = 0u32;
                while i < c.count {
                    let end = (i + 64).min(c.count);
                    let fields: Vec<String> = (i..end).map(|n| format!("c{n}")).collect();
                    let parts: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
                        .arg(&key)
                        .arg(&fields)
                        .query_async(&mut conn)
                        .await
                        .map_err(unavailable)?;
                    for part in parts {
                        match part {
                            Some(p) => whole.extend_from_slice(&p),
                            // Expired between the script and this read: start over.
                            None => return Ok(Staged::Mismatch("the upload expired")),
                        }
                    }
                    i = end;
                }
                Ok(Staged::Complete(whole))
            }
            other => Err(StoreError::Corrupt(format!("stage reply {other:?}"))),
        }
    }

    async fn drop_upload(&self, room: &str, sender: &str, upload: &str) -> Result<(), StoreError> {
        let k = Keys::of(room);
        let mut conn = self.inner.conn.clone();
        let (stg, stx) = k.staging();
        // KEYS and ARGV in the order `scripts/drop.lua` names them.
        let _: i64 = self
            .inner
            .scripts
            .drop_up
            .key(k.upload(sender, upload))
            .key(k.uploads(sender))
            .key(&stg)
            .key(&stx)
            .arg(upload)
            .arg(sender)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn release_uploads(
        &self,
        room: &str,
        sender: &str,
        grace: Duration,
    ) -> Result<(), StoreError> {
        let k = Keys::of(room);
        let mut conn = self.inner.conn.clone();
        let (stg, stx) = k.staging();
        // KEYS and ARGV in the order `scripts/release.lua` names them.
        let _: i64 = self
            .inner
            .scripts
            .release
            .key(&k.presence)
            .key(k.uploads(sender))
            .key(&stg)
            .key(&stx)
            .arg(sender)
            .arg(now_us() / 1000)
            .arg(grace.as_millis() as u64)
            .arg(k.upload(sender, ""))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
