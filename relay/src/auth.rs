//! Admission: who may open a WebSocket, decided during the HTTP upgrade.
//!
//! A token (HS256 JWT with [`Claims`]) comes from `Authorization: Bearer`, `?token=`, or a
//! subprotocol entry `assist-relay.token.<jwt>` (browsers cannot set headers on a WebSocket). The
//! codec comes from the subprotocol. The HS256 key is chosen by the header's `kid` (several may be
//! active during a rotation). Every refusal is a plain HTTP response with a stable
//! [`RejectReason`] code in a JSON body, before any WebSocket frame exists.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assist_relay_proto::{validate_id, Claims, Codec};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::http::{header, StatusCode};

/// Subprotocol prefix that carries a token.
pub const TOKEN_PROTOCOL_PREFIX: &str = "assist-relay.token.";
/// The WebSocket path.
pub const WS_PATH: &str = "/ws";
/// Clock skew allowed on `nbf` (a token minted on a host whose clock runs ahead is not refused
/// for that). `exp` has none.
pub const NBF_LEEWAY: Duration = Duration::from_secs(60);
/// Default of `--max-token-lifetime`.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// What a token must satisfy beyond its signature and `exp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Longest lifetime accepted: `exp - iat` (or `exp - now` when that is longer, or there is no
    /// `iat`).
    pub max_lifetime: Duration,
    /// When set, `aud` must be present and name it.
    pub audience: Option<String>,
    /// When set, `iss` must be present and equal it.
    pub issuer: Option<String>,
    /// Accept tokens with `"demo": true` (only demo nodes do).
    pub accept_demo: bool,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            max_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            audience: None,
            issuer: None,
            accept_demo: false,
        }
    }
}

/// Registered claims a token may carry besides [`Claims`], and the relay's `demo` claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraClaims {
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Not before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Minted by a demo node (`/demo/token`); only demo nodes accept it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub demo: bool,
}

#[derive(Serialize)]
struct MintBody<'a> {
    #[serde(flatten)]
    claims: &'a Claims,
    #[serde(flatten)]
    extra: &'a ExtraClaims,
}

/// What the relay reads from a verified token (`aud` and `iss` are checked by `jsonwebtoken`).
#[derive(Deserialize)]
struct VerifiedBody {
    #[serde(flatten)]
    claims: Claims,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    demo: bool,
}

/// Signs and verifies HS256 tokens. Several keys may verify at once, chosen by the token
/// header's `kid` (a key rotation: see docs/operations.md); a token without `kid` is verified
/// with the default key only.
pub struct Auth {
    /// Verification keys; `None` is the default key.
    keys: Vec<(Option<String>, DecodingKey)>,
    /// The key tokens minted here are signed with, and its `kid`.
    signing: Option<(Option<String>, EncodingKey)>,
    validation: Validation,
    policy: TokenPolicy,
    /// Browser origins allowed to connect; empty allows any.
    allowed_origins: Vec<String>,
}

impl Auth {
    /// A default key (tokens without `kid`) from a shared secret, and the default policy.
    pub fn new(secret: &[u8]) -> Auth {
        Auth::with_keys(Some(secret), &[])
    }

    /// A default key (if any) and keys by `kid`. Tokens minted here are signed with the default
    /// key, or without one with the first `kid` key.
    pub fn with_keys(default: Option<&[u8]>, keys: &[(String, Vec<u8>)]) -> Auth {
        assist_relay_proto::jwt::install();
        let mut all: Vec<(Option<String>, &[u8])> = Vec::new();
        if let Some(secret) = default {
            all.push((None, secret));
        }
        for (kid, secret) in keys {
            all.push((Some(kid.clone()), secret));
        }
        let signing = all
            .first()
            .map(|(kid, secret)| (kid.clone(), EncodingKey::from_secret(secret)));
        let mut auth = Auth {
            keys: all
                .into_iter()
                .map(|(kid, secret)| (kid, DecodingKey::from_secret(secret)))
                .collect(),
            signing,
            validation: Validation::new(Algorithm::HS256),
            policy: TokenPolicy::default(),
            allowed_origins: Vec::new(),
        };
        auth.set_validation();
        auth
    }

    /// Replaces the verification policy.
    pub fn with_policy(mut self, policy: TokenPolicy) -> Auth {
        self.policy = policy;
        self.set_validation();
        self
    }

