//! Masking policy and configuration: the room's [`MaskPolicy`], the page's class names
//! ([`MaskClasses`]), the bounds of the state, the error an unmaskable event gets, and the cheap
//! pre-check the relay runs before parsing.
//!
//! It knows nothing of the event walk (`walk`, `mutation`) or of how strings are masked (`text`).

use std::fmt;
use std::str::FromStr;

/// Most node ids a [`RoomMask`] remembers per page; past this it fails closed.
pub const MAX_TRACKED_IDS: usize = 200_000;
/// Most typed-value hashes a [`RoomMask`] remembers (oldest forgotten first).
pub const MAX_TYPED_VALUES: usize = 4096;
/// Deepest JSON nesting accepted (about half as many DOM levels).
pub const MAX_NESTING: usize = 8192;

/// Masking policy of a room. Wire/flag strings: "none", "passwords", "inputs", "inputs+text"
/// (from strum's derive; `ALL` in declaration order).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::EnumCount,
)]
#[strum(serialize_all = "snake_case")]
pub enum MaskPolicy {
    /// Nothing is masked.
    None,
    /// Password inputs, `rr-block` elements.
    Passwords,
    /// Every input value, echoes of typed values, `rr-block` elements (the default: card and ID
    /// numbers are as secret as passwords).
    #[default]
    Inputs,
    /// As `Inputs`, plus the text of `rr-mask` subtrees.
    #[strum(serialize = "inputs+text")]
    InputsText,
}

impl MaskPolicy {
    /// Every policy, from least to most masking.
    pub const ALL: [MaskPolicy; <MaskPolicy as strum::EnumCount>::COUNT] = {
        let v = <MaskPolicy as strum::VariantArray>::VARIANTS;
        [v[0], v[1], v[2], v[3]]
    };

    /// The wire/flag name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses a wire/flag name (ASCII case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }

    /// Whether every input value (not only passwords) is masked.
    pub(super) fn all_inputs(self) -> bool {
        matches!(self, MaskPolicy::Inputs | MaskPolicy::InputsText)
    }

    /// Whether `rr-mask` text is masked.
    pub(super) fn text(self) -> bool {
        self == MaskPolicy::InputsText
    }
}

impl FromStr for MaskPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| {
            format!("unknown mask policy {s:?} (expected none, passwords, inputs or inputs+text)")
        })
    }
}

impl fmt::Display for MaskPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an event could not be masked (it is then refused, never passed through unmasked).
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    /// Not JSON.
    #[error("event is not valid JSON: {0}")]
    Json(String),
    /// Not an rrweb event this module can mask (or nested deeper than [`MAX_NESTING`]).
    #[error("event is not a maskable rrweb event: {0}")]
    Shape(String),
}

/// Cheap check the relay uses to skip parsing: whether an event of this rrweb type/source can
/// need masking under `policy` (FullSnapshots, Mutations and Input events, unless `none`).
pub fn may_need_masking(policy: MaskPolicy, kind: u8, source: Option<u8>) -> bool {
    policy != MaskPolicy::None && (kind == 2 || (kind == 3 && matches!(source, Some(0 | 5))))
}

/// The class names a page marks elements with. rrweb's defaults (`rr-block`, `rr-mask`,
/// `rr-ignore`) always count; a deployment adds its pages' own (`--mask-block-class`,
/// `--mask-text-class`, `--mask-ignore-class`), for recorders configured with other names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaskClasses {
    /// Extra classes that block an element like `rr-block`.
    pub block: Vec<String>,
    /// Extra classes that mask an element's text like `rr-mask`.
    pub mask: Vec<String>,
    /// Extra classes that mark an element like `rr-ignore`.
    pub ignore: Vec<String>,
}

impl MaskClasses {
    /// Whether a `class` attribute holds a block, a mask and an ignore class.
    pub(super) fn flags(&self, class: &str) -> (bool, bool, bool) {
        let mut flags = (false, false, false);
        let has = |extra: &[String], token: &str| extra.iter().any(|c| c == token);
        for token in class.split_ascii_whitespace() {
            flags.0 |= token == "rr-block" || has(&self.block, token);
            flags.1 |= token == "rr-mask" || has(&self.mask, token);
            flags.2 |= token == "rr-ignore" || has(&self.ignore, token);
        }
        flags
    }
}
