//! Node configuration: clap flags with `RELAY_*` environment fallbacks ([`args`]), validated into
//! a [`NodeConfig`] before anything binds. Tests build a [`NodeConfig`] directly.
//!
//! Not here: what the settings drive. Configuration sits below the node: it uses the settings'
//! own types and parsers (masking, keys, templates, ICE, quotas) and nothing that serves (no
//! node, HTTP or session module), so that nothing it uses can depend back on it through them.

use std::time::Duration;

mod args;
mod webhook;
pub use args::{LogFormat, RedisTlsArgs, ServeArgs};
pub use webhook::{parse_endpoint, Endpoint, WebhookArgs, WebhookConfig};

use crate::mask::MaskPolicy;
use crate::store::LogConfig;

/// Why a configuration was refused (exit code 64).
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// Validated settings of one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// HS256 default key (tokens without `kid`); empty: none.
    pub jwt_secret: Vec<u8>,
    /// HS256 keys by `kid`.
    pub jwt_keys: Vec<(String, Vec<u8>)>,
    /// Lifetime, audience and issuer rules of tokens (`accept_demo` is set from `demo_dir`).
    pub token_policy: crate::auth::TokenPolicy,
    /// Key of masking's typed-value hashes (never derived from the JWT keys).
    pub mask_key: [u8; 32],
    /// Recent chat on join.
    pub chat_history: usize,
    /// Largest accepted WebSocket message.
    pub max_frame_bytes: usize,
    /// Connection cap.
    pub max_connections: usize,
    /// Upgrade deadline.
    pub handshake_timeout: Duration,
    /// Join deadline.
    pub join_timeout: Duration,
    /// Ping interval.
    pub ping_interval: Duration,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Write deadline.
    pub write_timeout: Duration,
    /// Drain deadline.
    pub drain_timeout: Duration,
    /// Sustained frames per second per connection.
    pub max_msgs_per_sec: u32,
    /// Sustained bytes per second per connection.
    pub max_bytes_per_sec: u32,
    /// Hold-back budget of a connection over its rate.
    pub max_rate_delay: Duration,
    /// Violation budget per connection.
    pub max_violations: u32,
    /// Backlog bound per viewer, bytes.
    pub max_queue_bytes: u64,
    /// Deadline for a viewer that stays behind.
    pub slow_timeout: Duration,
    /// Member cap per room.
    pub max_room_members: usize,
    /// Allowed browser origins (empty: any).
    pub allowed_origins: Vec<String>,
    /// Largest stitched upload.
    pub max_upload_bytes: u64,
    /// Uploads in progress per participant and room.
    pub max_uploads: usize,
    /// Upload staging TTL.
    pub upload_ttl: Duration,
    /// Staging TTL of a participant's uploads once its last connection left the room.
    pub upload_orphan_ttl: Duration,
    /// Sustained frames per second per room.
    pub max_room_msgs_per_sec: u32,
    /// Sustained bytes per second per room.
    pub max_room_bytes_per_sec: u32,
    /// Tail size that triggers a `snapshot_request` (0: never).
    pub snapshot_after_bytes: u64,
    /// Default masking policy.
    pub mask_policy: MaskPolicy,
    /// The pages' own block / mask / ignore class names, besides rrweb's.
    pub mask_classes: std::sync::Arc<crate::mask::MaskClasses>,
    /// Native-page template directory.
    pub native_templates: Option<std::path::PathBuf>,
    /// Admin HTTP API key (None: API disabled).
    pub api_key: Option<String>,
    /// Archive directory of the in-process compactor (embedded mode with recordings on).
    pub archive_dir: Option<std::path::PathBuf>,
    /// Close rooms whose customer has been gone this long (embedded mode).
    pub customer_idle_close: Option<Duration>,
    /// Room log shape.
    pub log: LogConfig,
    /// Demo mode: the directory of the demo pages (None: demo mode off).
    pub demo_dir: Option<std::path::PathBuf>,
    /// STUN/TURN servers for calls.
    pub ice: crate::guide::IceConfig,
    /// Admission quotas and admin listener limits.
    pub quotas: crate::limits::QuotaConfig,
    /// Webhook endpoints, signing and delivery.
    pub webhooks: WebhookConfig,
}

