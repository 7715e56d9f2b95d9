//! What a token says. Signing and verification (HS256) live in the relay; the claims and the id
//! rules are part of the protocol.

use serde::{Deserialize, Serialize};

use crate::guide::Capability;
/// A participant's role in a room (defined with the other leaf types in `types`).
pub use crate::types::Role;
use crate::types::MAX_ID_LEN;

/// The claims of an HS256 JWT that admits one participant to one room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Participant id, unique within the room (see [`validate_id`]).
    pub sub: String,
    /// The room this token admits to (see [`validate_id`]).
    pub room: String,
    /// The participant's role.
    pub role: Role,
    /// Expiry, seconds since the Unix epoch. Required.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Masking policy for what this participant publishes (`none`, `passwords`, `inputs`,
    /// `inputs+text`); the node's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    /// What the participant may do beyond its role: `guide` (send guidance), `call` (signal
    /// calls). Absent: an agent may do both (tokens minted before capabilities keep working);
    /// present: exactly the listed ones. Unknown entries are ignored. Customers always signal
    /// calls and never guide, whatever the claim says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<Vec<String>>,
}

impl Claims {
    /// Whether this token grants `cap` (see [`Claims::caps`]).
    pub fn can(&self, cap: Capability) -> bool {
        match (self.role, cap) {
            (Role::Customer, Capability::Guide) => false,
            (Role::Customer, Capability::Call) => true,
            (Role::System, _) => false,
            (Role::Agent, _) => self
                .caps
                .as_ref()
                .is_none_or(|caps| caps.iter().any(|c| c == cap.as_str())),
        }
    }
}

/// Checks a room or participant id: 1 to [`MAX_ID_LEN`] bytes of `A-Z a-z 0-9 . _ : -`,
/// not made only of dots. The alphabet keeps ids safe inside Redis keys (no `{`/`}` hash-tag
/// breakers), URLs and logs; with the dots rule an id is also a safe single path component
/// (recordings are stored under `<archive>/<room>/`, and `.` or `..` would leave it).
pub fn validate_id(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(format!("{what} must be 1 to {} bytes long", MAX_ID_LEN));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(format!(
            "{what} contains {c:?}; allowed are A-Z a-z 0-9 . _ : -"
        ));
    }
    if id.bytes().all(|b| b == b'.') {
        return Err(format!(
            "{what} must not be made only of dots (`.` and `..` are not safe path components)"
        ));
    }
    Ok(())
}
