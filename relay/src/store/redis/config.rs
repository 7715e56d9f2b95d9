//! Settings of the Redis backend: the URL (or Cluster seeds), TLS material, sizes and TTLs, and
//! the redaction of passwords from URLs before they are logged. No connection is made here.

use std::time::Duration;

/// Settings of the Redis backend.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db`, `rediss://` (TLS) or `redis+unix:///path`; with
    /// `cluster`, a comma-separated list of seed nodes of a Redis Cluster.
    pub url: String,
    /// Certificates for `rediss://` (None: the system's roots, no client certificate).
    pub tls: Option<RedisTls>,
    /// Payloads up to this size travel inside pub/sub messages; larger ones by reference.
    pub inline_max: usize,
    /// A connection's presence expires this long after its node last refreshed it.
    pub presence_ttl: Duration,
    /// How long idempotency keys are remembered.
    pub dedup_ttl: Duration,
    /// Room keys expire this long after the room's last member activity.
    pub room_ttl: Duration,
    /// Talk to a Redis Cluster (sharded pub/sub, SSUBSCRIBE/SPUBLISH) instead of one server.
    pub cluster: bool,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redacted_url(&self.url))
            .field("tls", &self.tls.is_some())
            .field("inline_max", &self.inline_max)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// PEM files for TLS to Redis.
#[derive(Clone, Default)]
pub struct RedisTls {
    /// Root certificates that verify the server, instead of the system's.
    pub ca: Option<Vec<u8>>,
    /// Client certificate (mutual TLS), with `client_key`.
    pub client_cert: Option<Vec<u8>>,
    /// Private key of `client_cert`.
    pub client_key: Option<Vec<u8>>,
}

impl RedisTls {
    pub(super) fn certificates(&self) -> redis::TlsCertificates {
        let client_tls = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            _ => None,
        };
        redis::TlsCertificates {
            client_tls,
            root_cert: self.ca.clone(),
        }
    }
}

/// The Redis URL (or comma-separated seeds) with passwords replaced by `***`, for logs.
pub fn redacted_url(urls: &str) -> String {
    urls.split(',')
        .map(|u| redact_one(u.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

fn redact_one(u: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(u) else {
        return "<unparsable URL>".into();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    // `redis+unix:` URLs carry the password as `?pass=`.
    let secret = |k: &str| k == "pass" || k == "password";
    if parsed.query_pairs().any(|(k, _)| secret(&k)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::redacted_url;

    #[test]
    fn passwords_are_redacted_from_logged_urls() {
        assert_eq!(
            redacted_url("redis://:s3cret@10.0.0.7:6379/0"),
            "redis://:***@10.0.0.7:6379/0"
        );
        assert_eq!(
            redacted_url("rediss://relay:s3cret@a:6380,rediss://relay:s3cret@b:6380"),
            "rediss://relay:***@a:6380,rediss://relay:***@b:6380"
        );
        assert_eq!(
            redacted_url("redis+unix:///run/redis.sock?db=1&pass=s3cret"),
            "redis+unix:///run/redis.sock?db=1&pass=***"
        );
        assert_eq!(redacted_url("redis://10.0.0.7"), "redis://10.0.0.7");
        assert!(!redacted_url("not a url s3cret").contains("s3cret"));
    }
}
