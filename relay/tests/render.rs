//! `relay render` and the compactor's render stage, with the real components: Node with
//! playwright-core and rrweb (relay/render, `npm ci` there), Debian's Chromium and ffmpeg.
//!
//! loan-apply.json (../shared/fixtures/rrweb, or $RRWEB_FIXTURES) is masked as a room under
//! policy `inputs` masks it and written as a recording directory with a chat line;
//! it is rendered once for the suite (idle stretches over 3 s cut) and the video is checked with
//! ffprobe, and against screenshots of rrweb's Replayer seeked to the same times.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use assist_relay::compactor::{ChatLine, FsArchive, Manifest, FORMAT_VERSION};
use assist_relay::mask::{MaskPolicy, RoomMask};
use assist_relay_proto::{Member, Role};
use serde_json::value::RawValue;
use serde_json::Value;

/// loan-apply.json as a JSON array (see `common::fixture_events` for where it is read from).
fn fixture() -> String {
    format!("[{}]", common::fixture_events("loan-apply.json").join(","))
}
/// What the customer typed into loan-apply's form, and the password.
const TYPED: [&str; 7] = [
    "张三丰",
    "13800138000",
    "110101199003077777",
    "6222020200112233445",
    "246810",
    "S3cret-pass!",
    "S3cret",
];
const FPS: u64 = 10;

fn render_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("render")
}

/// `npm ci` in relay/render when its node_modules is missing (scripts/test does it too).
fn ensure_renderer() {
    let dir = render_dir();
    if dir.join("node_modules/rrweb").is_dir() && dir.join("node_modules/playwright-core").is_dir()
    {
        return;
    }
    let ok = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .expect("npm runs (scripts/test installs it)")
        .success();
    assert!(ok, "npm ci in relay/render failed");
}

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("assist-relay-render-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// loan-apply's events as a room masking `inputs` stores them.
fn masked_events(limit: usize) -> Vec<Box<RawValue>> {
    let events: Vec<Box<RawValue>> = serde_json::from_str(&fixture()).expect("fixture");
    let mut mask = RoomMask::new(MaskPolicy::Inputs, [7; 32]);
    events
        .into_iter()
        .take(limit)
        .map(|e| mask.mask(&e).expect("maskable").unwrap_or(e))
        .collect()
}

fn timestamps(events: &[Box<RawValue>]) -> Vec<u64> {
    events
        .iter()
        .map(|e| {
            let v: Value = serde_json::from_str(e.get()).expect("event");
            v["timestamp"].as_u64().expect("timestamp")
        })
        .collect()
}

/// Writes `<root>/<room>/e1` as the compactor would (events, chat, manifest last).
fn write_recording(
    root: &Path,
    room: &str,
    events: &[Box<RawValue>],
    chat: Vec<ChatLine>,
) -> PathBuf {
    use assist_relay::compactor::Archive;
    let archive = FsArchive::new(root);
    let text = format!(
        "[{}]",
        events.iter().map(|e| e.get()).collect::<Vec<_>>().join(",")
    );
    let ts = timestamps(events);
    let (first, last) = (ts[0], *ts.last().expect("events"));
    let put = |name: &str, bytes: &[u8]| {
        let packed = zstd::bulk::compress(bytes, 3).expect("zstd");
        archive
            .put(&format!("{room}/e1/{name}"), &packed)
            .expect("put");
    };
    put("events.json.zst", text.as_bytes());
    put("chat.json.zst", &serde_json::to_vec(&chat).expect("chat"));
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        room: room.into(),
        epoch: "e1".into(),
        first_offset: 1,
        last_offset: events.len() as u64,
        started_ms: first,
        ended_ms: last,
        duration_ms: last - first,
        event_count: events.len() as u64,
        events_by_type: Default::default(),
        chat_count: chat.len() as u64,
        participants: Vec::new(),
        pages: Vec::new(),
        files: Vec::new(),
        compacted_ms: last,
        video: None,
    };
    archive
        .put(
            &format!("{room}/e1/manifest.json"),
            &serde_json::to_vec_pretty(&manifest).expect("manifest"),
        )
        .expect("manifest");
    root.join(room).join("e1")
}