impl NodeConfig {
    /// The rate settings ([`crate::limits`] knows them without knowing the whole config).
    pub fn rates(&self) -> crate::limits::RateConfig {
        crate::limits::RateConfig {
            max_msgs_per_sec: self.max_msgs_per_sec,
            max_bytes_per_sec: self.max_bytes_per_sec,
            max_room_msgs_per_sec: self.max_room_msgs_per_sec,
            max_room_bytes_per_sec: self.max_room_bytes_per_sec,
            max_frame_bytes: self.max_frame_bytes,
            max_rate_delay: self.max_rate_delay,
            max_violations: self.max_violations,
        }
    }

    /// Defaults with a given secret (for tests and embedding).
    pub fn with_secret(secret: &str) -> NodeConfig {
        NodeConfig {
            jwt_secret: secret.as_bytes().to_vec(),
            jwt_keys: Vec::new(),
            token_policy: crate::auth::TokenPolicy::default(),
            mask_key: rand::random(),
            chat_history: 50,
            max_frame_bytes: 1024 * 1024,
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(5),
            join_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            max_msgs_per_sec: 500,
            max_bytes_per_sec: 8 * 1024 * 1024,
            max_rate_delay: Duration::from_secs(5),
            max_violations: 20,
            max_queue_bytes: 8 * 1024 * 1024,
            slow_timeout: Duration::from_secs(30),
            max_room_members: 50,
            allowed_origins: Vec::new(),
            max_upload_bytes: 64 * 1024 * 1024,
            max_uploads: 4,
            upload_ttl: Duration::from_secs(600),
            upload_orphan_ttl: Duration::from_secs(30),
            max_room_msgs_per_sec: 2000,
            max_room_bytes_per_sec: 32 * 1024 * 1024,
            snapshot_after_bytes: 8 * 1024 * 1024,
            mask_policy: MaskPolicy::Inputs,
            mask_classes: Default::default(),
            native_templates: None,
            api_key: None,
            archive_dir: None,
            customer_idle_close: None,
            log: LogConfig::default(),
            demo_dir: None,
            ice: crate::guide::IceConfig::default(),
            quotas: crate::limits::QuotaConfig::default(),
            webhooks: WebhookConfig::default(),
        }
    }
}

impl TryFrom<&ServeArgs> for NodeConfig {
    type Error = ConfigError;

