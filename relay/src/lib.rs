//! assist-relay node: a WebSocket relay for rrweb co-browsing and chat.
//!
//! # Layout
//! - [`node`]: the [`Node`] every connection shares, built by [`NodeBuilder`] (store, metrics,
//!   compaction queue) for `relay serve` and the tests alike.
//! - [`http`]: the listeners on hyper. [`http::run`] takes a bound listener, a [`Node`] and a
//!   shutdown future and serves `/ws` upgrades (decided in [`auth::admit`]: token, room, codec)
//!   and, in demo mode, the demo pages ([`http::demo`]); [`http::serve`] adds the admin
//!   listener.
//! - `session` (private): one task per connection. A client frame is decoded, held to the rates
//!   and checked against the connection's rights there, then stored through the [`store::RoomLog`]
//!   or relayed; the room's live stream is fanned out to the socket there, with catch-up, resume
//!   and resync. A frame in hand (rate waits, store calls) never holds up the outbound stream.
//! - [`store`]: the `RoomLog` / `Broker` seam. [`store::memory`] is embedded mode;
//!   [`store::redis`] is cluster mode (streams, one Lua append-and-publish, pub/sub pumps,
//!   presence, Redis Cluster). [`store::plan`] decides fresh / resume / resync for both.
//!   An [`store::Entry`] caches its encoded frame per codec: encode once, send many.
//! - [`guide`]: agent guidance and call signaling, relayed through the room's live stream
//!   without being stored; per-connection guidance rates; ICE servers and TURN credentials.
//! - [`rooms`]: the node's local room registry (rooms with members here).
//! - [`limits`]: admission quotas (handshakes in progress, connections per participant, rooms
//!   per node) and the admin listener's limits; message and byte rates per connection,
//!   participant and room.
//! - [`http::admin`] and [`http::api`]: `/livez`, `/readyz`, `/metrics` and the `/v1` API on
//!   their own port.
//! - [`http::demo`]: `relay serve --demo` (off by default): the demo pages and demo tokens under
//!   `/demo/` on the WebSocket listener.
//! - [`audit`]: the audit trail (target `audit`, JSON lines with --audit-log).
//! - [`config`]: flags, `RELAY_*` environment, validation. [`keys`]: `--jwt-keys` and the
//!   masking key (kept apart from the JWT keys). [`telemetry`]: metrics.
//!
//! The wire protocol (frames, codecs, codes) is the `assist-relay-proto` crate and
//! `docs/protocol.md`.

pub mod audit;
pub mod auth;
pub mod compactor;
pub mod config;
pub mod export;
pub mod guide;
pub mod http;
pub mod keys;
pub mod limits;
pub mod mask;
pub mod native;
pub mod node;
pub mod pages;
pub mod rooms;
mod session;
pub mod store;
pub mod telemetry;

pub use http::{demo, run};
pub use node::{Node, NodeBuilder};
