//! Node configuration: clap flags with `RELAY_*` environment fallbacks, validated before anything
//! binds. Tests build a [`NodeConfig`] directly.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::mask::MaskPolicy;
use crate::store::LogConfig;

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
    #[arg(
        long,
        env = "RELAY_JWT_SECRET",
        hide_env_values = true,
        required_unless_present = "jwt_keys"
    )]
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
}

impl NodeConfig {
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
                "--jwt-secret / RELAY_JWT_SECRET must not be empty (or give --jwt-keys)".into(),
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
