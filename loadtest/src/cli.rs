//! Command line: one subcommand per scenario, each with the common options flattened in.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::stages::Stages;
use crate::thresholds::Threshold;

/// Load driver for assist-relay (and, for comparison, the socket.io and Pusher/sockudo peers).
#[derive(Debug, Parser)]
#[command(name = "loadtest", version, about)]
pub struct Cli {
    /// The scenario to run.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Scenarios.
#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// One room: one publisher, N viewers (and K stalled viewers that never read).
    Broadcast(BroadcastArgs),
    /// R rooms, each with a customer replaying a recording (or synthetic events), V agents,
    /// chat, and late joiners that measure join-to-first-keyframe.
    Cobrowse(CobrowseArgs),
    /// The broadcast load against a no-logic fan-out server: what this machine can do at all.
    /// The server runs in a process of its own (like the server under test), or in this one.
    Ceiling(CeilingArgs),
    /// Connect, join (optionally resume), leave, at a constant rate.
    Churn(ChurnArgs),
    /// Large keyframes: upload a FullSnapshot in chunks (stitching MB/s), then fresh agents join
    /// and measure connect-to-whole-keyframe.
    Snapshot(SnapshotArgs),
    /// Internal: the `ceiling` fan-out server alone. Prints `listening ADDR`, serves until its
    /// standard input closes, then prints `dropped N` (messages dropped for lagging receivers).
    #[command(hide = true)]
    CeilingServer,
}

/// Where the `ceiling` scenario's fan-out server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CeilingServerArg {
    /// A child process of its own (`loadtest ceiling-server`), sampled as a server: it pays the
    /// same process boundary and scheduling as the server under test, and its CPU and RSS are
    /// reported apart from the clients'.
    Process,
    /// Inside this process, in the clients' runtime: no cross-process wake-ups, so it shows a
    /// higher maximum than any separate server can reach on the same cores.
    InProcess,
}

impl SyntheticArgs {
    /// Default events per second.
    pub const DEFAULT_RATE: f64 = 100.0;

    /// `--rate`, or its default.
    pub fn rate(&self) -> f64 {
        self.rate.unwrap_or(Self::DEFAULT_RATE)
    }
}

impl Common {
    /// Every threshold: `--threshold`s, then the `--max-p99-ms` and `--max-loss` shorthands.
    pub fn all_thresholds(&self) -> Vec<Threshold> {
        use crate::thresholds::{Metric, Op, Series, Stat};
        let mut all = self.thresholds.clone();
        if let Some(ms) = self.max_p99_ms {
            all.push(Threshold {
                expr: format!("p99<={ms}ms"),
                metric: Metric::Latency(Series::Event, Stat::P99),
                op: Op::Le,
                limit: ms,
            });
        }
        if let Some(f) = self.max_loss {
            all.push(Threshold {
                expr: format!("loss<={f}"),
                metric: Metric::Loss,
                op: Op::Le,
                limit: f,
            });
        }
        all
    }

    /// How long publishing lasts: the stages' total, or `--duration`.
    pub fn publish_duration(&self) -> Duration {
        self.stages.as_ref().map_or(self.duration, Stages::total)
    }
}

/// Options of `ceiling`.
#[derive(Debug, Clone, Args)]
pub struct CeilingArgs {
    /// The broadcast load.
    #[command(flatten)]
    pub load: BroadcastArgs,
    /// Where the fan-out server runs.
    #[arg(long, value_enum, default_value_t = CeilingServerArg::Process)]
    pub server: CeilingServerArg,
}

/// Server dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    /// assist-relay v1.
    Relay,
    /// socket.io v4 / Engine.IO v4 over websocket (the incumbent peer).
    Socketio,
    /// Pusher channels protocol 7 (the sockudo peer): --url ws://HOST:PORT connects to
    /// /app/KEY; a room is the channel private-ROOM (signed with --pusher-secret); events are
    /// `client-event` and chat is mapped to the client event `client-chat`. Pusher keeps no
    /// history: late joiners receive from their subscription on (their join-to-first-keyframe
    /// waits for the publisher's next FullSnapshot).
    Pusher,
}

/// Frame codec of the relay dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CodecArg {
    /// JSON text frames.
    Json,
    /// MessagePack binary frames.
    Msgpack,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

/// Options every scenario has.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Target WebSocket URL (repeatable; connections go round-robin), e.g. ws://127.0.0.1:8080/ws.
    #[arg(long = "url", default_value = "ws://127.0.0.1:8080/ws")]
    pub urls: Vec<String>,
    /// Relay JWT secret, to mint participant tokens.
    #[arg(long, env = "RELAY_JWT_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Server dialect.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Relay)]
    pub protocol: ProtocolArg,
    /// Relay codec.
    #[arg(long, value_enum, default_value_t = CodecArg::Json)]
    pub codec: CodecArg,
    /// Pusher app key (--protocol pusher; the app id, `app` by default, is only the server's).
    #[arg(long, default_value = "key")]
    pub pusher_key: String,
    /// Pusher app secret, to sign private-channel subscriptions (--protocol pusher).
    #[arg(long, default_value = "secret")]
    pub pusher_secret: String,
    /// How long to publish, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub duration: Duration,
    /// After publishing, how long to wait at most for the last deliveries.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub drain: Duration,
    /// Local addresses to connect from, round-robin (e.g. 127.0.0.1,127.0.0.2).
    #[arg(long, value_delimiter = ',')]
    pub source_ips: Vec<String>,
    /// Server process to sample CPU and RSS of (repeatable).
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// Connections opened at once while setting up.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Room id prefix (a run suffix is added so runs do not share rooms).
    #[arg(long, default_value = "lt")]
    pub room_prefix: String,
    /// Write the report as JSON to this file: the summary and a per-second `timeline`.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A pass/fail criterion, repeatable: `p99<50ms`, `p999<=200ms`, `join.p99<20ms`,
    /// `loss<=0`, `loss<0.1%`, `errors<1` (metrics p50 p90 p99 p999 max mean, optionally
    /// prefixed chat. connect. join. keyframe.; loss; errors). Exit 1 if any fails.
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<Threshold>,
    /// Shorthand for `--threshold 'p99<=Xms'`.
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
    /// Shorthand for `--threshold 'loss<=F'` (lost fraction, events and chat, non-stalled viewers).
    #[arg(long)]
    pub max_loss: Option<f64>,
    /// Ramp the load over time, k6-style: `30s:10,1m:50,30s:0` moves linearly from 0 to each
    /// target in turn (a `0s` stage jumps). The target is events/s (broadcast, ceiling), rooms
    /// (cobrowse) or cycles/s (churn); the stages replace --duration (and --rate / --rooms).
    #[arg(long)]
    pub stages: Option<Stages>,
    /// Print no progress lines.
    #[arg(long)]
    pub quiet: bool,
}

