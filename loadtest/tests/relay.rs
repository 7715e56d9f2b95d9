//! The `loadtest` binary against a real relay binary (`relay serve`, embedded mode, loopback,
//! free ports), as users run it: the `--json` time series, thresholds and the exit code, errors
//! that name their cause, and a `--stages` ramp over the default recording.
//!
//! The relay binary is `RELAY_BIN`, or the `relay` next to this `loadtest` binary (built by
//! `cargo build -p assist-relay`, which `scripts/test` runs first); a missing one fails the test.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "loadtest-relay-test-secret-0123456789abcdef";

fn relay_bin() -> PathBuf {
    let bin = match std::env::var_os("RELAY_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_BIN_EXE_loadtest")).with_file_name("relay"),
    };
    assert!(
        bin.is_file(),
        "no relay binary at {} (build it with `cargo build -p assist-relay`, or set RELAY_BIN)",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `relay serve` child, killed on drop.
struct Relay {
    child: Child,
    port: u16,
}

impl Relay {
    fn start(extra: &[&str]) -> Relay {
        let port = free_port();
        let admin = free_port();
        let child = Command::new(relay_bin())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .args(extra)
            .env("RELAY_JWT_SECRET", SECRET)
            .env_remove("RELAY_REDIS_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("relay starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the relay did not listen in 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Relay { child, port }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `loadtest` from the repository root.
fn loadtest(args: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(args)
        .current_dir(root)
        .env_remove("RELAY_JWT_SECRET")
        .output()
        .expect("loadtest runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn temp_json(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("loadtest-relay-{}-{name}.json", std::process::id()))
}

#[test]
fn json_has_a_per_second_timeline_and_a_failed_threshold_exits_1() {
    let relay = Relay::start(&[]);
    let pid = relay.child.id().to_string();
    let json = temp_json("timeline");
    let out = loadtest(&[
        "broadcast",
        "--url",
        &relay.url(),
        "--secret",
        SECRET,
        "--viewers",
        "3",
        "--rate",
        "50",
        "--duration",
        "3s",
        "--drain",
        "3s",
        "--quiet",
        "--server-pid",
        &pid,
        "--json",
        json.to_str().expect("utf-8 path"),
        "--threshold",
        "p99<10s",
        "--threshold",
        "loss<=0",
        "--threshold",
        "p50<1us",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed threshold exits 1\n{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("threshold   PASS p99<10s"), "{stdout}");
    assert!(stdout.contains("threshold   PASS loss<=0"), "{stdout}");
    assert!(stdout.contains("threshold   FAIL p50<1us"), "{stdout}");
    assert!(stdout.contains("2 of 3 passed (exit code 1)"), "{stdout}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid json");
    let _ = std::fs::remove_file(&json);
    assert_eq!(report["events"]["lost"], 0, "{report}");
    let thresholds = report["thresholds"].as_array().expect("thresholds");
    let pass: Vec<bool> = thresholds
        .iter()
        .map(|t| t["pass"].as_bool().expect("pass"))
        .collect();
    assert_eq!(pass, [true, true, false]);
    assert!(thresholds[2]["value"].as_f64().expect("value") > 0.001);
    assert_eq!(report["breaches"].as_array().expect("breaches").len(), 1);

    // One sample per second of publishing and draining: 3 s of publishing at least.
    let timeline = report["timeline"].as_array().expect("timeline");
    assert!(timeline.len() >= 3, "{timeline:?}");
    let mut last_t = 0.0;
    for s in timeline {
        let t = s["t_s"].as_f64().expect("t_s");
        assert!(t > last_t, "times grow: {timeline:?}");
        last_t = t;
        assert!(s["interval_s"].as_f64().expect("interval_s") <= 1.5);
        for field in ["sent", "deliveries", "errors", "connections"] {
            assert!(s[field].as_u64().is_some(), "{field} in {s}");
        }
        let server = s["processes"]
            .as_array()
            .expect("processes")
            .iter()
            .find(|p| p["label"] == "server")
            .unwrap_or_else(|| panic!("the relay is sampled each second: {s}"));
        assert_eq!(server["pid"].as_u64(), Some(u64::from(relay.child.id())));
        assert!(server["rss_kb"].as_u64().expect("rss") > 0);
        assert!(server["cpu_cores"].as_f64().expect("cpu") >= 0.0);
    }
    let delivered: u64 = timeline
        .iter()
        .map(|s| s["deliveries"].as_u64().expect("deliveries"))
        .sum();
    let total = report["deliveries"].as_u64().expect("deliveries");
    assert!(
        delivered > total / 2 && delivered <= total,
        "{delivered} of {total}"
    );
    // A second with deliveries has its own percentiles beside the run's.
    let busy = timeline
        .iter()
        .find(|s| s["deliveries"].as_u64() > Some(10))
        .expect("a busy second");
    assert!(busy["latency"]["p99_ms"].as_f64().is_some(), "{busy}");
    assert!(busy["p99_cumulative_ms"].as_f64().is_some(), "{busy}");
}

#[test]
fn a_full_room_names_room_full_and_the_setting() {
    let relay = Relay::start(&["--max-room-members", "3"]);
    let out = loadtest(&[
        "broadcast",
        "--url",
        &relay.url(),
        "--secret",
        SECRET,
        "--viewers",
        "4",
        "--duration",
        "1s",
        "--quiet",
    ]);
    let stderr = text(&out.stderr);
    // Three viewers fill the room; the fourth and the publisher are closed with 4503.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("closed_4503_room_full"), "{stderr}");
    assert!(stderr.contains("--max-room-members"), "{stderr}");
}

#[test]
fn a_refused_handshake_says_the_servers_reason() {
    let relay = Relay::start(&[]);
    let out = loadtest(&[
        "broadcast",
        "--url",
        &relay.url(),
        "--secret",
        "not-the-relays-secret-0123456789abcdef",
        "--viewers",
        "2",
        "--duration",
        "1s",
        "--quiet",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("open_viewer_refused_token_bad_signature x2"),
        "{stderr}"
    );
    assert!(!stderr.contains("refused_401"), "{stderr}");
    assert!(stderr.contains("RELAY_JWT_SECRET"), "{stderr}");
}

#[test]
fn cobrowse_ramps_rooms_over_the_default_recording() {
    let relay = Relay::start(&[]);
    let json = temp_json("stages");
    // One room from the start, a second one from 2 s, both until 4 s.
    let out = loadtest(&[
        "cobrowse",
        "--url",
        &relay.url(),
        "--secret",
        SECRET,
        "--stages",
        "0s:1,2s:2,2s:2",
        "--agents",
        "1",
        "--late-joiners",
        "0",
        "--chat-rate",
        "2",
        "--drain",
        "3s",
        "--quiet",
        "--json",
        json.to_str().expect("utf-8 path"),
        "--threshold",
        "loss<=0",
        "--threshold",
        "errors<1",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid json");
    let _ = std::fs::remove_file(&json);
    assert_eq!(report["params"]["rooms"], 2);
    assert_eq!(report["params"]["stages"], "0s:1,2s:2,2s:2");
    assert_eq!(
        report["params"]["recording"][0], "loadtest/fixtures/demo-shop.json",
        "the default recording, found from the repository root"
    );
    assert!(report["published_events"].as_u64() > Some(0));
    // Both rooms' chat streams were published: 2/s for 4 s and for 2 s.
    assert!(report["chat"]["expected"].as_u64() >= Some(8), "{report}");
    let targets: Vec<f64> = report["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|s| s["target"].as_f64())
        .collect();
    assert!(targets.len() >= 4, "{targets:?}");
    assert!(targets[0] >= 1.0 && targets[0] < 2.0, "{targets:?}");
    assert!(targets.contains(&2.0), "{targets:?}");
}
