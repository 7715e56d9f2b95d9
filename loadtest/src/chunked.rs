//! Large rrweb events on the client side: slicing one into `chunk` upload frames (with its
//! `sha256:` digest), reassembling the `chunk` frames a viewer receives, and the large
//! FullSnapshots the `snapshot` scenario sends (generated, or the largest one of a recording).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context};
use assist_relay_proto::chunk::{split_text, DIGEST_PREFIX, MAX_CHUNKS};
use assist_relay_proto::{ChunkData, ClientFrame, Codec, EventHead, EventKind};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// `sha256:<64 lowercase hex digits>` of `bytes`, as upload frames carry it.
pub fn digest(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(DIGEST_PREFIX.len() + 64);
    out.push_str(DIGEST_PREFIX);
    for b in Sha256::digest(bytes) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// One event cut into upload slices: byte ranges of the event's JSON text that end on UTF-8
/// character boundaries, each at most the slice size.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Upload id (also the stored event's id, answered with `ack`).
    pub id: String,
    /// Size of the whole event, bytes.
    pub size: u64,
    /// Digest of the whole event.
    pub digest: String,
    /// `(start, end)` byte ranges of the slices, in order.
    slices: Vec<(usize, usize)>,
}

impl Upload {
    /// Slices `event` into pieces of at most `slice_bytes` (at least 4) bytes.
    pub fn new(id: &str, event: &str, slice_bytes: usize) -> anyhow::Result<Upload> {
        if event.is_empty() {
            bail!("an upload needs a non-empty event");
        }
        let mut slices = Vec::new();
        let mut start = 0;
        for part in split_text(event, slice_bytes) {
            slices.push((start, start + part.len()));
            start += part.len();
        }
        if slices.len() > MAX_CHUNKS as usize {
            bail!(
                "{} bytes in slices of {slice_bytes} bytes would be {} chunks (at most {MAX_CHUNKS})",
                event.len(),
                slices.len()
            );
        }
        Ok(Upload {
            id: id.to_owned(),
            size: event.len() as u64,
            digest: digest(event.as_bytes()),
            slices,
        })
    }

    /// Number of slices.
    pub fn count(&self) -> u32 {
        self.slices.len() as u32
    }

    /// Largest slice, bytes.
    pub fn max_slice(&self) -> usize {
        self.slices.iter().map(|(s, e)| e - s).max().unwrap_or(0)
    }

    /// The `chunk` frame of slice `index` of `event` (the event this upload was made from): a
    /// string in JSON frames, `bin` in MessagePack frames.
    pub fn frame<'a>(&self, event: &'a str, index: u32, codec: Codec) -> ClientFrame<'a> {
        let (start, end) = self.slices[index as usize];
        let text = &event[start..end];
        ClientFrame::Chunk {
            id: self.id.clone(),
            index,
            count: self.count(),
            size: self.size,
            digest: self.digest.clone(),
            data: match codec {
                Codec::Json => ChunkData::Text(text.into()),
                Codec::MsgPack => ChunkData::Bytes(text.as_bytes().into()),
            },
        }
    }

    /// Every slice of `event` as an encoded frame, in order.
    pub fn encode_all(&self, event: &str, codec: Codec) -> anyhow::Result<Vec<Vec<u8>>> {
        if event.len() as u64 != self.size {
            bail!("not the event this upload was sliced from");
        }
        (0..self.count())
            .map(|i| Ok(self.frame(event, i, codec).encode(codec)?))
            .collect()
    }
}

/// What feeding one `chunk` frame to a [`Reassembler`] gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// More slices are due.
    Partial,
    /// The last slice arrived: the whole event at `offset`.
    Complete {
        /// Room offset of the event.
        offset: u64,
        /// Its JSON bytes.
        event: Vec<u8>,
    },
}

/// Rebuilds events that the relay delivers as `chunk` frames: slices `0..count` of one event, in
/// order, back to back, each repeating the event's offset, count and size.
#[derive(Debug, Default)]
pub struct Reassembler {
    partial: Option<Partial>,
}