/// The suite's one render of loan-apply.
struct Rendered {
    dir: PathBuf,
    recording: PathBuf,
    video: PathBuf,
    report: Value,
    events: Vec<Box<RawValue>>,
}

fn rendered() -> &'static Rendered {
    static ONCE: OnceLock<Rendered> = OnceLock::new();
    ONCE.get_or_init(|| {
        ensure_renderer();
        let dir = temp_dir("suite");
        let events = masked_events(usize::MAX);
        let first = timestamps(&events)[0];
        let chat = vec![ChatLine {
            offset: 5,
            id: "m1".into(),
            from: Member {
                id: "a1".into(),
                role: Role::Agent,
            },
            text: "Hello, I can see the loan form".into(),
            ts: first + 20_000,
        }];
        let recording = write_recording(&dir.join("archive"), "loan", &events, chat);
        let video = dir.join("out/loan.mp4");
        let out = Command::new(env!("CARGO_BIN_EXE_relay"))
            .arg("render")
            .arg(&recording)
            .arg("--out")
            .arg(&video)
            .arg("--render-dir")
            .arg(render_dir())
            .args(["--render-idle-skip", "3s"])
            .output()
            .expect("relay render runs");
        assert!(
            out.status.success(),
            "relay render failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON line");
        Rendered {
            dir,
            recording,
            video,
            report,
            events,
        }
    })
}

fn ffprobe(video: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(video)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

/// An image as RGB bytes, decoded by ffmpeg (frame `frame` of a video, or a PNG).
fn rgb(input: &Path, frame: Option<u64>) -> Vec<u8> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-i"]).arg(input);
    if let Some(n) = frame {
        cmd.args(["-vf", &format!("select=eq(n\\,{n})"), "-frames:v", "1"]);
    }
    let out = cmd
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .stderr(Stdio::inherit())
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success());
    out.stdout
}

#[test]
fn the_video_lasts_the_recording_less_the_cut_idle_time_at_the_pages_size() {
    let r = rendered();
    let probe = ffprobe(&r.video);
    let streams = probe["streams"].as_array().expect("streams");
    let v = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("a video stream");
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(v["pix_fmt"], "yuv420p");
    // loan-apply's pages are 390x844 (its Meta events).
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(390), Some(844))
    );
    let subs = streams
        .iter()
        .find(|s| s["codec_type"] == "subtitle")
        .expect("the chat as a subtitle track");
    assert_eq!(subs["codec_name"], "mov_text");
    // Expected: the recording's own span (first to last event), less the cuts, plus the last
    // frame; within one frame.
    let ts = timestamps(&r.events);
    let span = ts.iter().max().expect("ts") - ts.iter().min().expect("ts");
    let skipped = r.report["skipped_ms"].as_u64().expect("skipped_ms");
    assert!(skipped > 0, "loan-apply has idle stretches over 3 s");
    let expected = (span - skipped) as f64 / 1000.0 + 1.0 / FPS as f64;
    let duration: f64 = probe["format"]["duration"]
        .as_str()
        .expect("duration")
        .parse()
        .expect("seconds");
    assert!(
        (duration - expected).abs() <= 1.0 / FPS as f64 + 1e-6,
        "video {duration} s, expected {expected} s"
    );
    // The manifest's copy of the cuts adds up.
    let cuts: u64 = r.report["skips"]
        .as_array()
        .expect("skips")
        .iter()
        .map(|s| s["to_ms"].as_u64().unwrap_or(0) - s["from_ms"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(cuts, skipped);
    // Atomic write: nothing but the video in its directory.
    let names: Vec<String> = std::fs::read_dir(r.video.parent().expect("dir"))
        .expect("out dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["loan.mp4".to_owned()]);
}

/// Mean absolute difference per channel (0..255) and the share of pixels off by more than 64
/// in some channel.
fn difference(a: &[u8], b: &[u8]) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "same size");
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    let off = a
        .chunks(3)
        .zip(b.chunks(3))
        .filter(|(p, q)| p.iter().zip(q.iter()).any(|(x, y)| x.abs_diff(*y) > 64))
        .count();
    (
        sum as f64 / a.len() as f64,
        off as f64 / (a.len() / 3) as f64,
    )
}

