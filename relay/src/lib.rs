//! assist-relay node: a WebSocket relay for rrweb co-browsing and chat.
//!
//! # Layout
//! - [`server`]: the accept loop. [`server::run`] takes a bound listener, a [`server::Node`] and a
//!   shutdown future; the HTTP upgrade is decided in [`auth::admit`] (token, room, codec).
//! - `conn` (private): one task per connection. Frames are decoded there (`Conn::on_frame`), stored
//!   through the [`store::RoomLog`], and the room's live stream is fanned out to the socket there
//!   (`Conn::on_room_msg`), with catch-up, resume and resync in `Conn::recover`.
//! - [`store`]: the `RoomLog` / `Broker` seam. [`store::memory`] is embedded mode;
//!   [`store::redis`] is cluster mode (streams, one Lua append-and-publish, pub/sub pumps,
//!   presence, Redis Cluster). [`store::plan`] decides fresh / resume / resync for both.
//!   An [`store::Entry`] caches its encoded frame per codec: encode once, send many.
//! - [`guide`]: agent guidance and call signaling, relayed through the room's live stream
//!   without being stored; per-connection guidance rates; ICE servers and TURN credentials.
//! - [`rooms`]: the node's local room registry (rooms with members here).
//! - [`limits`]: admission quotas (handshakes in progress, connections per participant, rooms
//!   per node) and the admin listener's limits.
//! - [`admin`]: `/livez`, `/readyz`, `/metrics` on their own port.
//! - [`demo`]: `relay serve --demo` (off by default): the demo pages and demo tokens under
//!   `/demo/` on the WebSocket listener, hooked into the accept path before the handshake.
//! - [`audit`]: the audit trail (target `audit`, JSON lines with --audit-log).
//! - [`config`]: flags, `RELAY_*` environment, validation. [`keys`]: `--jwt-keys` and the
//!   masking key (kept apart from the JWT keys). [`telemetry`]: metrics.
//!
//! The wire protocol (frames, codecs, codes) is the `assist-relay-proto` crate and
//! `docs/protocol.md`.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod compactor;
pub mod config;
mod conn;
pub mod demo;
pub mod export;
pub mod guide;
pub mod hub;
pub mod keys;
pub mod limits;
pub mod mask;
pub mod native;
pub mod pages;
pub mod quota;
pub mod server;
pub mod store;
pub mod telemetry;

pub use server::{run, Node};