#[derive(Debug)]
struct Partial {
    offset: u64,
    count: u32,
    size: u64,
    next: u32,
    bytes: Vec<u8>,
}

/// Largest buffer reserved up front for an event being reassembled (it grows past it if needed).
const MAX_RESERVE: u64 = 256 * 1024 * 1024;

impl Reassembler {
    /// A reassembler with nothing in progress.
    pub fn new() -> Reassembler {
        Reassembler::default()
    }

    /// Whether an event is partly received (any non-chunk frame now is a protocol violation).
    pub fn in_progress(&self) -> bool {
        self.partial.is_some()
    }

    /// Takes one `chunk` frame's fields.
    pub fn feed(
        &mut self,
        offset: u64,
        index: u32,
        count: u32,
        size: u64,
        data: &[u8],
    ) -> Result<Fed, String> {
        if count == 0 || index >= count {
            self.partial = None;
            return Err(format!("chunk {index} of {count}"));
        }
        if index == 0 {
            if let Some(p) = &self.partial {
                let at = p.offset;
                self.partial = None;
                return Err(format!(
                    "offset {offset} started inside the chunked event at offset {at}"
                ));
            }
            self.partial = Some(Partial {
                offset,
                count,
                size,
                next: 0,
                bytes: Vec::with_capacity(size.min(MAX_RESERVE) as usize),
            });
        }
        let Some(p) = self.partial.as_mut() else {
            return Err(format!("chunk {index} of offset {offset} without chunk 0"));
        };
        if (p.offset, p.count, p.size) != (offset, count, size) || p.next != index {
            let msg = format!(
                "chunk {index}/{count} of offset {offset} (size {size}) where chunk {}/{} of offset {} (size {}) was due",
                p.next, p.count, p.offset, p.size
            );
            self.partial = None;
            return Err(msg);
        }
        if p.bytes.len() as u64 + data.len() as u64 > p.size {
            let msg = format!("slices of offset {offset} exceed its size {size}");
            self.partial = None;
            return Err(msg);
        }
        p.bytes.extend_from_slice(data);
        p.next += 1;
        if p.next < p.count {
            return Ok(Fed::Partial);
        }
        let Some(p) = self.partial.take() else {
            return Err("lost the partial event".to_owned());
        };
        if p.bytes.len() as u64 != p.size {
            return Err(format!(
                "offset {offset}: {} bytes reassembled, size says {}",
                p.bytes.len(),
                p.size
            ));
        }
        Ok(Fed::Complete {
            offset: p.offset,
            event: p.bytes,
        })
    }
}

/// A Meta event, the first half of a keyframe.
pub fn meta_event(timestamp_ms: u64) -> String {
    format!(
        r#"{{"type":4,"data":{{"href":"https://loadtest.invalid/catalog","width":1280,"height":720}},"timestamp":{timestamp_ms}}}"#
    )
}

/// A FullSnapshot of at least `bytes` bytes (a little more, to close the document): a catalog of
/// list items whose text has quotes, escapes and non-ASCII characters (so JSON slices fall inside
/// multi-byte characters and escaped strings, and JSON frames escape), no inputs.
pub fn generated_snapshot(bytes: usize, timestamp_ms: u64) -> String {
    let mut nodes = String::with_capacity(bytes + 1024);
    let mut id = 10u64;
    while nodes.len() < bytes {
        let _ = write!(
            nodes,
            r#"{{"type":2,"tagName":"li","attributes":{{"class":"item \"card\" 商品","data-sku":"{id}"}},"childNodes":[{{"type":3,"textContent":"商品 {id} – ¥{id}.00 \n é 😀","id":{}}}],"id":{id}}},"#,
            id + 1
        );
        id += 2;
    }
    nodes.pop();
    format!(
        r#"{{"type":2,"data":{{"node":{{"type":0,"childNodes":[{{"type":2,"tagName":"html","attributes":{{}},"childNodes":[{{"type":2,"tagName":"ul","attributes":{{}},"childNodes":[{nodes}],"id":4}}],"id":3}}],"id":1}},"initialOffset":{{"left":0,"top":0}}}},"timestamp":{timestamp_ms}}}"#
    )
}

