//! Key material besides the JWT verification itself ([`crate::auth`]): parsing `--jwt-keys`, and
//! the key of masking's typed-value hashes, which must not depend on the JWT keys (rotating
//! those would change every hash, and echoes of values typed before the rotation would no longer
//! be recognised).

use crate::store::redis::RedisStore;
use crate::store::StoreError;

/// Redis key holding the cluster's shared mask key (hex), written once with `SET NX`.
pub const MASK_KEY_REDIS_KEY: &str = "ar:mask-key";

/// `KID=SECRET` entries of `--jwt-keys`: kids 1-128 of `A-Z a-z 0-9 . _ : -`, unique; secrets not
/// empty.
pub fn parse_jwt_keys(entries: &[String]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in entries.iter().filter(|e| !e.is_empty()) {
        let Some((kid, secret)) = entry.split_once('=') else {
            return Err("--jwt-keys / RELAY_JWT_KEYS entries are KID=SECRET".into());
        };
        assist_relay_proto::validate_id("--jwt-keys kid", kid)?;
        if secret.is_empty() {
            return Err(format!("--jwt-keys: the secret of {kid:?} is empty"));
        }
        if keys.iter().any(|(k, _)| k == kid) {
            return Err(format!("--jwt-keys: kid {kid:?} given twice"));
        }
        keys.push((kid.to_owned(), secret.as_bytes().to_vec()));
    }
    Ok(keys)
}

/// The 32-byte key of masking's typed-value hashes from a `--mask-key` (or the value shared in
/// Redis).
pub fn mask_key_from(secret: &str) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"assist-relay/mask-key/v1\0");
    h.update(secret.as_bytes());
    h.finalize().into()
}

/// The cluster's mask key: the first node to start stores a random one in Redis (`SET NX`, no
/// expiry), every node reads it back, so all of them hash typed values alike without any
/// configuration. A `--mask-key` given to the nodes takes precedence (then this is not called).
pub async fn shared_mask_key(store: &RedisStore) -> Result<[u8; 32], StoreError> {
    let fresh = hex::encode(rand::random::<[u8; 32]>());
    let _: Option<String> = store
        .command(
            redis::cmd("SET")
                .arg(MASK_KEY_REDIS_KEY)
                .arg(&fresh)
                .arg("NX"),
        )
        .await?;
    let stored: Option<String> = store
        .command(redis::cmd("GET").arg(MASK_KEY_REDIS_KEY))
        .await?;
    match stored {
        Some(v) if !v.is_empty() => Ok(mask_key_from(&v)),
        _ => Err(StoreError::Corrupt(format!(
            "{MASK_KEY_REDIS_KEY} is missing or empty after SET NX"
        ))),
    }
}
