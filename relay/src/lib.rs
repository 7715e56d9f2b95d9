//! assist-relay node: a WebSocket relay for rrweb co-browsing and chat.
//!
//! # Layout, in the order data flows
//! (docs/architecture.md draws the path of an event and of a chat message through these.)
//! - [`config`]: flags, `RELAY_*` environment, validation. [`keys`]: `--jwt-keys` and the masking
//!   key (kept apart from the JWT keys).
//! - [`node`]: the [`Node`] every connection shares, built by [`NodeBuilder`] (store, hub,
//!   metrics, compaction queue) for `relay serve` and the tests alike.
//! - [`http`]: the listeners on hyper. [`http::run`] serves `/ws` upgrades on the public listener
//!   and, in demo mode, the demo pages ([`http::demo`]); [`http::serve`] adds the admin listener
//!   (`/livez`, `/readyz`, `/metrics`: [`http::admin`]; the `/v1` API: [`http::api`], described
//!   in `docs/openapi.json`).
//! - [`auth`]: a token, room and codec decide an upgrade ([`auth::admit`]); [`limits`]: admission
//!   quotas (handshakes in progress, connections per participant, rooms per node) and message and
//!   byte rates per connection, participant and room.
//! - `session` (private): one task per connection. A client frame is decoded, held to the rates,
//!   checked against the connection's rights, then stored through the [`store`] or relayed; the
//!   room's live stream from the [`hub`] is written to the socket in batches, with catch-up,
//!   resume and resync. A frame in hand (rate waits, store calls) never holds up the outbound
//!   stream.
//! - What a payload needs read, and only there: [`mask`] (masking of typed values before they are
//!   stored), [`pages`] (the page timeline from Meta and FullSnapshot), [`native`] (placeholder
//!   snapshots of native screens), [`guide`] (guidance and call-signaling rates, ICE and TURN).
//! - [`store`]: the seam to where rooms live, as narrow traits ([`store::RoomLog`],
//!   [`store::Uploads`], [`store::TypedValues`], [`store::Archival`], [`store::Bus`],
//!   [`store::Presence`], [`store::Directory`]: the live rooms over every node).
//!   [`store::memory`] is embedded mode; [`store::redis`] is cluster mode
//!   (streams, one Lua append-and-publish, RESP3 pub/sub, presence, Redis Cluster).
//!   [`store::plan`] decides fresh / resume / resync for both.
//! - [`hub`]: the node's fan-out. Both backends hand it ordered entries; it keeps the one
//!   registry of rooms with subscribers here, their rings and lag accounting, and each entry's
//!   frames, encoded once per codec however many viewers receive it.
//! - [`compactor`]: archives room logs and writes recordings; [`export`] reads them back;
//!   [`render`] turns them into videos (`relay render`, the compactor's render stage).
//! - [`audit`]: the audit trail (target `audit`, JSON lines with --audit-log). [`telemetry`]:
//!   metrics, every series registered at 0 from the start. [`webhook`]: events POSTed to the
//!   integrator's endpoints, from an outbox (in-process, or Redis streams in cluster mode).
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
pub mod hub;
pub mod keys;
pub mod limits;
pub mod mask;
pub mod native;
pub mod node;
pub mod pages;
pub mod render;
mod session;
pub mod store;
pub mod telemetry;
pub mod webhook;

pub use http::{demo, run};
pub use node::{Node, NodeBuilder};