/// The largest FullSnapshot of a recording (a JSON array of rrweb events), as its JSON text.
pub fn largest_full_snapshot(text: &str) -> anyhow::Result<String> {
    let events: Vec<&RawValue> =
        serde_json::from_str(text).context("expected a JSON array of rrweb events")?;
    let mut best: Option<&RawValue> = None;
    for (i, e) in events.into_iter().enumerate() {
        let head = EventHead::scan(e).with_context(|| format!("event {i}"))?;
        if head.kind == EventKind::FullSnapshot
            && best.is_none_or(|b| e.get().len() > b.get().len())
        {
            best = Some(e);
        }
    }
    match best {
        Some(e) => Ok(e.get().to_owned()),
        None => bail!("the recording holds no FullSnapshot"),
    }
}

/// [`largest_full_snapshot`] of a file.
pub fn load_full_snapshot(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    largest_full_snapshot(&text).with_context(|| format!("in {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use assist_relay_proto::ServerFrame;

    /// Slices of an upload, decoded back the way the relay reads them.
    fn slices_on_the_wire(up: &Upload, event: &str, codec: Codec) -> Vec<Vec<u8>> {
        up.encode_all(event, codec)
            .expect("encode")
            .iter()
            .enumerate()
            .map(|(i, bytes)| match ClientFrame::decode(codec, bytes) {
                Ok(ClientFrame::Chunk {
                    id,
                    index,
                    count,
                    size,
                    digest,
                    data,
                }) => {
                    assert_eq!(id, up.id);
                    assert_eq!(index as usize, i);
                    assert_eq!(count, up.count());
                    assert_eq!(size, event.len() as u64);
                    assert_eq!(digest, up.digest);
                    data.as_bytes().to_vec()
                }
                other => panic!("{codec:?} slice {i}: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn digest_is_sha256_hex_the_relay_accepts() {
        // The SHA-256 test vector of "abc".
        assert_eq!(
            digest(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(assist_relay_proto::chunk::validate_digest(&digest(b"")).is_ok());
    }

    #[test]
    fn uploads_slice_on_character_boundaries_and_concatenate_back() {
        let event = generated_snapshot(20_000, 1);
        for codec in Codec::ALL {
            for slice in [4, 7, 1000, 4096, 19_999, 1 << 20] {
                let up = Upload::new("snap-1", &event, slice).expect("upload");
                assert!(up.max_slice() <= slice.max(4), "slice {slice}");
                assert!(up.count() as usize >= event.len().div_ceil(slice.max(4)));
                let parts = slices_on_the_wire(&up, &event, codec);
                assert!(parts.iter().all(|p| !p.is_empty()));
                assert_eq!(parts.concat(), event.as_bytes(), "{codec:?} slice {slice}");
            }
        }
    }

    #[test]
    fn upload_limits() {
        assert!(Upload::new("e", "", 16).is_err());
        // More than MAX_CHUNKS slices.
        let event = "x".repeat(MAX_CHUNKS as usize * 4 + 1);
        assert!(Upload::new("big", &event, 4).is_err());
        let up = Upload::new("ok", &event, 8).expect("fits");
        assert!(up.encode_all("other", Codec::Json).is_err());
    }

    #[test]
    fn reassembles_what_the_relay_would_send() {
        let event = generated_snapshot(50_000, 2);
        let up = Upload::new("x", &event, 3000).expect("upload");
        for codec in Codec::ALL {
            let mut r = Reassembler::new();
            let n = up.count();
            let mut got = None;
            for i in 0..n {
                // The relay's viewer frame for slice i.
                let (s, e) = up.slices[i as usize];
                let data = match codec {
                    Codec::Json => ChunkData::Text(event[s..e].into()),
                    Codec::MsgPack => ChunkData::Bytes(event.as_bytes()[s..e].into()),
                };
                let frame = ServerFrame::Chunk {
                    offset: 42,
                    index: i,
                    count: n,
                    size: up.size,
                    data,
                };
                let bytes = frame.encode(codec).expect("encode");
                let Ok(ServerFrame::Chunk {
                    offset,
                    index,
                    count,
                    size,
                    data,
                }) = ServerFrame::decode(codec, &bytes)
                else {
                    panic!("decode");
                };
                match r.feed(offset, index, count, size, data.as_bytes()) {
                    Ok(Fed::Partial) => assert!(i + 1 < n && r.in_progress()),
                    Ok(Fed::Complete { offset, event }) => {
                        assert_eq!(i + 1, n);
                        got = Some((offset, event));
                    }
                    Err(e) => panic!("{codec:?} slice {i}: {e}"),
                }
            }
            assert!(!r.in_progress());
            assert_eq!(got, Some((42, event.clone().into_bytes())));
        }
    }

    #[test]
    fn reassembly_refuses_what_the_protocol_forbids() {
        let mut r = Reassembler::new();
        // A single-slice event.
        assert_eq!(
            r.feed(1, 0, 1, 2, b"{}"),
            Ok(Fed::Complete {
                offset: 1,
                event: b"{}".to_vec()
            })
        );
        // Not starting at 0.
        assert!(r.feed(2, 1, 3, 6, b"ab").is_err());
        // Out of order.
        assert_eq!(r.feed(3, 0, 3, 6, b"ab"), Ok(Fed::Partial));
        assert!(r.feed(3, 2, 3, 6, b"ef").is_err());
        assert!(!r.in_progress(), "an error drops the partial event");
        // Header changes mid-event.
        assert_eq!(r.feed(4, 0, 2, 4, b"ab"), Ok(Fed::Partial));
        assert!(r.feed(4, 1, 2, 5, b"cd").is_err());
        // Another event starting inside one.
        assert_eq!(r.feed(5, 0, 2, 4, b"ab"), Ok(Fed::Partial));
        assert!(r.feed(6, 0, 2, 4, b"ab").is_err());
        // More bytes than the size, and fewer.
        assert_eq!(r.feed(7, 0, 2, 3, b"ab"), Ok(Fed::Partial));
        assert!(r.feed(7, 1, 2, 3, b"cd").is_err());
        assert_eq!(r.feed(8, 0, 2, 5, b"ab"), Ok(Fed::Partial));
        assert!(r.feed(8, 1, 2, 5, b"c").is_err());
        // Impossible numbering.
        assert!(r.feed(9, 0, 0, 1, b"a").is_err());
        assert!(r.feed(9, 3, 2, 1, b"a").is_err());
        // And it recovers.
        assert_eq!(r.feed(10, 0, 2, 4, b"ab"), Ok(Fed::Partial));
        assert_eq!(
            r.feed(10, 1, 2, 4, b"cd"),
            Ok(Fed::Complete {
                offset: 10,
                event: b"abcd".to_vec()
            })
        );
    }

    #[test]
    fn generated_snapshots_are_full_snapshots_of_the_size_asked() {
        for bytes in [0, 100, 100_000] {
            let s = generated_snapshot(bytes, 7);
            assert!(
                s.len() >= bytes && s.len() < bytes + 1024,
                "{bytes}: {}",
                s.len()
            );
            let raw = RawValue::from_string(s.clone()).expect("valid JSON");
            assert_eq!(
                EventHead::scan(&raw).expect("head").kind,
                EventKind::FullSnapshot
            );
            let v: serde_json::Value = serde_json::from_str(&s).expect("json");
            assert_eq!(v["timestamp"], 7);
        }
        let meta = RawValue::from_string(meta_event(3)).expect("json");
        assert_eq!(EventHead::scan(&meta).expect("head").kind, EventKind::Meta);
    }

    #[test]
    fn picks_the_largest_full_snapshot_of_a_recording() {
        let small = generated_snapshot(100, 1);
        let large = generated_snapshot(5000, 2);
        let rec = format!(
            r#"[{},{small},{{"type":3,"data":{{"source":0,"pad":"{}"}}}},{large},{small}]"#,
            meta_event(0),
            "x".repeat(9000)
        );
        assert_eq!(largest_full_snapshot(&rec).expect("found"), large);
        assert!(largest_full_snapshot(&format!("[{}]", meta_event(0))).is_err());
        assert!(largest_full_snapshot("{}").is_err());
    }
}