    fn try_from(a: &ServeArgs) -> Result<Self, ConfigError> {
        for (flag, d) in [
            ("--handshake-timeout", a.handshake_timeout),
            ("--join-timeout", a.join_timeout),
            ("--ping-interval", a.ping_interval),
            ("--idle-timeout", a.idle_timeout),
            ("--write-timeout", a.write_timeout),
            ("--slow-timeout", a.slow_timeout),
            ("--empty-room-ttl", a.empty_room_ttl),
            ("--presence-ttl", a.presence_ttl),
            ("--dedup-ttl", a.dedup_ttl),
            ("--room-ttl", a.room_ttl),
            ("--admin-header-timeout", a.admin_header_timeout),
            ("--admin-request-timeout", a.admin_request_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError(format!("{flag} must be longer than zero")));
            }
        }
        let jwt_secret = a.jwt_secret.clone().unwrap_or_default();
        let jwt_keys = crate::keys::parse_jwt_keys(&a.jwt_keys).map_err(ConfigError)?;
        if jwt_secret.is_empty() && jwt_keys.is_empty() {
            return Err(ConfigError(
                "no token secret: pass --jwt-secret or set RELAY_JWT_SECRET (or give --jwt-keys / \
                 RELAY_JWT_KEYS); it must not be empty"
                    .into(),
            ));
        }
        if a.max_token_lifetime.is_zero() {
            return Err(ConfigError(
                "--max-token-lifetime must be longer than zero".into(),
            ));
        }
        if a.mask_key.as_deref().is_some_and(|k| k.len() < 16) {
            return Err(ConfigError(
                "--mask-key / RELAY_MASK_KEY must be at least 16 characters".into(),
            ));
        }
        if a.demo
            && !a.demo_unsafe_public
            && (!a.listen.ip().is_loopback() || a.redis_url.is_some())
        {
            return Err(ConfigError(format!(
                "--demo hands out tokens to anyone who reaches the node, so it only runs embedded on a loopback --listen (got {}{}); pass --demo-unsafe-public to run it anyway",
                a.listen,
                if a.redis_url.is_some() { " with --redis-url" } else { "" }
            )));
        }
        if a.listen == a.admin_listen && a.listen.port() != 0 {
            return Err(ConfigError(
                "--listen and --admin-listen must differ".into(),
            ));
        }
        if a.max_frame_bytes < 1024 {
            return Err(ConfigError(
                "--max-frame-bytes must be at least 1024".into(),
            ));
        }
        if a.room_buffer == 0 || a.max_connections == 0 {
            return Err(ConfigError(
                "--room-buffer and --max-connections must be positive".into(),
            ));
        }
        if a.max_msgs_per_sec == 0 || a.max_bytes_per_sec == 0 || a.max_violations == 0 {
            return Err(ConfigError(
                "--max-msgs-per-sec, --max-bytes-per-sec and --max-violations must be positive"
                    .into(),
            ));
        }
        if a.max_uploads == 0 || a.upload_ttl.is_zero() {
            return Err(ConfigError(
                "--max-uploads and --upload-ttl must be positive".into(),
            ));
        }
        if a.api_key
            .as_deref()
            .is_some_and(|k| !k.is_empty() && k.len() < 16)
        {
            return Err(ConfigError(
                "--api-key / RELAY_API_KEY must be at least 16 characters".into(),
            ));
        }
        if let Err(e) = crate::native::Templates::load(a.native_templates.as_deref()) {
            return Err(ConfigError(format!("--native-templates: {e}")));
        }
        if a.max_pending_handshakes == 0
            || a.max_connections_per_participant == 0
            || a.max_rooms == 0
            || a.admin_max_connections == 0
        {
            return Err(ConfigError(
                "--max-pending-handshakes, --max-connections-per-participant, --max-rooms and \
                 --admin-max-connections must be positive"
                    .into(),
            ));
        }
        if a.max_room_members == 0 {
            return Err(ConfigError("--max-room-members must be positive".into()));
        }
        let demo_dir = if a.demo {
            Some(
                resolve_demo_dir(a.demo_dir.as_deref())
                    .map_err(|e| ConfigError(format!("--demo: {e}")))?,
            )
        } else {
            None
        };
        let ice = crate::guide::IceConfig::parse(
            a.ice_servers.as_deref(),
            &a.stun,
            &a.turn,
            a.turn_secret.as_deref(),
            a.turn_ttl,
        )
        .map_err(ConfigError)?;
        if a.idle_timeout <= a.ping_interval {
            return Err(ConfigError(
                "--idle-timeout must be longer than --ping-interval".into(),
            ));
        }
        Ok(NodeConfig {
            jwt_secret: jwt_secret.into_bytes(),
            jwt_keys,
            token_policy: crate::auth::TokenPolicy {
                max_lifetime: a.max_token_lifetime,
                audience: a.jwt_audience.clone().filter(|s| !s.is_empty()),
                issuer: a.jwt_issuer.clone().filter(|s| !s.is_empty()),
                accept_demo: a.demo,
            },
            // Replaced by `relay serve` (Redis-shared in cluster mode) unless --mask-key is given.
            mask_key: a
                .mask_key
                .as_deref()
                .map_or_else(rand::random, crate::keys::mask_key_from),
            chat_history: a.chat_history,
            max_frame_bytes: a.max_frame_bytes,
            max_connections: a.max_connections,
            handshake_timeout: a.handshake_timeout,
            join_timeout: a.join_timeout,
            ping_interval: a.ping_interval,
            idle_timeout: a.idle_timeout,
            write_timeout: a.write_timeout,
            drain_timeout: a.drain_timeout,
            max_msgs_per_sec: a.max_msgs_per_sec,
            max_bytes_per_sec: a.max_bytes_per_sec,
            max_rate_delay: a.max_rate_delay,
            max_violations: a.max_violations,
            max_queue_bytes: a.max_queue_bytes,
            slow_timeout: a.slow_timeout,
            max_room_members: a.max_room_members,
            allowed_origins: a
                .allowed_origins
                .iter()
                .filter(|o| !o.is_empty())
                .cloned()
                .collect(),
            max_upload_bytes: a.max_upload_bytes,
            max_uploads: a.max_uploads,
            upload_ttl: a.upload_ttl,
            upload_orphan_ttl: a.upload_orphan_ttl,
            max_room_msgs_per_sec: a.max_room_msgs_per_sec.max(1),
            max_room_bytes_per_sec: a.max_room_bytes_per_sec.max(1),
            snapshot_after_bytes: a.snapshot_after_bytes,
            mask_policy: a.mask_policy,
            mask_classes: std::sync::Arc::new(crate::mask::MaskClasses {
                block: class_names("--mask-block-class", &a.mask_block_class)?,
                mask: class_names("--mask-text-class", &a.mask_text_class)?,
                ignore: class_names("--mask-ignore-class", &a.mask_ignore_class)?,
            }),
            native_templates: a.native_templates.clone(),
            api_key: a.api_key.clone().filter(|k| !k.is_empty()),
            archive_dir: a.recordings.then(|| a.archive_dir.clone()),
            customer_idle_close: Some(a.customer_idle_close).filter(|d| !d.is_zero()),
            log: LogConfig {
                chat_retain: a.chat_retain.max(a.chat_history).max(1),
                dedup_window: a.dedup_window.max(1),
                max_log_bytes: a.max_log_bytes,
                room_buffer: a.room_buffer,
                room_buffer_bytes: a.max_queue_bytes,
                empty_room_ttl: a.empty_room_ttl,
                max_staged_bytes: a.max_staged_bytes,
                max_memory_bytes: if a.max_memory_bytes == 0 {
                    available_memory() / 2
                } else {
                    a.max_memory_bytes
                },
                keep_until_archived: a.recordings,
            },
            demo_dir,
            ice,
            quotas: crate::limits::QuotaConfig {
                max_pending_handshakes: a.max_pending_handshakes,
                max_pending_per_address: a.max_pending_per_address,
                max_connections_per_participant: a.max_connections_per_participant,
                max_rooms: a.max_rooms,
                admin_max_connections: a.admin_max_connections,
                admin_header_timeout: a.admin_header_timeout,
                admin_request_timeout: a.admin_request_timeout,
                metrics_token: a.metrics_token.clone().filter(|t| !t.is_empty()),
            },
            webhooks: WebhookConfig::try_from(&a.webhook)?,
        })
    }
}