    fn set_validation(&mut self) {
        let mut v = Validation::new(Algorithm::HS256);
        // `exp` has no leeway; `nbf` is checked here, with `NBF_LEEWAY`.
        v.leeway = 0;
        v.validate_exp = true;
        v.validate_nbf = false;
        let mut required = vec!["exp"];
        if let Some(aud) = &self.policy.audience {
            v.set_audience(&[aud]);
            required.push("aud");
        }
        if let Some(iss) = &self.policy.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        v.set_required_spec_claims(&required);
        self.validation = v;
    }

    /// Restricts browser connections to these origins (`https://app.example.com`); an empty list
    /// allows any. Clients that send no `Origin` (servers, SDKs outside browsers) are not affected:
    /// the token is what authenticates them.
    pub fn with_allowed_origins(mut self, origins: Vec<String>) -> Auth {
        self.allowed_origins = origins
            .into_iter()
            .map(|o| o.trim_end_matches('/').to_owned())
            .collect();
        self
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        // One trailing `/` is ignored on both sides (operations.md, `--allowed-origins`).
        let origin = origin.strip_suffix('/').unwrap_or(origin);
        self.allowed_origins.is_empty()
            || self
                .allowed_origins
                .iter()
                .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }

    /// Signs claims into a token.
    pub fn mint(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        self.mint_with(claims, &ExtraClaims::default())
    }

    /// Signs claims and extra claims into a token, with the signing key's `kid` in the header.
    pub fn mint_with(
        &self,
        claims: &Claims,
        extra: &ExtraClaims,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let Some((kid, key)) = &self.signing else {
            return Err(ErrorKind::InvalidKeyFormat.into());
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.clone();
        jsonwebtoken::encode(&header, &MintBody { claims, extra }, key)
    }

    /// Verifies a token and its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, RejectReason> {
        let head = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            // Valid JSON naming an algorithm we do not know (`"alg":"none"`) is not signed with
            // our key; anything else is not a JWT.
            ErrorKind::Json(j) if j.is_data() => RejectReason::TokenBadSignature,
            _ => RejectReason::TokenMalformed,
        })?;
        let key = self
            .keys
            .iter()
            .find(|(kid, _)| *kid == head.kid)
            .map(|(_, key)| key)
            .ok_or(RejectReason::TokenUnknownKey)?;
        let data = jsonwebtoken::decode::<VerifiedBody>(token, key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => RejectReason::TokenExpired,
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidAlgorithm
                | ErrorKind::MissingAlgorithm => RejectReason::TokenBadSignature,
                ErrorKind::InvalidAudience => RejectReason::TokenWrongAudience,
                ErrorKind::InvalidIssuer => RejectReason::TokenWrongIssuer,
                ErrorKind::MissingRequiredClaim(c) if c == "aud" => {
                    RejectReason::TokenWrongAudience
                }
                ErrorKind::MissingRequiredClaim(c) if c == "iss" => RejectReason::TokenWrongIssuer,
                ErrorKind::MissingRequiredClaim(_)
                | ErrorKind::InvalidClaimFormat(_)
                | ErrorKind::Json(_)
                | ErrorKind::ImmatureSignature => RejectReason::TokenInvalidClaims,
                _ => RejectReason::TokenMalformed,
            },
        )?;
        let VerifiedBody { claims, nbf, demo } = data.claims;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(NBF_LEEWAY.as_secs())) {
            return Err(RejectReason::TokenNotYetValid);
        }
        let from = claims.iat.unwrap_or(now).min(now);
        if claims.exp.saturating_sub(from) > self.policy.max_lifetime.as_secs() {
            return Err(RejectReason::TokenLifetimeTooLong);
        }
        if demo && !self.policy.accept_demo {
            return Err(RejectReason::TokenDemoOnly);
        }
        // `system` is the role of chat the backend posts (HTTP API), never a connection's.
        if claims.role == assist_relay_proto::Role::System
            || validate_id("sub", &claims.sub).is_err()
            || validate_id("room", &claims.room).is_err()
        {
            return Err(RejectReason::TokenInvalidClaims);
        }
        if claims
            .mask
            .as_deref()
            .is_some_and(|m| crate::mask::MaskPolicy::parse(m).is_none())
        {
            return Err(RejectReason::TokenInvalidClaims);
        }
        Ok(claims)
    }
}

