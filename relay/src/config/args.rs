//! The `relay serve` command line: clap flags with `RELAY_*` environment fallbacks
//! ([`ServeArgs`]), and the Redis TLS flags `relay compactor` shares. Only parsing: what the
//! values mean together is checked in `super` (`NodeConfig::try_from`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::ConfigError;
use crate::mask::MaskPolicy;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable, coloured when on a terminal.
    Pretty,
}

/// `relay serve` flags.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address of the public WebSocket listener (path /ws).
    #[arg(long, env = "RELAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the admin listener (/livez, /readyz, /metrics).
    #[arg(long, env = "RELAY_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// HS256 secret that verifies participant tokens without a `kid` header (use 32+ random
    /// bytes in production). Required unless --jwt-keys is given.
    // Checked in `NodeConfig::try_from`, whose error names the environment variable too.
    #[arg(long, env = "RELAY_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// More HS256 keys, chosen by the token header's `kid`: `KID=SECRET`, repeat or
    /// comma-separate. Several at once let a secret be rotated without dropping sessions.
    #[arg(
        long,
        env = "RELAY_JWT_KEYS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub jwt_keys: Vec<String>,
    /// Tokens whose lifetime (`exp - iat`, or `exp - now` when longer or without `iat`) exceeds
    /// this are refused (`token_lifetime_too_long`).
    #[arg(long, env = "RELAY_MAX_TOKEN_LIFETIME", default_value = "24h", value_parser = humantime::parse_duration)]
    pub max_token_lifetime: Duration,
    /// When set, tokens must carry this `aud` (`token_wrong_audience`).
    #[arg(long, env = "RELAY_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// When set, tokens must carry this `iss` (`token_wrong_issuer`).
    #[arg(long, env = "RELAY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Key of the typed-value hashes of masking (echoes of typed values are recognised by them),
    /// independent of the JWT keys. Without it: embedded mode uses a random key per process (rooms
    /// live in the process anyway); cluster mode uses one stored in Redis on first start
    /// (`SET NX`), shared by every node.
    #[arg(long, env = "RELAY_MASK_KEY", hide_env_values = true)]
    pub mask_key: Option<String>,
    /// Recent chat messages a joining participant receives.
    #[arg(long, env = "RELAY_CHAT_HISTORY", default_value_t = 50)]
    pub chat_history: usize,
    /// Chat messages kept per room for joins and resyncs.
    #[arg(long, env = "RELAY_CHAT_RETAIN", default_value_t = 1000)]
    pub chat_retain: usize,
    /// Largest WebSocket message accepted, in bytes; larger ones close the connection with 1009.
    #[arg(long, env = "RELAY_MAX_FRAME_BYTES", default_value_t = 1024 * 1024)]
    pub max_frame_bytes: usize,
    /// Upper bound of one room's log in memory, in bytes.
    #[arg(long, env = "RELAY_MAX_LOG_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_log_bytes: usize,
    /// Live messages buffered per room before a slow viewer must recover from the log (the ring
    /// is allocated whole for every room: 40 bytes a slot).
    #[arg(long, env = "RELAY_ROOM_BUFFER", default_value_t = 256)]
    pub room_buffer: usize,
    /// Client ids remembered per room so that resends are not stored twice.
    #[arg(long, env = "RELAY_DEDUP_WINDOW", default_value_t = 10_000)]
    pub dedup_window: usize,
    /// Most open WebSocket connections on this node (completed upgrades only).
    #[arg(long, env = "RELAY_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Time allowed for the HTTP upgrade to complete.
    #[arg(long, env = "RELAY_HANDSHAKE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,
    /// Most handshakes in progress (connections not yet upgraded) on this node; past it a new
    /// one drops the oldest.
    #[arg(long, env = "RELAY_MAX_PENDING_HANDSHAKES", default_value_t = 1000)]
    pub max_pending_handshakes: usize,
    /// Most handshakes in progress from one source address (0: no limit). Behind a reverse
    /// proxy every connection comes from the proxy: raise it or set 0 there.
    #[arg(long, env = "RELAY_MAX_PENDING_PER_ADDRESS", default_value_t = 64)]
    pub max_pending_per_address: usize,
    /// Most connections of one participant (the room and `sub` of a token), over the cluster.
    #[arg(
        long,
        env = "RELAY_MAX_CONNECTIONS_PER_PARTICIPANT",
        default_value_t = 8
    )]
    pub max_connections_per_participant: usize,
    /// Most rooms with connections on this node; a connection to a new room past it is refused.
    #[arg(long, env = "RELAY_MAX_ROOMS", default_value_t = 5000)]
    pub max_rooms: usize,
    /// Most concurrent connections of the admin listener; past it a new one drops the oldest.
    #[arg(long, env = "RELAY_ADMIN_MAX_CONNECTIONS", default_value_t = 64)]
    pub admin_max_connections: usize,
    /// Time an admin client has to send a request's headers.
    #[arg(long, env = "RELAY_ADMIN_HEADER_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub admin_header_timeout: Duration,
    /// Time an admin request has to be answered, its body included.
    #[arg(long, env = "RELAY_ADMIN_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub admin_request_timeout: Duration,
    /// Bearer token that `/metrics` requires (Authorization: Bearer TOKEN); unset: open.
    #[arg(long, env = "RELAY_METRICS_TOKEN", hide = true, hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Time allowed between the upgrade and the `join` frame.
    #[arg(long, env = "RELAY_JOIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub join_timeout: Duration,
    /// Interval of server WebSocket pings.
    #[arg(long, env = "RELAY_PING_INTERVAL", default_value = "25s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,
    /// A connection that sends nothing (not even a pong) for this long is closed (4003).
    #[arg(long, env = "RELAY_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// A write that cannot complete for this long closes the connection as slow (4001).
    #[arg(long, env = "RELAY_WRITE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,
    /// How long a room with no members keeps its log (embedded mode).
    #[arg(long, env = "RELAY_EMPTY_ROOM_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub empty_room_ttl: Duration,
    /// On SIGTERM/SIGINT, how long to wait for connections to close before exiting.
    #[arg(long, env = "RELAY_DRAIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Frames a connection may send per second (sustained); bursts of twice that pass at once.
    #[arg(long, env = "RELAY_MAX_MSGS_PER_SEC", default_value_t = 500)]
    pub max_msgs_per_sec: u32,
    /// Bytes a connection may send per second (sustained); bursts of twice that (at least one
    /// maximal frame) pass at once.
    #[arg(long, env = "RELAY_MAX_BYTES_PER_SEC", default_value_t = 8 * 1024 * 1024)]
    pub max_bytes_per_sec: u32,
    /// Total time a connection's frames over the rate may be held back (slowing the sender),
    /// refilled over 30 s. Past it, frames over the rate are refused with `rate_limited`.
    #[arg(long, env = "RELAY_MAX_RATE_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub max_rate_delay: Duration,
    /// Refused frames (errors caused by the client) a connection may accumulate in a burst before
    /// it is closed with 4501; one is forgiven per second.
    #[arg(long, env = "RELAY_MAX_VIOLATIONS", default_value_t = 20)]
    pub max_violations: u32,
    /// Bytes a viewer may fall behind the room before its backlog is dropped and it is brought
    /// up to date from the log (resumed, or resynced from the keyframe).
    #[arg(long, env = "RELAY_MAX_QUEUE_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_queue_bytes: u64,
    /// A viewer that stays behind for this long is closed with 4001 (slow).
    #[arg(long, env = "RELAY_SLOW_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub slow_timeout: Duration,
    /// Most participants in one room (a participant's extra connections do not count).
    #[arg(long, env = "RELAY_MAX_ROOM_MEMBERS", default_value_t = 50)]
    pub max_room_members: usize,
    /// Browser origins allowed to connect, comma-separated (`https://app.example.com`); empty
    /// allows any. Requests without an `Origin` header (non-browser clients) are not affected.
    #[arg(long, env = "RELAY_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Largest event a chunked upload may stitch, in bytes.
    #[arg(long, env = "RELAY_MAX_UPLOAD_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_upload_bytes: u64,
    /// Uploads one participant may have in progress in a room.
    #[arg(long, env = "RELAY_MAX_UPLOADS", default_value_t = 4)]
    pub max_uploads: usize,
    /// Turn room logs into recordings: a closed room (and, live, everything before a new
    /// keyframe) is archived by the compactor before it leaves the room store. In embedded mode
    /// this node compacts in-process into --archive-dir; in cluster mode run `relay compactor`.
    #[arg(long, env = "RELAY_RECORDINGS", default_value_t = true, action = clap::ArgAction::Set)]
    pub recordings: bool,
    /// Close (and record) a room whose customer has been gone this long; 0s never. Embedded
    /// mode; in cluster mode `relay compactor` has the same flag.
    #[arg(long, env = "RELAY_CUSTOMER_IDLE_CLOSE", default_value = "30m", value_parser = humantime::parse_duration)]
    pub customer_idle_close: Duration,
    /// Where recordings are written (embedded mode; `relay compactor` has its own flag).
    #[arg(long, env = "RELAY_ARCHIVE_DIR", default_value = "./data/archive")]
    pub archive_dir: std::path::PathBuf,
    /// Upload bytes staged in this process at most (embedded mode); past it slices are refused
    /// with `upload_limit` until uploads finish or expire.
    #[arg(long, env = "RELAY_MAX_STAGED_BYTES", default_value_t = 512 * 1024 * 1024)]
    pub max_staged_bytes: u64,
    /// An upload with no new slice for this long is dropped.
    #[arg(long, env = "RELAY_UPLOAD_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub upload_ttl: Duration,
    /// When a participant's last connection leaves a room, its unfinished uploads are dropped
    /// after this long (0s: at once) unless it comes back and sends another slice.
    #[arg(long, env = "RELAY_UPLOAD_ORPHAN_TTL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub upload_orphan_ttl: Duration,
    /// Frames per second one room may receive from all its participants (sustained; bursts of
    /// twice that), on top of each participant's --max-msgs-per-sec.
    #[arg(long, env = "RELAY_MAX_ROOM_MSGS_PER_SEC", default_value_t = 2000)]
    pub max_room_msgs_per_sec: u32,
    /// Bytes per second one room may receive from all its participants (sustained; bursts of
    /// twice that).
    #[arg(long, env = "RELAY_MAX_ROOM_BYTES_PER_SEC", default_value_t = 32 * 1024 * 1024)]
    pub max_room_bytes_per_sec: u32,
    /// Embedded mode: payload bytes of all room logs plus staged uploads this process holds at
    /// most; over it, rooms over their fair share are refused with `log_full`. 0: half of the
    /// memory available (physical memory, or the cgroup limit if lower).
    #[arg(long, env = "RELAY_MAX_MEMORY_BYTES", default_value_t = 0)]
    pub max_memory_bytes: u64,
    /// When the events after a room's keyframe pass this many bytes, the customer is asked for a
    /// fresh full snapshot (`snapshot_request`), so that catch-up stays small. 0 disables.
    #[arg(long, env = "RELAY_SNAPSHOT_AFTER_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub snapshot_after_bytes: u64,
    /// Masking policy for rooms whose customer token names none: `none`, `passwords`, `inputs`
    /// or `inputs+text`. The relay masks before anything is stored or relayed. The default,
    /// `inputs`, masks every input value (card and ID numbers too); `passwords` and `none` must
    /// be asked for.
    #[arg(long, env = "RELAY_MASK_POLICY", default_value = "inputs")]
    pub mask_policy: MaskPolicy,
    /// Your pages' own class names for blocked elements (rrweb's `blockClass`), comma-separated;
    /// `rr-block` always counts.
    #[arg(long, env = "RELAY_MASK_BLOCK_CLASS", value_delimiter = ',')]
    pub mask_block_class: Vec<String>,
    /// Your pages' own class names for masked text (rrweb's `maskTextClass`), comma-separated;
    /// `rr-mask` always counts.
    #[arg(long, env = "RELAY_MASK_TEXT_CLASS", value_delimiter = ',')]
    pub mask_text_class: Vec<String>,
    /// Your pages' own class names for ignored inputs (rrweb's `ignoreClass`), comma-separated;
    /// `rr-ignore` always counts.
    #[arg(long, env = "RELAY_MASK_IGNORE_CLASS", value_delimiter = ',')]
    pub mask_ignore_class: Vec<String>,
    /// Directory of native-page templates (`NAME.html`; `native-page.html` replaces the
    /// built-in default).
    #[arg(long, env = "RELAY_NATIVE_TEMPLATES")]
    pub native_templates: Option<std::path::PathBuf>,
    /// Key for the server-to-server HTTP API on the admin listener (`Authorization: Bearer
    /// KEY`); without it the `/v1` API answers 403.
    #[arg(long, env = "RELAY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Redis URL (`redis://[:password@]host:port/db`, `rediss://` for TLS). Without it the node
    /// runs embedded: every room lives in this process. With it, any number of nodes sharing the
    /// Redis form one relay. Logs show it with the password replaced by `***`.
    #[arg(long, env = "RELAY_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// TLS to Redis (`rediss://`).
    #[command(flatten)]
    pub redis_tls: RedisTlsArgs,
    /// Webhooks.
    #[command(flatten)]
    pub webhook: super::WebhookArgs,
    /// Also write the audit events (target `audit`), and only them, to this file as JSON lines
    /// (appended; created if missing).
    #[arg(long, env = "RELAY_AUDIT_LOG")]
    pub audit_log: Option<std::path::PathBuf>,
    /// Treat --redis-url as a comma-separated list of seed nodes of a Redis Cluster; room keys
    /// share a hash tag and live fan-out uses sharded pub/sub (SSUBSCRIBE/SPUBLISH).
    #[arg(long, env = "RELAY_REDIS_CLUSTER", requires = "redis_url")]
    pub redis_cluster: bool,
    /// Payloads up to this size travel inside Redis pub/sub messages; larger ones are published by
    /// reference and read from the room's stream.
    #[arg(long, env = "RELAY_REDIS_INLINE_MAX_BYTES", default_value_t = 64 * 1024)]
    pub redis_inline_max_bytes: usize,
    /// A connection's presence expires this long after its node last refreshed it, so members of
    /// a node that died are reported as left within about this long.
    #[arg(long, env = "RELAY_PRESENCE_TTL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub presence_ttl: Duration,
    /// How long idempotency keys (chat and event ids) are remembered in cluster mode.
    #[arg(long, env = "RELAY_DEDUP_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub dedup_ttl: Duration,
    /// Room keys in Redis expire this long after the room's last member activity.
    #[arg(long, env = "RELAY_ROOM_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub room_ttl: Duration,
    /// Log format.
    #[arg(long, env = "RELAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
    /// Runtime worker threads (default: one per CPU core). With several nodes on one host, give
    /// each about its share of the cores: fewer threads than cores means fewer cross-thread
    /// wake-ups per message.
    #[arg(long, env = "RELAY_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
    /// STUN/TURN servers handed to clients for calls (`joined.ice_servers`), as the JSON array
    /// `RTCPeerConnection` takes: `[{"urls":"stun:stun.example.com:3478"},{"urls":
    /// ["turn:turn.example.com:3478"],"username":"u","credential":"p"}]`.
    #[arg(long, env = "RELAY_ICE_SERVERS", hide_env_values = true)]
    pub ice_servers: Option<String>,
    /// A STUN server URL (`stun:host:port`) for calls; repeat, or comma-separate in the
    /// environment.
    #[arg(long = "stun", env = "RELAY_STUN", value_delimiter = ',')]
    pub stun: Vec<String>,
    /// A TURN server URL (`turn:host:port?transport=udp`, `turns:`) whose credentials the node
    /// mints per participant with --turn-secret; repeat, or comma-separate in the environment.
    #[arg(long = "turn", env = "RELAY_TURN", value_delimiter = ',')]
    pub turn: Vec<String>,
    /// Shared secret of the TURN server's REST API (coturn `static-auth-secret`): each join gets
    /// the user name `<expiry>:<participant>` and its HMAC-SHA1 password.
    #[arg(long, env = "RELAY_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// Lifetime of minted TURN credentials (a call must be set up within it).
    #[arg(long, env = "RELAY_TURN_TTL", default_value = "6h", value_parser = humantime::parse_duration)]
    pub turn_ttl: Duration,
    /// Demo mode: the listener also serves the sample pages of sdk/demo under /demo/ and hands
    /// out tokens to anyone (GET /demo/token). For trying the relay out; never in production.
    #[arg(long, env = "RELAY_DEMO", value_parser = clap::builder::BoolishValueParser::new())]
    pub demo: bool,
    /// Let --demo run on a non-loopback --listen or in cluster mode (--redis-url). Demo tokens
    /// are refused by nodes without --demo, but anyone who reaches a demo node gets into any room
    /// of its cluster.
    #[arg(long, env = "RELAY_DEMO_UNSAFE_PUBLIC", value_parser = clap::builder::BoolishValueParser::new())]
    pub demo_unsafe_public: bool,
    /// Directory of the built demo pages (`npm ci && npm run build` in sdk/demo); default
    /// sdk/demo/dist of the workspace, or `demo/` next to the binary.
    #[arg(long, env = "RELAY_DEMO_DIR")]
    pub demo_dir: Option<std::path::PathBuf>,
}

