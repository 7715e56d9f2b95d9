//! Compaction throughput and archive size on the real recordings.
//!
//! `cargo run --release -p assist-relay --example compaction_bench -- [ROUNDS]`
//!
//! For each fixture in `../shared/fixtures/rrweb/`: appends the recording (and a chat message
//! every 50 events) to an embedded room log, ROUNDS times over (default 5, each round a new
//! session), and runs the final compaction of each session on one task. Prints MB/s of log
//! payload compacted (one core: the job runs on one task, zstd on the blocking pool in turn) and
//! the archive size relative to the raw JSON.

use std::sync::Arc;
use std::time::Instant;

use assist_relay::compactor::{run_job, Archive, FsArchive, Job, JobKind};
use assist_relay::store::memory::MemoryStore;
use assist_relay::store::{EntryBody, LogConfig, NewEntry, RoomLog};
use assist_relay_proto::{EventHead, Member, Role};
use serde_json::value::RawValue;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/rrweb");
    let dir = std::env::temp_dir().join(format!("compaction-bench-{}", std::process::id()));
    println!(
        "{:<18} {:>8} {:>12} {:>12} {:>10} {:>8}",
        "fixture", "events", "log bytes", "archive", "ratio", "MB/s"
    );
    for name in ["demoit", "loan-apply", "chat-widget", "big-catalog"] {
        let text = std::fs::read_to_string(format!("{fixtures}/{name}.json")).expect("fixture");
        let events: Vec<Box<RawValue>> = serde_json::from_str(&text).expect("array");
        let store = MemoryStore::new(LogConfig {
            keep_until_archived: true,
            max_log_bytes: usize::MAX,
            ..LogConfig::default()
        });
        let archive: Arc<dyn Archive> = Arc::new(FsArchive::new(&dir));
        let (mut bytes_in, mut bytes_out, mut secs) = (0u64, 0u64, 0f64);
        for r in 0..rounds {
            let room = format!("{name}-{r}");
            for (i, e) in events.iter().enumerate() {
                let head = EventHead::scan(e).expect("event");
                let body = EntryBody::Event {
                    event: e.clone().into(),
                    kind: head.kind,
                    source: head.source,
                };
                store
                    .append(&room, NewEntry::new(body))
                    .await
                    .expect("append");
                if i % 50 == 0 {
                    let chat = EntryBody::Chat {
                        id: format!("m{i}"),
                        from: Member {
                            id: "agent".into(),
                            role: Role::Agent,
                        },
                        text: format!("message {i}"),
                        ts: 0,
                    };
                    store
                        .append(&room, NewEntry::new(chat))
                        .await
                        .expect("chat");
                }
            }
            let job = Job {
                room: room.clone(),
                kind: JobKind::Final,
            };
            let started = Instant::now();
            let out = run_job(store.as_ref(), &archive, &job).await.expect("job");
            secs += started.elapsed().as_secs_f64();
            bytes_in += out.bytes_in;
            // The final files (events + chat), not counting the parts written on the way.
            let manifest = assist_relay::compactor::read_recording(archive.as_ref(), &room, None)
                .expect("recording")
                .0;
            bytes_out += manifest
                .files
                .iter()
                .map(|f| f.compressed_bytes)
                .sum::<u64>();
        }
        println!(
            "{:<18} {:>8} {:>12} {:>12} {:>9.3}x {:>8.1}",
            name,
            events.len() * rounds,
            bytes_in,
            bytes_out,
            bytes_out as f64 / bytes_in as f64,
            bytes_in as f64 / 1e6 / secs
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
