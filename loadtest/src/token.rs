//! Participant tokens: HS256 JWTs minted from the relay's shared secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assist_relay_proto::{Claims, Role};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// Mints tokens with one secret.
pub struct Minter {
    key: EncodingKey,
    ttl: Duration,
}

impl Minter {
    /// Tokens valid for `ttl` from when they are minted.
    pub fn new(secret: &[u8], ttl: Duration) -> Minter {
        assist_relay_proto::jwt::install();
        Minter {
            key: EncodingKey::from_secret(secret),
            ttl,
        }
    }

    /// A token for one participant of one room.
    pub fn mint(&self, sub: &str, room: &str, role: Role) -> anyhow::Result<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = Claims {
            sub: sub.to_owned(),
            room: room.to_owned(),
            role,
            exp: now + self.ttl.as_secs().max(60),
            iat: Some(now),
            mask: None,
            caps: None,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.key,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn minted_token_verifies_with_the_same_secret() {
        let m = Minter::new(b"secret", Duration::from_secs(600));
        let t = m.mint("agent-1", "room-1", Role::Agent).expect("mint");
        let data = jsonwebtoken::decode::<Claims>(
            &t,
            &DecodingKey::from_secret(b"secret"),
            &Validation::new(Algorithm::HS256),
        )
        .expect("verifies");
        assert_eq!(data.claims.sub, "agent-1");
        assert_eq!(data.claims.role, Role::Agent);
    }
}
