//! `ceiling`: the broadcast load against a fan-out server with no logic ([`crate::fanout`]), to
//! state results relative to what this machine can do at all.
//!
//! By default the server runs in a child process of its own (`loadtest ceiling-server`), sampled
//! as a server like the one under test: it pays the same process boundary (a delivery wakes
//! another process) and its CPU and RSS are reported apart from the clients'. With
//! `--server in-process` it runs in the clients' runtime instead, where a delivery is a wake-up
//! inside one process; that shows a higher maximum than any separate server reaches on the same
//! cores, and the sampled CPU is server and clients together.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::cli::{BroadcastArgs, CeilingArgs, CeilingServerArg};
use crate::fanout::FanoutServer;
use crate::report::Report;
use crate::scenario::broadcast::{self, Redirect};
use crate::scenario::wire_of;
use crate::wire::Wire;

/// Runs the scenario.
pub async fn run(a: &CeilingArgs) -> anyhow::Result<Report> {
    match a.server {
        CeilingServerArg::Process => own_process(&a.load).await,
        CeilingServerArg::InProcess => in_process(&a.load).await,
    }
}

fn wire(a: &BroadcastArgs) -> Wire {
    let codec = wire_of(&a.common)
        .map(|w| w.codec())
        .unwrap_or(assist_relay_proto::Codec::Json);
    Wire::Raw(codec)
}

async fn in_process(a: &BroadcastArgs) -> anyhow::Result<Report> {
    let server = FanoutServer::start().await?;
    let result = broadcast::run(
        a,
        Some(Redirect {
            wire: wire(a),
            url: server.url(),
            self_label: "loadtest (fan-out server + clients)",
        }),
    )
    .await;
    let dropped = server.stop().await;
    let mut report = result?;
    report.fanout_dropped = Some(dropped);
    Ok(report)
}

async fn own_process(a: &BroadcastArgs) -> anyhow::Result<Report> {
    let exe = std::env::current_exe().context("finding this executable to start the server")?;
    let mut child = Command::new(exe)
        .arg("ceiling-server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting `loadtest ceiling-server`")?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow!("the ceiling server exited at once"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no server stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .context("the ceiling server did not start within 10 s")??
        .unwrap_or_default();
    let Some(addr) = first.strip_prefix("listening ") else {
        bail!("the ceiling server said {first:?} instead of its address");
    };
    let mut load = a.clone();
    load.common.server_pids.push(pid);
    let result = broadcast::run(
        &load,
        Some(Redirect {
            wire: wire(a),
            url: format!("ws://{addr}/"),
            self_label: "loadtest (clients)",
        }),
    )
    .await;
    // Closing its stdin stops the server; it then reports what it dropped.
    drop(child.stdin.take());
    let dropped = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(n) = line.strip_prefix("dropped ") {
                return Ok::<_, anyhow::Error>(Some(n.parse::<u64>()?));
            }
        }
        Ok(None)
    })
    .await;
    let _ = child.kill().await;
    let mut report = result?;
    report.fanout_dropped = match dropped {
        Ok(Ok(Some(n))) => Some(n),
        _ => bail!("the ceiling server did not report its dropped messages"),
    };
    Ok(report)
}
