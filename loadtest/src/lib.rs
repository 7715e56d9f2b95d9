//! Load driver for assist-relay.
//!
//! # Layout
//! - [`cli`]: the command line (one subcommand per scenario, common options flattened in).
//! - [`scenario`]: the scenarios ([`scenario::broadcast`], [`scenario::cobrowse`],
//!   [`scenario::ceiling`], [`scenario::churn`], [`scenario::snapshot`]) and [`scenario::Run`],
//!   what their tasks share.
//! - [`chunked`]: large events on the client side: upload slices and digests, reassembly of
//!   `chunk` frames, the large FullSnapshots `snapshot` sends.
//! - [`driver`]: the tasks scenarios are made of: viewer readers ([`driver::run_viewer`]) and
//!   open-loop publishers ([`driver::run_publisher`]) that stamp each message with its *scheduled*
//!   send time.
//! - [`transport`]: opening a participant: target and source-address round-robin, TCP, upgrade,
//!   join. [`token`] mints its JWT.
//! - [`wire`]: the dialects (relay JSON/MessagePack, socket.io, the ceiling's raw frames) and the
//!   viewers' hot-path decoder. [`payload`] builds the rrweb events and their `{p, seq, sent_us}`
//!   side channel and reads it back.
//! - [`checker`]: per-publisher gap, duplicate, reorder and resync accounting.
//! - [`stats`]: per-task HdrHistograms and counters, merged at the end; [`report`] derives the
//!   final numbers, prints the table, writes JSON and checks the [`thresholds`]; [`causes`]
//!   names what an error kind means (`closed_4503_room_full`, `refused_token_bad_signature`).
//! - [`progress`]: live counters, the once-a-second progress line and the per-second timeline.
//! - [`stages`]: `--stages` ramps (rate or rooms over time).
//! - [`sampler`]: CPU and RSS of server processes from `/proc`.
//! - [`fanout`]: the no-logic fan-out server that `ceiling` measures.
//! - [`clock`]: the one time base of send stamps and receive times; [`timer`] wakes publishers
//!   at their scheduled times to the sub-millisecond.

pub mod causes;
pub mod checker;
pub mod chunked;
pub mod cli;
pub mod clock;
pub mod driver;
pub mod fanout;
pub mod payload;
pub mod progress;
pub mod report;
pub mod sampler;
pub mod scenario;
pub mod stages;
pub mod stats;
pub mod thresholds;
pub mod timer;
pub mod token;
pub mod transport;
pub mod wire;

pub use report::Report;
pub use scenario::run;
