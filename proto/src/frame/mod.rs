//! Typed frames on top of the [`Envelope`](crate::Envelope): what a client sends
//! ([`ClientFrame`], in `client`, validated on decode), what the relay sends ([`ServerFrame`], in
//! `server`; `event`, its `event` frame encoded from JSON text), and the small string enums
//! they carry (`reasons`).
//!
//! This module only gathers them (and re-exports the leaf types frames name, from `types`); the
//! codecs and the envelope are `codec`, below the frames: `codec` never uses a frame.

mod client;
mod event;
mod reasons;
mod server;

pub use crate::types::{Limits, Member, Position};
pub use client::{ClientFrame, ClientFrameKind};
pub use event::encode_event;
pub use reasons::{JoinMode, ResyncReason, SnapshotReason};
pub use server::{ServerFrame, ServerFrameKind};
