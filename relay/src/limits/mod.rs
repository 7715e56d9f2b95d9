//! Every quota and rate of the node, in three parts:
//! - [`admission`]: before and during the upgrade: handshakes in progress, upgraded connections
//!   per participant, rooms per node (and the admin listener's settings);
//! - [`rates`]: the message and byte rates shared by a participant's connections and by a room's
//!   participants on this node ([`SharedRates`]), and what the store applies across nodes
//!   ([`Rated`], [`EntryRates`], [`Gcra`]);
//! - `conn`: one connection's own rates, hold-back budget and violation budget, which a session
//!   takes every client frame through.
//!
//! It decides and counts; it sends nothing to a client and closes nothing (the accept path and
//! the session act on its answers).

pub mod admission;
pub(crate) mod conn;
pub mod rates;

pub use admission::{ConnGuard, PendingGuard, QuotaConfig, Quotas};
pub use rates::{participant_key, EntryRates, Gcra, RateConfig, Rated, SharedRates};