/// TLS settings of the Redis connection (`relay serve` and `relay compactor`). A `rediss://` URL
/// without them verifies the server against the system's root certificates.
#[derive(Debug, Clone, Default, Args)]
pub struct RedisTlsArgs {
    /// PEM file of the certificate authority (or authorities) that signed the Redis server's
    /// certificate, instead of the system's roots; needs a `rediss://` URL.
    #[arg(long, env = "RELAY_REDIS_TLS_CA")]
    pub redis_tls_ca: Option<std::path::PathBuf>,
    /// PEM client certificate for Redis servers that require one (`tls-auth-clients yes`);
    /// with --redis-tls-key.
    #[arg(long, env = "RELAY_REDIS_TLS_CERT", requires = "redis_tls_key")]
    pub redis_tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --redis-tls-cert.
    #[arg(long, env = "RELAY_REDIS_TLS_KEY", requires = "redis_tls_cert")]
    pub redis_tls_key: Option<std::path::PathBuf>,
}

impl RedisTlsArgs {
    /// Reads the files named; `None` when no TLS file is given. Refuses TLS files with a URL
    /// that is not `rediss://` (every seed, for a Redis Cluster).
    pub fn load(&self, url: &str) -> Result<Option<crate::store::redis::RedisTls>, ConfigError> {
        if self.redis_tls_ca.is_none() && self.redis_tls_cert.is_none() {
            return Ok(None);
        }
        if !url.split(',').all(|u| u.trim().starts_with("rediss://")) {
            return Err(ConfigError(
                "--redis-tls-ca/--redis-tls-cert need a rediss:// --redis-url".into(),
            ));
        }
        let read = |flag: &str, p: &Option<std::path::PathBuf>| {
            p.as_ref()
                .map(|p| {
                    std::fs::read(p)
                        .map_err(|e| ConfigError(format!("{flag} {}: {e}", p.display())))
                })
                .transpose()
        };
        Ok(Some(crate::store::redis::RedisTls {
            ca: read("--redis-tls-ca", &self.redis_tls_ca)?,
            client_cert: read("--redis-tls-cert", &self.redis_tls_cert)?,
            client_key: read("--redis-tls-key", &self.redis_tls_key)?,
        }))
    }
}
