//! The admin listener's `/metrics` is valid Prometheus exposition (checked by promtool) and
//! carries every metric operators rely on.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use assist_relay_proto::{Codec, Role, ServerFrame};
use common::*;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_name_every_documented_series() {
    let relay = Relay::start().await;
    let (mut customer, _) = relay.join("m", Role::Customer, "cust", Codec::Json).await;
    let (mut agent, _) = relay.join("m", Role::Agent, "agent", Codec::MsgPack).await;
    customer.publish(&synthetic(4, 0), None).await;
    customer.publish(&synthetic(2, 1), None).await;
    customer.send_raw(Message::Text("not json".into())).await;
    customer
        .recv_until(|f| matches!(f, ServerFrame::Error { .. }))
        .await;
    agent
        .recv_until(|f| matches!(f, ServerFrame::Event { offset: 2, .. }))
        .await;
    let (_, late) = relay.join("m", Role::Agent, "late", Codec::Json).await;
    assert_eq!(late.catch_up.len(), 2);
    let _ = http_get(relay.addr, "/nope").await; // a refused upgrade

    let (status, body) = relay.admin_get("/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "relay_build_info",
        "relay_connections",
        "relay_rooms",
        "relay_frames_in_total",
        "relay_frames_out_total",
        "relay_bytes_in_total",
        "relay_bytes_out_total",
        "relay_appends_total",
        "relay_fanout_latency_seconds_bucket",
        "relay_catchup_entries_bucket",
        "relay_catchup_bytes_bucket",
        "relay_queue_overflows_total",
        "relay_resyncs_total",
        "relay_rate_limited_total",
        "relay_errors_total",
        "relay_handshake_rejections_total",
        "relay_closes_total",
        "relay_draining",
    ] {
        assert!(body.lines().any(|l| l.starts_with(name)), "missing {name}");
    }
    assert!(body.contains("relay_errors_total{code=\"malformed\"} 1"));
    assert!(body.contains("relay_rooms 1"));

    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (scripts/test installs Debian's prometheus package)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
