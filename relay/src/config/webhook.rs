//! The webhook flags of `relay serve` and `relay compactor` ([`WebhookArgs`]) and their validated
//! form ([`WebhookConfig`]). What they drive is `crate::webhook`.

use std::time::Duration;

use clap::Args;

use super::ConfigError;

/// Webhook flags (both modes; `relay compactor` takes the same ones for `recording.*`).
#[derive(Debug, Clone, Default, Args)]
pub struct WebhookArgs {
    /// Where webhooks are POSTed: `URL` (every event) or `PATTERN=URL`, where PATTERN is an
    /// event type (`room.closed`), a prefix with `*` (`room.*`, `recording.*`) or `*`. Repeat
    /// the flag (or comma-separate in the environment) for several endpoints; an event goes to
    /// every endpoint that matches it. Without any, no webhook is sent.
    #[arg(
        long = "webhook-url",
        env = "RELAY_WEBHOOK_URLS",
        value_delimiter = ','
    )]
    pub webhook_url: Vec<String>,
    /// HMAC-SHA256 key of the `webhook-signature` header (required with --webhook-url; use 32+
    /// random bytes).
    #[arg(long, env = "RELAY_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Names the secret in the `webhook-key-id` header, so receivers can rotate keys.
    #[arg(long, env = "RELAY_WEBHOOK_KEY_ID", default_value = "default")]
    pub webhook_key_id: String,
    /// Time allowed for one delivery attempt (connect, send, status line).
    #[arg(long, env = "RELAY_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub webhook_timeout: Duration,
    /// Attempts per event and endpoint before it is dead-lettered.
    #[arg(long, env = "RELAY_WEBHOOK_MAX_ATTEMPTS", default_value_t = 10)]
    pub webhook_max_attempts: u32,
    /// Wait after the first failed attempt; it doubles per attempt, with jitter.
    #[arg(long, env = "RELAY_WEBHOOK_BACKOFF_BASE", default_value = "1s", value_parser = humantime::parse_duration)]
    pub webhook_backoff_base: Duration,
    /// Longest wait between two attempts.
    #[arg(long, env = "RELAY_WEBHOOK_BACKOFF_CAP", default_value = "5m", value_parser = humantime::parse_duration)]
    pub webhook_backoff_cap: Duration,
    /// Embedded mode: events waiting for delivery at most; past it new events are dropped
    /// (logged and counted in `relay_webhook_dropped_total`).
    #[arg(long, env = "RELAY_WEBHOOK_QUEUE", default_value_t = 10_000)]
    pub webhook_queue: usize,
    /// Embedded mode: dead letters kept in memory (the oldest goes first).
    #[arg(long, env = "RELAY_WEBHOOK_DEAD_LETTERS", default_value_t = 1000)]
    pub webhook_dead_letters: usize,
    /// Cluster mode: streams the outbox is split into by room (each delivered by one node at a
    /// time, so a room's events stay in order). Every node and compactor must use the same value.
    #[arg(long, env = "RELAY_WEBHOOK_PARTITIONS", default_value_t = 16)]
    pub webhook_partitions: u32,
}

/// One endpoint: the events it wants and where they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `*`, `prefix.*` or an exact event type.
    pub pattern: String,
    /// `http://` or `https://` URL.
    pub url: url::Url,
}

impl Endpoint {
    /// Whether an event type goes to this endpoint.
    pub fn wants(&self, kind: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => kind.starts_with(prefix),
            None => self.pattern == kind,
        }
    }
}

/// Validated webhook settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Endpoints; empty: webhooks are off.
    pub endpoints: Vec<Endpoint>,
    /// Signing key.
    pub secret: Vec<u8>,
    /// Its id (`webhook-key-id`).
    pub key_id: String,
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts before the dead-letter list.
    pub max_attempts: u32,
    /// First retry wait.
    pub backoff_base: Duration,
    /// Longest retry wait.
    pub backoff_cap: Duration,
    /// Embedded queue bound.
    pub queue: usize,
    /// Embedded dead letters kept.
    pub dead_letters: usize,
    /// Cluster outbox partitions.
    pub partitions: u32,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            endpoints: Vec::new(),
            secret: Vec::new(),
            key_id: "default".into(),
            timeout: Duration::from_secs(10),
            max_attempts: 10,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
            queue: 10_000,
            dead_letters: 1000,
            partitions: 16,
        }
    }
}

impl WebhookConfig {
    /// Whether any endpoint is configured.
    pub fn enabled(&self) -> bool {
        !self.endpoints.is_empty()
    }
}

/// Parses `URL` or `PATTERN=URL`.
pub fn parse_endpoint(s: &str) -> Result<Endpoint, ConfigError> {
    let s = s.trim();
    let (pattern, url) = match s.split_once('=') {
        // A `=` inside the URL's query is not a pattern separator.
        Some((p, u)) if !p.contains(':') && !p.contains('/') => (p.trim(), u.trim()),
        _ => ("*", s),
    };
    let bad = |why: String| ConfigError(format!("--webhook-url {s}: {why}"));
    let url = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad("needs an http:// or https:// URL".into()));
    }
    let star = pattern.find('*');
    if pattern.is_empty() || star.is_some_and(|i| i != pattern.len() - 1) {
        return Err(bad(format!(
            "pattern {pattern:?}: an event type, `prefix.*` or `*`"
        )));
    }
    Ok(Endpoint {
        pattern: pattern.to_owned(),
        url,
    })
}

impl TryFrom<&WebhookArgs> for WebhookConfig {
    type Error = ConfigError;

    fn try_from(a: &WebhookArgs) -> Result<Self, ConfigError> {
        let endpoints = a
            .webhook_url
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| parse_endpoint(s))
            .collect::<Result<Vec<_>, _>>()?;
        let secret = a.webhook_secret.clone().unwrap_or_default().into_bytes();
        if !endpoints.is_empty() && secret.is_empty() {
            return Err(ConfigError(
                "--webhook-url needs --webhook-secret (RELAY_WEBHOOK_SECRET)".into(),
            ));
        }
        if a.webhook_max_attempts == 0 || a.webhook_partitions == 0 || a.webhook_queue == 0 {
            return Err(ConfigError(
                "--webhook-max-attempts, --webhook-partitions and --webhook-queue must be > 0"
                    .into(),
            ));
        }
        if a.webhook_timeout.is_zero() || a.webhook_backoff_base.is_zero() {
            return Err(ConfigError(
                "--webhook-timeout and --webhook-backoff-base must be > 0".into(),
            ));
        }
        Ok(WebhookConfig {
            endpoints,
            secret,
            key_id: a.webhook_key_id.clone(),
            timeout: a.webhook_timeout,
            max_attempts: a.webhook_max_attempts,
            backoff_base: a.webhook_backoff_base,
            backoff_cap: a.webhook_backoff_cap.max(a.webhook_backoff_base),
            queue: a.webhook_queue,
            dead_letters: a.webhook_dead_letters,
            partitions: a.webhook_partitions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_take_an_optional_pattern() {
        let e = parse_endpoint("http://h/x?a=b").expect("plain");
        assert_eq!(e.pattern, "*");
        assert_eq!(e.url.as_str(), "http://h/x?a=b");
        let e = parse_endpoint("room.*=https://h/r").expect("pattern");
        assert!(e.wants("room.closed") && !e.wants("member.joined"));
        let e = parse_endpoint("recording.ready=http://h/").expect("exact");
        assert!(e.wants("recording.ready") && !e.wants("recording.failed"));
        assert!(parse_endpoint("ftp://h/").is_err());
        assert!(parse_endpoint("r*m=http://h/").is_err());
    }
}
