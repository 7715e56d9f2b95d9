//! What a token says. Signing and verification (HS256) live in the relay; the claims and the id
//! rules are part of the protocol.

use serde::{Deserialize, Serialize};

/// A participant's role in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The person being assisted; the only role that publishes rrweb events.
    Customer,
    /// The person assisting; watches the replay and chats.
    Agent,
}

impl Role {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Agent => "agent",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "customer" => Ok(Role::Customer),
            "agent" => Ok(Role::Agent),
            other => Err(format!(
                "unknown role {other:?} (expected customer or agent)"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    pub fn can(&self, cap: crate::Capability) -> bool {
        match (self.role, cap) {
            (Role::Customer, crate::Capability::Guide) => false,
            (Role::Customer, crate::Capability::Call) => true,
            (Role::Agent, _) => self
                .caps
                .as_ref()
                .is_none_or(|caps| caps.iter().any(|c| c == cap.as_str())),
        }
    }
}

/// Checks a room or participant id: 1 to [`crate::MAX_ID_LEN`] bytes of `A-Z a-z 0-9 . _ : -`,
/// not made only of dots. The alphabet keeps ids safe inside Redis keys (no `{`/`}` hash-tag
/// breakers), URLs and logs; with the dots rule an id is also a safe single path component
/// (recordings are stored under `<archive>/<room>/`, and `.` or `..` would leave it).
pub fn validate_id(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > crate::MAX_ID_LEN {
        return Err(format!(
            "{what} must be 1 to {} bytes long",
            crate::MAX_ID_LEN
        ));
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