/// Why a WebSocket upgrade was refused. The string form is stable and documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum RejectReason {
    /// The path is not `/ws`.
    NotFound,
    /// Subprotocols were offered, but neither codec.
    UnsupportedProtocol,
    /// No token anywhere.
    TokenMissing,
    /// Not a JWT.
    TokenMalformed,
    /// `exp` has passed.
    TokenExpired,
    /// Not signed with this relay's HS256 secret.
    TokenBadSignature,
    /// `sub`, `room`, `role` or `exp` missing or invalid.
    TokenInvalidClaims,
    /// The header's `kid` names no key of this relay (or there is no `kid` and no default key).
    TokenUnknownKey,
    /// `nbf` is still ahead (beyond [`NBF_LEEWAY`]).
    TokenNotYetValid,
    /// `exp` lies further than `--max-token-lifetime` after `iat` (or now).
    TokenLifetimeTooLong,
    /// `aud` missing or not `--jwt-audience` (or present on a node without one).
    TokenWrongAudience,
    /// `iss` missing or not `--jwt-issuer`.
    TokenWrongIssuer,
    /// A demo token (`"demo": true`) on a node not in demo mode.
    TokenDemoOnly,
    /// `?room=` differs from the token's room.
    RoomMismatch,
    /// The browser's `Origin` is not in the allow-list.
    OriginNotAllowed,
    /// The node is draining.
    ShuttingDown,
    /// The node is at its connection limit.
    TooManyConnections,
    /// The WebSocket handshake did not complete in time or was not a valid upgrade.
    BadHandshake,
    /// The source address has too many handshakes in progress.
    TooManyPendingFromAddress,
    /// A newer handshake took this one's slot (the node had its most handshakes in progress).
    HandshakeEvicted,
    /// The participant (room and `sub`) already has its most connections on this node.
    TooManyConnectionsForParticipant,
    /// The room is new and the node has its most rooms.
    TooManyRooms,
}

impl RejectReason {
    /// Every reason, for metrics pre-registration.
    pub const ALL: &'static [RejectReason] = <RejectReason as strum::VariantArray>::VARIANTS;

    /// Stable code (the variant's name in snake case).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            RejectReason::NotFound => StatusCode::NOT_FOUND,
            RejectReason::UnsupportedProtocol
            | RejectReason::BadHandshake
            | RejectReason::HandshakeEvicted => StatusCode::BAD_REQUEST,
            RejectReason::TooManyPendingFromAddress
            | RejectReason::TooManyConnectionsForParticipant => StatusCode::TOO_MANY_REQUESTS,
            RejectReason::TokenMissing
            | RejectReason::TokenMalformed
            | RejectReason::TokenExpired
            | RejectReason::TokenBadSignature
            | RejectReason::TokenInvalidClaims
            | RejectReason::TokenUnknownKey
            | RejectReason::TokenNotYetValid
            | RejectReason::TokenLifetimeTooLong
            | RejectReason::TokenWrongAudience
            | RejectReason::TokenWrongIssuer
            | RejectReason::TokenDemoOnly => StatusCode::UNAUTHORIZED,
            RejectReason::RoomMismatch | RejectReason::OriginNotAllowed => StatusCode::FORBIDDEN,
            RejectReason::ShuttingDown
            | RejectReason::TooManyConnections
            | RejectReason::TooManyRooms => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// What a human should know.
    pub fn message(self) -> &'static str {
        match self {
            RejectReason::NotFound => "the WebSocket endpoint is /ws",
            RejectReason::UnsupportedProtocol => {
                "offer subprotocol assist-relay.v1.json or assist-relay.v1.msgpack"
            }
            RejectReason::TokenMissing => {
                "send a token as Authorization: Bearer, ?token=, or subprotocol assist-relay.token.<jwt>"
            }
            RejectReason::TokenMalformed => "the token is not a well-formed JWT",
            RejectReason::TokenExpired => "the token has expired; get a new one",
            RejectReason::TokenBadSignature => "the token is not signed with this relay's HS256 key",
            RejectReason::TokenInvalidClaims => {
                "the token needs sub, room (1-128 of A-Z a-z 0-9 . _ : -, not only dots), role (customer|agent) and exp"
            }
            RejectReason::TokenUnknownKey => {
                "the token's kid names no key of this relay (no kid: the relay has no default key)"
            }
            RejectReason::TokenNotYetValid => "the token's nbf has not come yet",
            RejectReason::TokenLifetimeTooLong => {
                "the token lives longer than this relay accepts (--max-token-lifetime); mint shorter tokens"
            }
            RejectReason::TokenWrongAudience => "the token's aud is missing or not this relay's",
            RejectReason::TokenWrongIssuer => "the token's iss is missing or not the expected issuer",
            RejectReason::TokenDemoOnly => {
                "a demo token (minted by a --demo node) is refused by nodes not in demo mode"
            }
            RejectReason::RoomMismatch => "the token is for another room than ?room=",
            RejectReason::OriginNotAllowed => "this page's origin may not connect to this relay",
            RejectReason::ShuttingDown => "this node is draining; connect to another node",
            RejectReason::TooManyConnections => "this node is full; retry with backoff",
            RejectReason::BadHandshake => "not a valid WebSocket upgrade",
            RejectReason::TooManyPendingFromAddress => {
                "too many unfinished handshakes from this address; retry with backoff"
            }
            RejectReason::HandshakeEvicted => "the handshake was too slow while the node was busy",
            RejectReason::TooManyConnectionsForParticipant => {
                "this participant has too many connections open; close one first"
            }
            RejectReason::TooManyRooms => "this node has its most rooms; retry with backoff",
        }
    }
}

