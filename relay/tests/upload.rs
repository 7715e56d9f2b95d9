//! Chunked upload and stitching of large events, chunked delivery to viewers, the limits and
//! hostile cases, and `snapshot_request` when the tail grows.

mod common;

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::Duration;

use assist_relay_proto::chunk::split_text;
use assist_relay_proto::{
    ChunkData, ClientFrame, Codec, ErrorCode, Role, ServerFrame, SnapshotReason,
};
use common::*;

const META: &str = r#"{"type":4,"data":{"href":"https://shop.example/catalog","width":390,"height":844},"timestamp":1700000000000}"#;

/// A FullSnapshot of about `bytes` bytes: many elements with quotes, escapes and non-ASCII text,
/// so that slices fall inside multi-byte characters and escaped strings.
fn big_snapshot(bytes: usize) -> String {
    let mut nodes = String::with_capacity(bytes + 1024);
    let mut id = 10u64;
    while nodes.len() < bytes {
        let _ = write!(
            nodes,
            r#"{{"type":2,"tagName":"div","attributes":{{"class":"item \"q\" 商品","data-i":"{id}"}},"childNodes":[{{"type":3,"textContent":"商品 {id} – 价格 ¥{id}.00 \\n é 😀","id":{}}}],"id":{id}}},"#,
            id + 1
        );
        id += 2;
    }
    nodes.pop();
    format!(
        r#"{{"type":2,"data":{{"node":{{"type":0,"childNodes":[{{"type":2,"tagName":"html","attributes":{{}},"childNodes":[{nodes}],"id":3}}],"id":1}},"initialOffset":{{"left":0,"top":0}}}},"timestamp":1700000000001}}"#
    )
}

fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// An upload: the event's slices and what every chunk frame repeats.
struct Upload {
    id: String,
    parts: Vec<String>,
    size: u64,
    digest: String,
}

impl Upload {
    fn new(id: &str, event: &str, slice: usize) -> Upload {
        Upload {
            id: id.into(),
            parts: split_text(event, slice)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            size: event.len() as u64,
            digest: digest(event.as_bytes()),
        }
    }

    fn count(&self) -> u32 {
        self.parts.len() as u32
    }

    fn frame(&self, index: u32) -> ClientFrame<'_> {
        ClientFrame::Chunk {
            id: self.id.clone(),
            index,
            count: self.count(),
            size: self.size,
            digest: self.digest.clone(),
            data: ChunkData::Text(Cow::Borrowed(&self.parts[index as usize])),
        }
    }
}

/// Reads until `chunk_ack`s for every index in `want` arrived (other frames are skipped).
async fn await_chunk_acks(c: &mut Client, id: &str, want: &HashSet<u32>) {
    let mut got = HashSet::new();
    while !want.is_subset(&got) {
        match c.recv().await {
            ServerFrame::ChunkAck { id: i, index } if i == id => {
                got.insert(index);
            }
            ServerFrame::Error { code, message, .. } => panic!("{code}: {message}"),
            _ => {}
        }
    }
}

/// Reads until the `ack` of `id`; returns its offset.
async fn await_ack(c: &mut Client, id: &str) -> u64 {
    loop {
        match c.recv().await {
            ServerFrame::Ack { id: i, offset, .. } if i == id => return offset,
            ServerFrame::Error { code, message, .. } => panic!("{code}: {message}"),
            _ => {}
        }
    }
}

/// Reads until an `error` frame; returns its code and id.
async fn await_error(c: &mut Client) -> (ErrorCode, Option<String>, String) {
    loop {
        if let ServerFrame::Error { code, id, message } = c.recv().await {
            return (code, id, message);
        }
    }
}

