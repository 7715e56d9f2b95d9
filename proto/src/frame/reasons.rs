//! The small enums frames carry as strings: how a `join` was served ([`JoinMode`]), why a client
//! is resynced ([`ResyncReason`]) and why the relay asks for a snapshot ([`SnapshotReason`]).
//!
//! Their wire strings come from one strum derive (`snake_case` of the variant names); `ALL` is
//! for metrics. The frames that carry them live in `client` and `server`; this module uses
//! nothing of the crate but its string helpers.

use crate::types::{all, find};

/// How a `join` was served.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::EnumCount,
)]
#[strum(serialize_all = "snake_case")]
pub enum JoinMode {
    /// No resume point was given: keyframe, tail and recent chat follow.
    Fresh,
    /// Exactly the entries after the resume point follow.
    Resume,
    /// The resume point could not be served; a full state (keyframe, tail, missed chat) follows.
    /// The client must reset its view.
    Resync,
}

impl JoinMode {
    /// Every mode.
    pub const ALL: [JoinMode; <JoinMode as strum::EnumCount>::COUNT] =
        all(<JoinMode as strum::VariantArray>::VARIANTS);
    /// Wire string.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
    /// The mode whose wire string is `s`.
    pub fn parse(s: &str) -> Option<Self> {
        find(s)
    }
}

/// Why a client is resynced instead of resumed.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::EnumCount,
)]
#[strum(serialize_all = "snake_case")]
pub enum ResyncReason {
    /// The room's log was recreated (new epoch); old offsets mean nothing.
    EpochChanged,
    /// The entries after the resume point were trimmed (older than the keyframe).
    Trimmed,
    /// The client fell too far behind the live stream.
    Lagged,
    /// The resume offset is ahead of the room's log.
    AheadOfLog,
}

impl ResyncReason {
    /// Every reason, for metrics.
    pub const ALL: [ResyncReason; <ResyncReason as strum::EnumCount>::COUNT] =
        all(<ResyncReason as strum::VariantArray>::VARIANTS);
    /// Wire string.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
    /// The reason whose wire string is `s`.
    pub fn parse(s: &str) -> Option<Self> {
        find(s)
    }
}

/// Why the relay asks the customer for a fresh full snapshot.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::EnumCount,
)]
#[strum(serialize_all = "snake_case")]
pub enum SnapshotReason {
    /// The events after the room's keyframe passed the node's size threshold; a new keyframe
    /// keeps catch-up small.
    TailTooLarge,
    /// The room shows a native-page placeholder but the customer sent web-page events: the web
    /// view came back without a new snapshot.
    NativePageLeft,
    /// The room has no keyframe (it was trimmed or never sent).
    NoKeyframe,
}

impl SnapshotReason {
    /// Every reason.
    pub const ALL: [SnapshotReason; <SnapshotReason as strum::EnumCount>::COUNT] =
        all(<SnapshotReason as strum::VariantArray>::VARIANTS);
    /// Wire string.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
    /// The reason whose wire string is `s`.
    pub fn parse(s: &str) -> Option<Self> {
        find(s)
    }
}