/// A participant admitted by the handshake.
#[derive(Debug, Clone)]
pub struct Admission {
    /// Verified claims.
    pub claims: Claims,
    /// Negotiated codec.
    pub codec: Codec,
    /// Whether the client offered a codec subprotocol (then the server must echo it).
    pub echo_protocol: bool,
}

/// Decides an upgrade request.
pub fn admit<B>(
    auth: &Auth,
    req: &tokio_tungstenite::tungstenite::http::Request<B>,
) -> Result<Admission, RejectReason> {
    if req.uri().path() != WS_PATH {
        return Err(RejectReason::NotFound);
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !auth.origin_allowed(origin) {
            return Err(RejectReason::OriginNotAllowed);
        }
    }
    let query = req.uri().query().unwrap_or("");
    let mut query_token = None;
    let mut query_room = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "token" => query_token = Some(v.into_owned()),
            "room" => query_room = Some(v.into_owned()),
            _ => {}
        }
    }

    let offered: Vec<&str> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let protocol_token = offered
        .iter()
        .find_map(|p| p.strip_prefix(TOKEN_PROTOCOL_PREFIX));
    let codecs: Vec<&str> = offered
        .iter()
        .copied()
        .filter(|p| !p.starts_with(TOKEN_PROTOCOL_PREFIX))
        .collect();
    let (codec, echo_protocol) = if codecs.is_empty() {
        (Codec::Json, false)
    } else {
        let codec = codecs
            .iter()
            .find_map(|p| Codec::from_subprotocol(p))
            .ok_or(RejectReason::UnsupportedProtocol)?;
        (codec, true)
    };

    let header_token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| rest.trim().to_owned())
        });
    let token = header_token
        .or(query_token)
        .or(protocol_token.map(str::to_owned))
        .ok_or(RejectReason::TokenMissing)?;
    let claims = auth.verify(&token)?;
    if let Some(room) = query_room {
        if room != claims.room {
            return Err(RejectReason::RoomMismatch);
        }
    }
    Ok(Admission {
        claims,
        codec,
        echo_protocol,
    })
}

#[cfg(test)]
mod reason_tests {
    use super::RejectReason;

    /// The codes are documented (docs/protocol.md) and counted in metrics: the derive must give
    /// exactly these, in this order.
    #[test]
    fn reason_codes_are_stable() {
        let codes: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            codes,
            [
                "not_found",
                "unsupported_protocol",
                "token_missing",
                "token_malformed",
                "token_expired",
                "token_bad_signature",
                "token_invalid_claims",
                "token_unknown_key",
                "token_not_yet_valid",
                "token_lifetime_too_long",
                "token_wrong_audience",
                "token_wrong_issuer",
                "token_demo_only",
                "room_mismatch",
                "origin_not_allowed",
                "shutting_down",
                "too_many_connections",
                "bad_handshake",
                "too_many_pending_from_address",
                "handshake_evicted",
                "too_many_connections_for_participant",
                "too_many_rooms",
            ]
        );
    }
}
