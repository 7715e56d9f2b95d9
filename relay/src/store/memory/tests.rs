//! Unit tests of the embedded store: the room message's size and the staging bounds.

use super::*;

fn chunk<'a>(upload: &'a str, index: u32, data: &'a [u8]) -> ChunkIn<'a> {
    ChunkIn {
        sender: "cust",
        upload,
        index,
        count: 2,
        size: 200,
        digest: "sha256:00",
        data,
    }
}

#[test]
fn a_room_message_is_a_tag_and_a_pointer() {
    // Every room allocates `--room-buffer` slots of it up front (docs/capacity.md).
    assert_eq!(std::mem::size_of::<RoomMsg>(), 16);
}

#[tokio::test]
async fn staging_is_bounded_per_node_and_freed_by_drop_and_expiry() {
    let store = MemoryStore::new(LogConfig {
        max_staged_bytes: 250,
        ..LogConfig::default()
    });
    let limits = UploadLimits {
        max_uploads: 10,
        ttl: Duration::from_millis(100),
        participant_share: u64::MAX,
        room_share: u64::MAX,
    };
    let data = [b'x'; 100];
    let stage = |up: &'static str, i: u32| {
        let store = store.clone();
        async move { store.stage_chunk("r", chunk(up, i, &data), limits).await }
    };
    assert_eq!(
        stage("a", 0).await.ok(),
        Some(Staged::Partial { first: true })
    );
    assert_eq!(
        stage("b", 0).await.ok(),
        Some(Staged::Partial { first: true })
    );
    // 300 bytes would be over the node's 250.
    assert_eq!(stage("c", 0).await.ok(), Some(Staged::TooMany));
    let whole = stage("a", 1).await.ok();
    assert!(matches!(whole, Some(Staged::TooMany)), "{whole:?}");
    store.drop_upload("r", "cust", "b").await.ok();
    assert!(matches!(stage("a", 1).await.ok(), Some(Staged::Complete(w)) if w.len() == 200));
    store.drop_upload("r", "cust", "a").await.ok();
    assert_eq!(
        stage("c", 0).await.ok(),
        Some(Staged::Partial { first: true })
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    // "c" expired: its bytes are free again.
    assert_eq!(
        stage("d", 0).await.ok(),
        Some(Staged::Partial { first: true })
    );
    assert_eq!(
        stage("e", 0).await.ok(),
        Some(Staged::Partial { first: true })
    );
}
