//! The Lua scripts of the Redis store, loaded from `scripts/*.lua`. Each script names its KEYS
//! and ARGV in a header comment and binds them to named locals at its top; the Rust call sites
//! pass them in that order. This module owns loading them, not calling them.
//!
//! Preludes: `staging.lua` (the room's staging tally) runs before `stage`, `drop` and `release`;
//! `reap.lua` (expired presence) runs before `enter` and `exit`, and alone as `reap`.

use redis::Script;

const APPEND: &str = include_str!("scripts/append.lua");
const SEAL: &str = include_str!("scripts/seal.lua");
const ARCHIVED: &str = include_str!("scripts/archived.lua");
const STAGING: &str = include_str!("scripts/staging.lua");
const STAGE: &str = include_str!("scripts/stage.lua");
const DROP: &str = include_str!("scripts/drop.lua");
const RELEASE: &str = include_str!("scripts/release.lua");
const REAP: &str = include_str!("scripts/reap.lua");
const ENTER: &str = include_str!("scripts/enter.lua");
const EXIT: &str = include_str!("scripts/exit.lua");
const RELAY: &str = include_str!("scripts/relay.lua");
const LIVE: &str = include_str!("scripts/live.lua");

/// Every script, hashed once (EVALSHA, falling back to EVAL after a server restart).
pub(super) struct Scripts {
    /// `append.lua`: the room-log cap rule of `store/cap.rs` is mirrored there; keep the two in
    /// step (the shared test `relay/tests/quota.rs` runs against both backends).
    pub(super) append: Script,
    pub(super) stage: Script,
    pub(super) drop_up: Script,
    pub(super) release: Script,
    pub(super) seal: Script,
    pub(super) archived: Script,
    pub(super) enter: Script,
    pub(super) exit: Script,
    pub(super) reap: Script,
    pub(super) relay: Script,
    pub(super) live: Script,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        Scripts {
            append: Script::new(APPEND),
            stage: Script::new(&format!("{STAGING}{STAGE}")),
            drop_up: Script::new(&format!("{STAGING}{DROP}")),
            release: Script::new(&format!("{STAGING}{RELEASE}")),
            seal: Script::new(SEAL),
            archived: Script::new(ARCHIVED),
            enter: Script::new(&format!("{REAP}{ENTER}")),
            exit: Script::new(&format!("{REAP}{EXIT}")),
            reap: Script::new(&format!("{REAP}return left")),
            relay: Script::new(RELAY),
            live: Script::new(LIVE),
        }
    }
}