#[test]
fn frames_match_the_rrweb_replayer_at_the_same_times() {
    let r = rendered();
    // Three times on the three pages (product list, form being filled, confirmation), before
    // the first cut, so replay time = video time; multiples of the frame interval.
    let first_cut = r.report["skips"][0]["from_ms"].as_u64().unwrap_or(u64::MAX);
    let times = [8_000u64, 45_000, 72_000];
    assert!(times.iter().all(|t| *t < first_cut), "cuts at {first_cut}");
    let refs = r.dir.join("reference");
    std::fs::create_dir_all(&refs).expect("dir");
    let events = r.dir.join("events.json");
    let text = format!(
        "[{}]",
        r.events
            .iter()
            .map(|e| e.get())
            .collect::<Vec<_>>()
            .join(",")
    );
    std::fs::write(&events, text).expect("events");
    let ok = Command::new("node")
        .arg(render_dir().join("reference.mjs"))
        .arg(&events)
        .args(["390", "844"])
        .arg(&refs)
        .args(times.map(|t| t.to_string()))
        .status()
        .expect("node runs")
        .success();
    assert!(ok, "reference screenshots");
    let diffs: Vec<(u64, f64, f64)> = times
        .iter()
        .map(|&t| {
            let frame = rgb(&r.video, Some(t * FPS / 1000));
            let reference = rgb(&refs.join(format!("{t}.png")), None);
            let (mean, off) = difference(&frame, &reference);
            (t, mean, off)
        })
        .collect();
    eprintln!("(time ms, mean difference, share of pixels off): {diffs:?}");
    for (t, mean, off) in diffs {
        // H.264 at crf 23 in yuv420p blurs edges and colours a little: a mean under 3/255 and
        // under 2% of pixels far off (measured: means 0.7..1.3, at most 0.55% off). A frame from
        // another moment (a page apart) is far above.
        assert!(
            mean < 3.0 && off < 0.02,
            "frame at {t} ms differs from the Replayer: mean {mean:.2}, {:.2}% pixels off",
            off * 100.0
        );
    }
    // And the test can tell pages apart.
    let (mean, off) = difference(
        &rgb(&r.video, Some(8_000 * FPS / 1000)),
        &rgb(&refs.join("45000.png"), None),
    );
    assert!(mean >= 3.0 || off >= 0.02, "pages differ: {mean} {off}");
}

#[test]
fn what_was_typed_never_reaches_the_events_the_video_is_made_from() {
    let r = rendered();
    assert!(
        fixture().contains("13800138000"),
        "the fixture holds typed values"
    );
    let (_, events, _) =
        assist_relay::compactor::video::read_recording_dir(&r.recording).expect("recording");
    let text = String::from_utf8(events).expect("utf-8");
    for value in TYPED {
        assert!(!text.contains(value), "{value} is in the video's source");
    }
    // The password field was typed into, and shows as masked.
    assert!(text.contains("************"));
}