async fn await_event(c: &mut Client, offset: u64) -> String {
    loop {
        if let Some((o, json)) = event_json(&c.recv().await) {
            if o == offset {
                return json;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mb_snapshot_uploaded_through_two_nodes_reaches_a_third_byte_identical() {
    let relay = Relay::start_nodes(3, |c| {
        c.max_bytes_per_sec = 256 * 1024 * 1024;
    })
    .await;
    let room = "big-upload";
    // The agents sit on node C (the third node in cluster mode).
    let mut agent = relay
        .connect_on(2, room, Role::Agent, "agent-json", Codec::Json)
        .await;
    agent.join(None).await;
    let mut agent_mp = relay
        .connect_on(2, room, Role::Agent, "agent-mp", Codec::MsgPack)
        .await;
    agent_mp.join(None).await;

    // The customer starts on node A.
    let mut cust = relay
        .connect_on(0, room, Role::Customer, "cust", Codec::Json)
        .await;
    cust.join(None).await;
    cust.publish(META, Some("meta-1")).await;
    let meta_offset = await_ack(&mut cust, "meta-1").await;

    let snapshot = big_snapshot(20 * 1024 * 1024);
    let up = Upload::new("snap-1", &snapshot, 256 * 1024);
    let count = up.count();
    let half = count / 2;
    assert!(count >= 60, "{count} slices");

    // First half to node A, out of order and with a duplicate.
    let mut first: Vec<u32> = (0..half).collect();
    first.chunks_mut(2).for_each(|p| p.reverse());
    for &i in &first {
        cust.send(&up.frame(i)).await;
    }
    cust.send(&up.frame(0)).await;
    await_chunk_acks(&mut cust, "snap-1", &first.iter().copied().collect()).await;

    // Forced reconnect: the connection dies; the customer comes back on node B.
    cust.drop_abruptly();
    let mut cust = relay
        .connect_on(1, room, Role::Customer, "cust", Codec::Json)
        .await;
    cust.join(None).await;
    // The rest, in reverse order, with an already staged slice again; the first missing slice
    // of the second half goes last.
    let mut rest: Vec<u32> = (half + 1..count).rev().collect();
    rest.push(2);
    for &i in &rest {
        cust.send(&up.frame(i)).await;
    }
    await_chunk_acks(&mut cust, "snap-1", &rest.iter().copied().collect()).await;
    cust.send(&up.frame(half)).await;
    let offset = await_ack(&mut cust, "snap-1").await;
    assert_eq!(offset, meta_offset + 1, "the stitched event is one entry");

    // Both agents receive the event byte-identical, in frames within the limit.
    let max_frame = relay.node.config.max_frame_bytes;
    for a in [&mut agent, &mut agent_mp] {
        assert_eq!(await_event(a, meta_offset).await, META);
        let got = await_event(a, offset).await;
        assert!(got == snapshot, "{}: the stitched event differs", a.me.id);
        assert!(
            a.chunk_frames >= 20,
            "{}: {} chunk frames",
            a.me.id,
            a.chunk_frames
        );
        assert!(
            a.max_message_len <= max_frame,
            "{}: a {}-byte frame",
            a.me.id,
            a.max_message_len
        );
    }

    // A late agent on node A gets it as the keyframe, chunked too.
    let mut late = relay
        .connect_on(0, room, Role::Agent, "late", Codec::MsgPack)
        .await;
    let joined = late.join(None).await;
    let events: Vec<(u64, String)> = joined.catch_up.iter().filter_map(event_json).collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0], (meta_offset, META.to_owned()));
    assert!(events[1].0 == offset && events[1].1 == snapshot);
    assert!(late.max_message_len <= max_frame);

    // The relay still relays small events normally afterwards.
    cust.publish(&synthetic(3, 1), Some("after")).await;
    let after = await_ack(&mut cust, "after").await;
    assert_eq!(await_event(&mut agent, after).await, synthetic(3, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_limits_and_hostile_uploads_get_clear_errors() {
    let relay = Relay::start_with(|c| {
        c.max_upload_bytes = 1024 * 1024;
        c.max_uploads = 2;
        c.upload_ttl = Duration::from_millis(600);
    })
    .await;
    let room = "hostile";
    let (mut agent, _) = relay.join(room, Role::Agent, "agent", Codec::Json).await;
    let mut cust = relay
        .connect_on(0, room, Role::Customer, "cust", Codec::Json)
        .await;
    cust.join(None).await;

    // Larger than --max-upload-bytes: refused before anything is staged.
    let event = synthetic(3, 7);
    let mut huge = Upload::new("huge", &event, 16);
    huge.size = 2 * 1024 * 1024;
    cust.send(&huge.frame(0)).await;
    assert_eq!(
        await_error(&mut cust).await,
        (
            ErrorCode::TooLarge,
            Some("huge".into()),
            "an upload may be at most 1048576 bytes".into()
        )
    );

    // Wrong digest: found when the last slice arrives; the upload is dropped.
    let mut bad = Upload::new("digest", &event, 16);
    bad.digest = digest(b"something else");
    for i in 0..bad.count() {
        cust.send(&bad.frame(i)).await;
    }
    let (code, id, msg) = await_error(&mut cust).await;
    assert_eq!(
        (code, id.as_deref()),
        (ErrorCode::UploadInvalid, Some("digest"))
    );
    assert!(msg.contains("digest mismatch"), "{msg}");
    // The same id with the right digest then works from scratch.
    let good = Upload::new("digest", &event, 16);
    for i in 0..good.count() {
        cust.send(&good.frame(i)).await;
    }
    let offset = await_ack(&mut cust, "digest").await;
    assert_eq!(await_event(&mut agent, offset).await, event);
    // Its final `ack` lost, the client resends a slice: told it is stored, nothing is staged.
    cust.send(&good.frame(0)).await;
    let again = cust
        .recv_until(|f| matches!(f, ServerFrame::Ack { .. } | ServerFrame::ChunkAck { .. }))
        .await;
    assert_eq!(
        again,
        ServerFrame::Ack {
            id: "digest".into(),
            offset,
            duplicate: true
        }
    );

    // Slices that disagree on count.
    let up = Upload::new("count", &event, 16);
    cust.send(&up.frame(0)).await;
    let mut other = match up.frame(1) {
        ClientFrame::Chunk {
            id,
            index,
            size,
            digest,
            data,
            ..
        } => ClientFrame::Chunk {
            id,
            index,
            count: up.count() + 1,
            size,
            digest,
            data,
        },
        _ => unreachable!(),
    };
    cust.send(&other).await;
    let (code, id, _) = await_error(&mut cust).await;
    assert_eq!(
        (code, id.as_deref()),
        (ErrorCode::UploadInvalid, Some("count"))
    );

    // Slices that add up to more than the declared size.
    other = ClientFrame::Chunk {
        id: "overflow".into(),
        index: 0,
        count: 2,
        size: 10,
        digest: digest(b"0123456789"),
        data: ChunkData::Text("01234567".into()),
    };
    cust.send(&other).await;
    other = ClientFrame::Chunk {
        id: "overflow".into(),
        index: 1,
        count: 2,
        size: 10,
        digest: digest(b"0123456789"),
        data: ChunkData::Text("89abcdef".into()),
    };
    cust.send(&other).await;
    let (code, id, msg) = await_error(&mut cust).await;
    assert_eq!(
        (code, id.as_deref()),
        (ErrorCode::UploadInvalid, Some("overflow"))
    );
    assert!(msg.contains("more than size"), "{msg}");

    // A stitched upload that is not JSON.
    let junk = Upload::new("junk", "not json at all", 4);
    for i in 0..junk.count() {
        cust.send(&junk.frame(i)).await;
    }
    let (code, id, _) = await_error(&mut cust).await;
    assert_eq!(
        (code, id.as_deref()),
        (ErrorCode::InvalidEvent, Some("junk"))
    );

    // Frames that cannot be an upload slice at all.
    for (count, index, digest) in [
        (0u32, 0u32, digest(b"x")),
        (2, 2, digest(b"x")),
        (2, 0, "md5:abc".to_owned()),
        (100_000, 0, digest(b"x")),
    ] {
        cust.send(&ClientFrame::Chunk {
            id: "bad-frame".into(),
            index,
            count,
            size: 200_000,
            digest,
            data: ChunkData::Text("x".into()),
        })
        .await;
        let (code, _, _) = await_error(&mut cust).await;
        assert_eq!(code, ErrorCode::InvalidFrame);
    }

    // At most --max-uploads in progress; an abandoned one expires and frees its slot.
    let a = Upload::new("a", &event, 16);
    let b = Upload::new("b", &event, 16);
    let c = Upload::new("c", &event, 16);
    cust.send(&a.frame(0)).await;
    cust.send(&b.frame(0)).await;
    await_chunk_acks(&mut cust, "b", &HashSet::from([0])).await;
    cust.send(&c.frame(0)).await;
    let (code, id, _) = await_error(&mut cust).await;
    assert_eq!((code, id.as_deref()), (ErrorCode::UploadLimit, Some("c")));
    tokio::time::sleep(Duration::from_millis(900)).await;
    cust.send(&c.frame(0)).await;
    await_chunk_acks(&mut cust, "c", &HashSet::from([0])).await;
    // "a" expired: its remaining slices start a new upload that lacks slice 0.
    for i in 1..a.count() {
        cust.send(&a.frame(i)).await;
    }
    await_chunk_acks(&mut cust, "a", &(1..a.count()).collect()).await;

    // Agents may not upload.
    agent.send(&good.frame(0)).await;
    let (code, id, _) = await_error(&mut agent).await;
    assert_eq!(
        (code, id.as_deref()),
        (ErrorCode::Forbidden, Some("digest"))
    );

    // The room and the node carry on.
    cust.publish(&synthetic(3, 99), Some("ok")).await;
    let ok = await_ack(&mut cust, "ok").await;
    assert_eq!(await_event(&mut agent, ok).await, synthetic(3, 99));
    assert!(
        relay
            .metric("relay_uploads_total{outcome=\"invalid\"}")
            .await
            >= Some(4.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_growing_tail_asks_the_customer_for_a_fresh_snapshot() {
    let relay = Relay::start_with(|c| c.snapshot_after_bytes = 4000).await;
    let room = "tail";
    let mut cust = relay
        .connect_on(0, room, Role::Customer, "cust", Codec::Json)
        .await;
    cust.join(None).await;
    cust.publish(META, None).await;
    cust.publish(&synthetic(2, 1), None).await;
    for n in 0..60 {
        cust.publish(&synthetic(3, n), None).await;
    }
    let f = cust
        .recv_until(|f| matches!(f, ServerFrame::SnapshotRequest { .. }))
        .await;
    assert_eq!(
        f,
        ServerFrame::SnapshotRequest {
            reason: SnapshotReason::TailTooLarge
        }
    );
    // A fresh keyframe resets the tail: a joining agent gets a small catch-up.
    cust.publish(META, None).await;
    cust.publish(&synthetic(2, 2), Some("kf")).await;
    await_ack(&mut cust, "kf").await;
    let (_, joined) = relay.join(room, Role::Agent, "agent", Codec::Json).await;
    assert_eq!(joined.catch_up.len(), 2);
    assert_eq!(
        relay
            .metric("relay_snapshot_requests_total{reason=\"tail_too_large\"}")
            .await,
        Some(1.0)
    );
}