/// Synthetic event options.
#[derive(Debug, Clone, Args)]
pub struct SyntheticArgs {
    /// Events per second per publisher [default: 100]. In cobrowse, giving it publishes
    /// synthetic events instead of the default recording.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Bytes per event (rrweb JSON padded to this size).
    #[arg(long, default_value_t = 200)]
    pub size: usize,
    /// A keyframe (Meta + FullSnapshot) starts the stream and recurs every this many events
    /// (0: only at the start).
    #[arg(long, default_value_t = 1000)]
    pub keyframe_every: u64,
}

/// `broadcast` and `ceiling`.
#[derive(Debug, Clone, Args)]
pub struct BroadcastArgs {
    /// Common options.
    #[command(flatten)]
    pub common: Common,
    /// Synthetic events.
    #[command(flatten)]
    pub synthetic: SyntheticArgs,
    /// Viewers that read and are measured.
    #[arg(long, default_value_t = 50)]
    pub viewers: usize,
    /// Extra viewers that join and then never read their socket.
    #[arg(long, default_value_t = 0)]
    pub stalled: usize,
}

/// `cobrowse`.
#[derive(Debug, Clone, Args)]
pub struct CobrowseArgs {
    /// Common options.
    #[command(flatten)]
    pub common: Common,
    /// Synthetic events (used when no --recording is given).
    #[command(flatten)]
    pub synthetic: SyntheticArgs,
    /// Rooms, each with one customer.
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Agents per room that join before the customer starts.
    #[arg(long, default_value_t = 2)]
    pub agents: usize,
    /// A JSON array of rrweb events the customer replays (looping until --duration). Repeatable:
    /// room r replays the (r mod n)-th. Default: loadtest/fixtures/demo-shop.json (the demo
    /// shop), unless --rate asks for synthetic events.
    #[arg(long)]
    pub recording: Vec<PathBuf>,
    /// Replay speed-up of the recording.
    #[arg(long, default_value_t = 10.0)]
    pub speed: f64,
    /// Chat messages per second per room (sent by the customer).
    #[arg(long, default_value_t = 1.0)]
    pub chat_rate: f64,
    /// Agents per room that join halfway through (measures join-to-first-keyframe).
    #[arg(long, default_value_t = 1)]
    pub late_joiners: usize,
}

/// `churn`.
#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    /// Common options.
    #[command(flatten)]
    pub common: Common,
    /// Connect-join-leave cycles started per second.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Rooms the cycles spread over; each has a customer publishing synthetic events.
    #[arg(long, default_value_t = 4)]
    pub rooms: usize,
    /// Participant identities reused round-robin (each remembers its last position).
    #[arg(long, default_value_t = 40)]
    pub identities: usize,
    /// Resume from the identity's last position instead of joining fresh.
    #[arg(long)]
    pub resume: bool,
    /// How long each participant stays after catching up.
    #[arg(long, default_value = "0s", value_parser = duration)]
    pub hold: Duration,
    /// Events per second each room's customer publishes meanwhile (0: none).
    #[arg(long, default_value_t = 20.0)]
    pub publish_rate: f64,
    /// Bytes per published event.
    #[arg(long, default_value_t = 200)]
    pub size: usize,
    /// Cycles in flight at most; a cycle due while this many are open is skipped and counted.
    #[arg(long, default_value_t = 1000)]
    pub max_inflight: usize,
}

/// `snapshot`. `--codec` is the uploading customer's; `--duration` and `--drain` are not used.
#[derive(Debug, Clone, Args)]
pub struct SnapshotArgs {
    /// Common options.
    #[command(flatten)]
    pub common: Common,
    /// Size of the generated FullSnapshot, MB (10^6 bytes).
    #[arg(long, default_value_t = 5.0)]
    pub snapshot_mb: f64,
    /// Upload the largest FullSnapshot of this recording (a JSON array of rrweb events) instead.
    #[arg(long)]
    pub snapshot_from: Option<PathBuf>,
    /// Uploads (each a Meta event, then the FullSnapshot in chunks).
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// Fresh agents per join codec that join after the last upload, one at a time.
    #[arg(long, default_value_t = 20)]
    pub joins: u32,
    /// Codecs of the joining agents (they alternate).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [CodecArg::Json, CodecArg::Msgpack])]
    pub join_codecs: Vec<CodecArg>,
    /// Slice size in bytes (default: the `chunk_bytes` the relay announces in `joined`).
    #[arg(long)]
    pub chunk_bytes: Option<usize>,
}