/// Physical memory, or the cgroup (v2, then v1) limit if lower; 0 if unknown (no budget then).
pub fn available_memory() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024);
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok())
    .min();
    match cgroup {
        Some(c) if c > 0 && (total == 0 || c < total) => c,
        _ => total,
    }
}

/// Class names as a page writes them in `class`: no white space; empty entries are skipped.
fn class_names(flag: &str, names: &[String]) -> Result<Vec<String>, ConfigError> {
    let names: Vec<String> = names
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    match names
        .iter()
        .find(|n| n.chars().any(char::is_whitespace) || n.len() > 128)
    {
        Some(bad) => Err(ConfigError(format!(
            "{flag}: {bad:?} is not a class name (no white space, at most 128 bytes)"
        ))),
        None => Ok(names),
    }
}

/// The files a demo directory must hold.
const DEMO_REQUIRED: [&str; 3] = ["index.html", "customer.html", "agent.html"];

/// Where the built demo pages are (`--demo`): `explicit` (`--demo-dir`) if given, else the first
/// of `./sdk/demo/dist`, this workspace's `sdk/demo/dist` (where the binary was built), and
/// `demo/` or `sdk/demo/dist` next to the binary. The directory must hold `index.html`,
/// `customer.html` and `agent.html`; the answer is canonical.
pub fn resolve_demo_dir(explicit: Option<&std::path::Path>) -> Result<std::path::PathBuf, String> {
    use std::path::{Path, PathBuf};
    let candidates: Vec<PathBuf> = match explicit {
        Some(dir) => vec![dir.to_path_buf()],
        None => {
            let mut c = vec![PathBuf::from("sdk/demo/dist")];
            c.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/demo/dist"));
            if let Some(exe_dir) = std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(Path::to_path_buf))
            {
                c.push(exe_dir.join("demo"));
                c.push(exe_dir.join("sdk/demo/dist"));
            }
            c
        }
    };
    for dir in &candidates {
        if DEMO_REQUIRED.iter().all(|f| dir.join(f).is_file()) {
            return dir
                .canonicalize()
                .map_err(|e| format!("{}: {e}", dir.display()));
        }
    }
    let looked: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
    Err(format!(
        "the demo pages are not built (looked for index.html, customer.html and agent.html in {}): run `npm ci && npm run build` in sdk/demo, or pass --demo-dir",
        looked.join(", ")
    ))
}
