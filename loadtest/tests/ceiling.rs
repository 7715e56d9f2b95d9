//! The `ceiling` scenario end to end: a small broadcast through the fan-out server must lose
//! nothing and produce a sane report, with the server in the test's process (library call) and
//! in a process of its own (the `loadtest` binary, as users run it).

use std::time::Duration;

use clap::Parser;
use loadtest::cli::{Cli, Scenario};

fn parse(args: &[&str]) -> Scenario {
    Cli::try_parse_from(std::iter::once("loadtest").chain(args.iter().copied()))
        .expect("valid arguments")
        .scenario
}

/// 2 s at 100 events/s, nothing may be lost.
const SMALL_LOAD: &[&str] = &[
    "--rate",
    "100",
    "--duration",
    "2s",
    "--drain",
    "3s",
    "--quiet",
    "--max-loss",
    "0",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceiling_small_broadcast_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("loadtest-ceiling-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("report.json");
    let mut args = vec![
        "ceiling",
        "--server",
        "in-process",
        "--viewers",
        "8",
        "--size",
        "300",
    ];
    args.extend_from_slice(SMALL_LOAD);
    args.extend(["--json", json.to_str().expect("utf-8 path")]);
    let scenario = parse(&args);
    let report = tokio::time::timeout(Duration::from_secs(60), loadtest::run(scenario))
        .await
        .expect("finishes in time")
        .expect("runs");

    assert_eq!(report.scenario, "ceiling");
    assert_eq!(report.viewers, 8);
    // 2 s at 100/s: the schedule is exact, whatever the machine's speed.
    assert_eq!(report.published_events, 200);
    assert_eq!(report.events.expected, 8 * 200);
    assert_eq!(report.events.received, 8 * 200);
    assert_eq!(report.events.lost, 0);
    assert_eq!(report.events.dups, 0);
    assert_eq!(report.events.reorders, 0);
    assert_eq!(report.events.gaps, 0);
    assert_eq!(report.deliveries, 8 * 200);
    assert_eq!(report.loss_fraction, 0.0);
    assert!(report.breaches.is_empty(), "{:?}", report.breaches);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.fanout_dropped, Some(0));

    let lat = report.latency.expect("latency measured");
    assert_eq!(lat.count, 8 * 200);
    assert!(lat.p50_ms > 0.0 && lat.p50_ms <= lat.p99_ms && lat.p99_ms <= lat.max_ms);
    assert!(lat.max_ms < 10_000.0, "{lat:?}");
    assert_eq!(report.connect.expect("connects").count, 8);
    assert!(report.processes.iter().any(|p| p.pid == std::process::id()));

    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid json");
    assert_eq!(written["events"]["lost"], 0);
    assert_eq!(written["published_events"], 200);
    assert!(written["latency"]["p99_ms"].as_f64().is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceiling_with_msgpack_frames() {
    let scenario = parse(&[
        "ceiling",
        "--server",
        "in-process",
        "--viewers",
        "3",
        "--rate",
        "50",
        "--duration",
        "1s",
        "--codec",
        "msgpack",
        "--quiet",
    ]);
    let report = loadtest::run(scenario).await.expect("runs");
    assert_eq!(report.codec, "msgpack");
    assert_eq!(report.events.received, 3 * 50);
    assert_eq!(report.events.lost, 0);
}

/// The default: `loadtest ceiling` starts `loadtest ceiling-server` as a child process, drives the
/// load at it, samples it as a server and collects its dropped count when it stops.
#[test]
fn ceiling_server_in_its_own_process() {
    let dir = std::env::temp_dir().join(format!("loadtest-ceiling-proc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("report.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["ceiling", "--viewers", "6", "--size", "200"])
        .args(SMALL_LOAD)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("loadtest runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid json");
    assert_eq!(report["scenario"], "ceiling");
    assert_eq!(report["published_events"], 200);
    assert_eq!(report["events"]["received"], 6 * 200);
    assert_eq!(report["events"]["lost"], 0);
    assert_eq!(report["fanout_dropped"], 0);
    let procs = report["processes"].as_array().expect("processes sampled");
    let server = procs
        .iter()
        .find(|p| p["label"] == "server")
        .expect("the fan-out server is sampled as a server");
    let clients = procs
        .iter()
        .find(|p| p["label"] == "loadtest (clients)")
        .expect("the clients' process is sampled");
    assert_ne!(server["pid"], clients["pid"], "two processes");
    assert!(server["cpu_s"].as_f64().expect("server cpu") > 0.0);
    assert!(
        stdout.contains("(server)"),
        "the table lists the server:\n{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn socketio_refuses_msgpack() {
    let scenario = parse(&[
        "broadcast",
        "--protocol",
        "socketio",
        "--codec",
        "msgpack",
        "--quiet",
    ]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let err = rt.block_on(loadtest::run(scenario)).expect_err("refused");
    assert!(err.to_string().contains("JSON"), "{err}");
}
