//! `relay compactor` as real processes over a private redis-server: a worker killed with
//! SIGKILL in the middle of a job is replaced by another that finishes it (exactly one
//! recording), and a room with a corrupt log entry is dead-lettered with its reason while the
//! next job succeeds.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use assist_relay::compactor::worker::{RedisJobQueue, DEAD, GROUP, JOBS};
use assist_relay::compactor::{read_recording, FsArchive, Job, JobKind, JobQueue};
use assist_relay::store::redis::{RedisConfig, RedisStore};
use assist_relay::store::{Archival, EntryBody, LogConfig, NewEntry, RoomLog};
use assist_relay::telemetry::Metrics;
use assist_relay_proto::EventKind;
use common::*;
use serde_json::value::RawValue;

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn worker(redis: &RedisServer, archive: &Path, consumer: &str, extra: &[&str]) -> Worker {
    worker_on(redis, archive, consumer, extra, free_port())
}

fn worker_on(
    redis: &RedisServer,
    archive: &Path,
    consumer: &str,
    extra: &[&str],
    admin_port: u16,
) -> Worker {
    let child = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args([
            "compactor",
            "--redis-url",
            &redis.url(),
            "--archive-dir",
            archive.to_str().expect("path"),
            "--admin-listen",
            &format!("127.0.0.1:{admin_port}"),
            "--consumer",
            consumer,
            "--claim-after",
            "1s",
        ])
        .args(extra)
        .env("RELAY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("relay compactor starts");
    Worker(child)
}

async fn store(redis: &RedisServer) -> RedisStore {
    RedisStore::connect(
        RedisConfig {
            url: redis.url(),
            tls: None,
            inline_max: 64 * 1024,
            presence_ttl: Duration::from_secs(5),
            dedup_ttl: Duration::from_secs(3600),
            room_ttl: Duration::from_secs(3600),
            cluster: false,
        },
        LogConfig {
            keep_until_archived: true,
            ..LogConfig::default()
        },
        Metrics::new().redis.clone(),
        Duration::from_secs(10),
    )
    .await
    .expect("connect")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("assist-relay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn seed(store: &RedisStore, room: &str, n: u64) {
    for i in 0..n {
        let kind = match i {
            0 => 4,
            1 => 2,
            _ => 3,
        };
        let raw: Box<RawValue> = serde_json::from_str(&synthetic(kind, i)).expect("json");
        store
            .append(
                room,
                NewEntry::new(EntryBody::Event {
                    event: raw.into(),
                    kind: EventKind::from_u8(kind),
                    source: (kind == 3).then_some(0),
                }),
            )
            .await
            .expect("append");
    }
}

async fn await_recording(dir: &Path, room: &str) -> (u64, usize) {
    let archive = FsArchive::new(dir);
    for _ in 0..300 {
        if let Ok((m, events, _)) = read_recording(&archive, room, None) {
            let events: Vec<&RawValue> = serde_json::from_slice(&events).expect("events");
            return (m.event_count, events.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no recording of {room}");
}

async fn pending(store: &RedisStore) -> (i64, Option<String>) {
    let mut cmd = redis::cmd("XPENDING");
    cmd.arg(JOBS).arg(GROUP).arg("-").arg("+").arg(10);
    let v: redis::Value = store.command(&cmd).await.unwrap_or(redis::Value::Nil);
    match v {
        redis::Value::Array(items) => {
            let consumer = items.first().and_then(|e| match e {
                redis::Value::Array(f) => f
                    .get(1)
                    .and_then(|c| redis::from_redis_value::<String>(c.clone()).ok()),
                _ => None,
            });
            (items.len() as i64, consumer)
        }
        _ => (0, None),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_is_replaced_and_exactly_one_recording_is_written() {
    let redis = RedisServer::start().await;
    let dir = temp_dir("killed-worker");
    let store = store(&redis).await;
    seed(&store, "killed", 300).await;
    let queue = RedisJobQueue::new(store.clone());
    // Worker A takes the job and holds it; it dies before finishing.
    let mut a = worker(&redis, &dir, "worker-a", &["--hold", "30s"]);
    queue
        .enqueue(Job {
            room: "killed".into(),
            kind: JobKind::Final,
        })
        .await
        .expect("enqueue");
    let mut taken = false;
    for _ in 0..200 {
        if pending(&store).await == (1, Some("worker-a".into())) {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(taken, "worker A never took the job");
    let _ = a.0.kill(); // SIGKILL
    let _ = a.0.wait();
    // Worker B reclaims it after --claim-after and finishes it.
    let _b = worker(&redis, &dir, "worker-b", &[]);
    let (count, events) = await_recording(&dir, "killed").await;
    assert_eq!((count, events), (300, 300));
    for _ in 0..100 {
        if pending(&store).await.0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pending(&store).await.0, 0, "the job is acknowledged");
    let recordings = std::fs::read_dir(dir.join("killed"))
        .expect("room dir")
        .count();
    assert_eq!(recordings, 1, "exactly one recording");
    assert!(
        !store.log_state("killed").await.expect("state").exists,
        "room keys removed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_room_log_is_dead_lettered_and_the_next_job_succeeds() {
    let redis = RedisServer::start().await;
    let dir = temp_dir("corrupt");
    let store = store(&redis).await;
    seed(&store, "bad", 10).await;
    // An entry no node can read.
    let mut xadd = redis::cmd("XADD");
    xadd.arg("ar:{bad}:log")
        .arg("11-0")
        .arg("b")
        .arg("garbage")
        .arg("a")
        .arg(0);
    let _: String = store.command(&xadd).await.expect("xadd");
    let mut head = redis::cmd("HSET");
    head.arg("ar:{bad}:meta").arg("head").arg(11);
    let _: i64 = store.command(&head).await.expect("hset");
    seed(&store, "good", 20).await;
    let queue: Arc<dyn JobQueue> = Arc::new(RedisJobQueue::new(store.clone()));
    for room in ["bad", "good"] {
        queue
            .enqueue(Job {
                room: room.into(),
                kind: JobKind::Final,
            })
            .await
            .expect("enqueue");
    }
    let admin_port = free_port();
    let audit_dir = temp_dir("corrupt-audit");
    std::fs::create_dir_all(&audit_dir).expect("audit dir");
    let audit = audit_dir.join("audit.jsonl");
    let audit_arg = ["--audit-log", audit.to_str().expect("path")];
    let _w = worker_on(&redis, &dir, "worker-c", &audit_arg, admin_port);
    assert_eq!(await_recording(&dir, "good").await, (20, 20));
    // The audit log (--audit-log) names the recording written, and only that one.
    let mut written = Vec::new();
    for _ in 0..100 {
        written = std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["event"] == "recording_written")
            .collect();
        if !written.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(
        (&written[0]["room"], &written[0]["target"]),
        (&"good".into(), &"audit".into())
    );
    let mut dead: Vec<(String, String)> = Vec::new();
    for _ in 0..100 {
        let mut range = redis::cmd("XRANGE");
        range.arg(DEAD).arg("-").arg("+");
        let v: Vec<(String, Vec<(String, String)>)> =
            store.command(&range).await.unwrap_or_default();
        dead = v.into_iter().flat_map(|(_, f)| f).collect();
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let field = |k: &str| {
        dead.iter()
            .find(|(f, _)| f == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(field("room"), "bad");
    assert!(field("reason").contains("corrupt"), "{dead:?}");
    assert!(
        read_recording(&FsArchive::new(&dir), "bad", None).is_err(),
        "no recording of the corrupt room"
    );
    // The worker's own admin port reports both outcomes.
    let admin: std::net::SocketAddr = format!("127.0.0.1:{admin_port}").parse().expect("addr");
    let (status, body) = http_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    for series in [
        "relay_compactor_jobs_total{outcome=\"done\"} 1",
        "relay_compactor_jobs_total{outcome=\"dead\"} 1",
        "relay_compactor_jobs_pending 0",
    ] {
        assert!(body.contains(series), "{series} not in:\n{body}");
    }
    assert!(body.contains("relay_compactor_job_duration_seconds_count 1"));
    assert_eq!(http_get(admin, "/livez").await.0, 200);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&audit_dir);
}