fn render_fails(events: &str, extra: &[&str]) -> (i32, String) {
    ensure_renderer();
    let dir = temp_dir(&format!("fail-{}", rand::random::<u32>()));
    let input = dir.join("events.json");
    std::fs::write(&input, events).expect("events");
    let out = dir.join("out/v.mp4");
    let run = Command::new(env!("CARGO_BIN_EXE_relay"))
        .arg("render")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .arg("--render-dir")
        .arg(render_dir())
        .args(extra)
        .output()
        .expect("relay render runs");
    assert!(!out.exists(), "no video after a failure");
    if let Some(parent) = out.parent().filter(|p| p.exists()) {
        assert_eq!(
            std::fs::read_dir(parent).expect("dir").count(),
            0,
            "no temporary file left"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    (
        run.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&run.stderr).into_owned(),
    )
}

#[test]
fn a_recording_that_cannot_render_fails_with_its_reason_and_leaves_nothing() {
    let (code, why) = render_fails(r#"[{"type":3,"timestamp":1,"data":{"source":1}}]"#, &[]);
    assert_eq!(code, 70, "{why}");
    assert!(why.contains("no FullSnapshot"), "{why}");
    let (code, why) = render_fails(&fixture(), &["--render-max-duration", "30s"]);
    assert_eq!(code, 70, "{why}");
    assert!(
        why.contains("too long") && why.contains("over the limit of 0:30"),
        "{why}"
    );
    let (code, why) = render_fails(&fixture(), &["--render-fps", "0"]);
    assert_eq!(code, 64, "{why}");
}

#[test]
fn a_render_past_its_timeout_is_stopped_and_fails() {
    let started = std::time::Instant::now();
    let (code, why) = render_fails(&fixture(), &["--render-timeout", "2s"]);
    assert_eq!(code, 70, "{why}");
    assert!(why.contains("timed out after 2s"), "{why}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "stopped promptly"
    );
}

#[test]
fn webm_is_vp9_at_the_same_size() {
    ensure_renderer();
    let dir = temp_dir("webm");
    let input = dir.join("events.json");
    let first_page: Vec<String> = common::fixture_events("loan-apply.json")
        .into_iter()
        .take(40)
        .collect();
    std::fs::write(&input, format!("[{}]", first_page.join(","))).expect("events");
    let out = dir.join("v.webm");
    let run = Command::new(env!("CARGO_BIN_EXE_relay"))
        .arg("render")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .arg("--render-dir")
        .arg(render_dir())
        .args(["--format", "webm"])
        .output()
        .expect("relay render runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let probe = ffprobe(&out);
    let v = &probe["streams"][0];
    assert_eq!(v["codec_name"], "vp9");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(390), Some(844))
    );
    assert_eq!(probe["format"]["format_name"], "matroska,webm");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The render stage: a final job writes the recording and queues a render job; the worker
/// rendering it is killed (SIGKILL) mid-render; another reclaims the job and renders it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_render_job_is_redone_once_and_leaves_one_video() {
    use assist_relay::compactor::worker::{RedisJobQueue, JOBS};
    use assist_relay::compactor::{Job, JobKind, JobQueue};
    use assist_relay::store::redis::{RedisConfig, RedisStore};
    use assist_relay::store::{EntryBody, LogConfig, NewEntry, RoomLog};
    ensure_renderer();
    let redis = common::RedisServer::start().await;
    let dir = temp_dir("stage");
    let archive = dir.join("archive");
    let store = RedisStore::connect(
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
        assist_relay::telemetry::Metrics::new().redis.clone(),
        Duration::from_secs(10),
    )
    .await
    .expect("connect");
    // The first page of loan-apply (about 16 s), stored as a room.
    for e in masked_events(79) {
        let head = assist_relay_proto::EventHead::scan(&e).expect("rrweb event");
        store
            .append(
                "stage",
                NewEntry::new(EntryBody::Event {
                    kind: head.kind,
                    source: head.source,
                    event: e.into(),
                }),
            )
            .await
            .expect("append");
    }
    let worker = |name: &str, port: u16| {
        Command::new(env!("CARGO_BIN_EXE_relay"))
            .args(["compactor", "--redis-url", &redis.url(), "--archive-dir"])
            .arg(&archive)
            .args(["--admin-listen", &format!("127.0.0.1:{port}")])
            .args([
                "--consumer",
                name,
                "--claim-after",
                "1s",
                "--render",
                "video",
            ])
            .arg("--render-dir")
            .arg(render_dir())
            // Webhooks are queued into the Redis outbox (no node here delivers them).
            .args([
                "--webhook-url",
                "http://127.0.0.1:9/hooks",
                "--webhook-secret",
                "s",
            ])
            .args(["--webhook-partitions", "1"])
            .env("RELAY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("relay compactor starts")
    };
    let mut a = worker("worker-a", common::free_port());
    RedisJobQueue::new(store.clone())
        .enqueue(Job {
            room: "stage".into(),
            kind: JobKind::Final,
        })
        .await
        .expect("enqueue");
    // Worker A writes the recording, then starts the render: kill it once frames flow.
    let scratch = archive.join(".render/stage");
    let mut rendering = false;
    for _ in 0..600 {
        rendering = walk(&scratch)
            .iter()
            .any(|p| p.ends_with(".video.mp4.rendering"));
        if rendering {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rendering, "worker A never started rendering");
    let _ = a.kill();
    let _ = a.wait();
    let admin = common::free_port();
    let mut b = worker("worker-b", admin);
    let mut status = Value::Null;
    for _ in 0..1200 {
        let manifests: Vec<PathBuf> = walk(&archive.join("stage"))
            .into_iter()
            .filter(|p| p.ends_with("manifest.json"))
            .map(PathBuf::from)
            .collect();
        if let Some(m) = manifests.first() {
            let v: Value =
                serde_json::from_slice(&std::fs::read(m).expect("manifest")).expect("json");
            if !v["video"].is_null() {
                status = v["video"].clone();
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["status"], "ready", "{status}");
    assert_eq!(status["file"], "video.mp4");
    let files: Vec<String> = walk(&archive.join("stage"))
        .into_iter()
        .filter(|p| !p.ends_with(".json") && !p.ends_with(".zst"))
        .collect();
    assert_eq!(files.len(), 1, "one video and nothing else: {files:?}");
    assert!(files[0].ends_with("/video.mp4"));
    assert!(
        walk(&scratch).is_empty(),
        "no scratch left: {:?}",
        walk(&scratch)
    );
    // Redone once: B reclaimed the render job and rendered one video.
    let metrics = reqwest_metrics(admin).await;
    assert!(
        metrics.contains("relay_compactor_jobs_total{outcome=\"reclaimed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("relay_render_jobs_total{outcome=\"ready\"} 1"),
        "{metrics}"
    );
    let mut len = redis::cmd("XLEN");
    len.arg(JOBS);
    let jobs: i64 = store.command(&len).await.expect("xlen");
    assert_eq!(jobs, 2, "one final job and one render job");
    // The outbox holds recording.ready and recording.video_ready, each once (B's run after the
    // reclaim reported them again under the same ids), the video's with the recording's id.
    let mut range = redis::cmd("XRANGE");
    range
        .arg(assist_relay::webhook::redis::stream(0))
        .arg("-")
        .arg("+");
    let entries: Vec<(String, Vec<String>)> = store.command(&range).await.expect("xrange");
    let of = |kind: &str| -> Vec<Value> {
        entries
            .iter()
            .filter(|(_, f)| f.chunks(2).any(|kv| kv[0] == "type" && kv[1] == kind))
            .filter_map(|(_, f)| {
                f.chunks(2)
                    .find(|kv| kv[0] == "body")
                    .map(|kv| kv[1].clone())
            })
            .map(|b| serde_json::from_str(&b).expect("body json"))
            .collect()
    };
    assert_eq!(of("recording.ready").len(), 1, "{entries:?}");
    let video = of("recording.video_ready");
    assert_eq!(video.len(), 1, "{entries:?}");
    assert!(video[0]["data"]["recording"]
        .as_str()
        .is_some_and(|r| r.starts_with("stage:")));
    assert!(video[0]["data"]["file"]
        .as_str()
        .is_some_and(|f| f.ends_with("/video.mp4")));
    let _ = b.kill();
    let _ = b.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every file under `dir` (recursively), as paths.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

/// The text of a compactor's /metrics.
async fn reqwest_metrics(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for _ in 0..50 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let req = "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n";
            if s.write_all(req.as_bytes()).await.is_ok() {
                let mut body = String::new();
                let _ = s.read_to_string(&mut body).await;
                return body;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no /metrics on {port}");
}
