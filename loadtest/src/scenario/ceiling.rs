//! `ceiling`: the broadcast load against an in-process fan-out server with no logic
//! ([`crate::fanout`]), to state results relative to what this machine can do at all.
//!
//! The server runs in this process, so the sampled CPU of this process is server and clients
//! together.

use crate::cli::BroadcastArgs;
use crate::fanout::FanoutServer;
use crate::report::Report;
use crate::scenario::broadcast::{self, Redirect};
use crate::scenario::wire_of;
use crate::wire::Wire;

/// Runs the scenario.
pub async fn run(a: &BroadcastArgs) -> anyhow::Result<Report> {
    let codec = wire_of(&a.common)
        .map(|w| w.codec())
        .unwrap_or(assist_relay_proto::Codec::Json);
    let server = FanoutServer::start().await?;
    let result = broadcast::run(
        a,
        Some(Redirect {
            wire: Wire::Raw(codec),
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
