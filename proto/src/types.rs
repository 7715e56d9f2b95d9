//! The protocol's leaf types: who a participant is ([`Role`], [`Member`]), where a client left off
//! ([`Position`]), the node's announced [`Limits`], and the id and text size bounds.
//!
//! Everything else in the crate may use this module; it uses nothing of the crate. Besides the
//! types it holds only the crate's small string helpers (enum lookup by name, truncation); no
//! frame, codec or validation logic (frames: `frame`; the envelope: `codec`; token claims and the
//! id syntax: `auth`).

use serde::{Deserialize, Serialize};

/// Longest accepted client-chosen id (chat message id, event id, participant id, room id), in bytes.
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted chat text, in bytes of UTF-8.
pub const MAX_CHAT_TEXT: usize = 8 * 1024;

/// A participant's role in a room.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Role {
    /// The person being assisted; the only role that publishes rrweb events.
    Customer,
    /// The person assisting; watches the replay and chats.
    Agent,
    /// A server-side sender (a bot, the IM desk) whose chat messages the backend posts through
    /// the HTTP API (`POST /v1/rooms/{room}/chat`). Only ever in a chat's `from`: never a token's
    /// role (refused as `token_invalid_claims`), never present in a room.
    System,
}

impl Role {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        find(s)
            .filter(|r| *r != Role::System)
            .ok_or_else(|| format!("unknown role {s:?} (expected customer or agent)"))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// Participant id (the token's `sub`).
    pub id: String,
    /// Role.
    pub role: Role,
}

/// A point in a room's log: where a client left off.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// The room epoch the offset belongs to.
    pub epoch: String,
    /// The last offset the client processed.
    pub offset: u64,
}

/// A node's size limits, announced in `joined` so that clients size their chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Limits {
    /// Largest frame the node accepts, in bytes (larger ones close the connection with 1009).
    pub max_frame_bytes: u64,
    /// Largest event an upload may stitch, in bytes.
    pub max_upload_bytes: u64,
    /// Recommended chunk data size, in bytes (fits a frame in either codec).
    pub chunk_bytes: u64,
}

/// The variant of a string-mapped enum (strum's `IntoStaticStr` + `VariantArray`) whose string
/// is `s`: the one parser behind every `parse` / `FromStr` of the crate's enums.
pub(crate) fn find<T>(s: &str) -> Option<T>
where
    T: strum::VariantArray + Copy + Into<&'static str>,
{
    T::VARIANTS.iter().copied().find(|v| (*v).into() == s)
}

/// strum's `VARIANTS` slice as an array, for the `ALL` constants (`[T; N]`, so that callers may
/// `map` them). `N` is the derive's `COUNT`, so the array is always every variant.
pub(crate) const fn all<T: Copy, const N: usize>(variants: &[T]) -> [T; N] {
    match variants.first_chunk::<N>() {
        Some(a) if variants.len() == N => *a,
        _ => panic!("ALL must list every variant"),
    }
}

/// `s` cut to at most `max` bytes on a char boundary (for unknown names quoted in errors).
pub(crate) fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
