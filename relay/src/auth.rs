//! Admission: who may open a WebSocket, decided during the HTTP upgrade.
//!
//! A token (HS256 JWT with [`Claims`]) comes from `Authorization: Bearer`, `?token=`, or a
//! subprotocol entry `assist-relay.token.<jwt>` (browsers cannot set headers on a WebSocket). The
//! codec comes from the subprotocol. Every refusal is a plain HTTP response with a stable
//! [`RejectReason`] code in a JSON body, before any WebSocket frame exists.

use assist_relay_proto::{validate_id, Claims, Codec};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request};
use tokio_tungstenite::tungstenite::http::{header, StatusCode};

/// Subprotocol prefix that carries a token.
pub const TOKEN_PROTOCOL_PREFIX: &str = "assist-relay.token.";
/// The WebSocket path.
pub const WS_PATH: &str = "/ws";

/// Signs and verifies tokens with one shared HS256 secret.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Browser origins allowed to connect; empty allows any.
    allowed_origins: Vec<String>,
}

impl Auth {
    /// Keys from a shared secret.
    pub fn new(secret: &[u8]) -> Auth {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.required_spec_claims = ["exp".to_owned()].into_iter().collect();
        Auth {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            allowed_origins: Vec::new(),
        }
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
        self.allowed_origins.is_empty()
            || self
                .allowed_origins
                .iter()
                .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }

    /// Signs claims into a token.
    pub fn mint(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// Verifies a token and its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, RejectReason> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                // The JOSE header itself does not parse: valid JSON naming an algorithm we do not
                // know (`"alg":"none"`) is not signed with our key; anything else is not a JWT.
                ErrorKind::Json(j) if jsonwebtoken::decode_header(token).is_err() => {
                    if j.is_data() {
                        RejectReason::TokenBadSignature
                    } else {
                        RejectReason::TokenMalformed
                    }
                }
                ErrorKind::ExpiredSignature => RejectReason::TokenExpired,
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidAlgorithm
                | ErrorKind::MissingAlgorithm => RejectReason::TokenBadSignature,
                ErrorKind::MissingRequiredClaim(_)
                | ErrorKind::InvalidClaimFormat(_)
                | ErrorKind::Json(_)
                | ErrorKind::ImmatureSignature => RejectReason::TokenInvalidClaims,
                _ => RejectReason::TokenMalformed,
            })?;
        let claims = data.claims;
        if validate_id("sub", &claims.sub).is_err() || validate_id("room", &claims.room).is_err() {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    pub const ALL: [RejectReason; 16] = [
        RejectReason::NotFound,
        RejectReason::UnsupportedProtocol,
        RejectReason::TokenMissing,
        RejectReason::TokenMalformed,
        RejectReason::TokenExpired,
        RejectReason::TokenBadSignature,
        RejectReason::TokenInvalidClaims,
        RejectReason::RoomMismatch,
        RejectReason::OriginNotAllowed,
        RejectReason::ShuttingDown,
        RejectReason::TooManyConnections,
        RejectReason::BadHandshake,
        RejectReason::TooManyPendingFromAddress,
        RejectReason::HandshakeEvicted,
        RejectReason::TooManyConnectionsForParticipant,
        RejectReason::TooManyRooms,
    ];

    /// Stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NotFound => "not_found",
            RejectReason::UnsupportedProtocol => "unsupported_protocol",
            RejectReason::TokenMissing => "token_missing",
            RejectReason::TokenMalformed => "token_malformed",
            RejectReason::TokenExpired => "token_expired",
            RejectReason::TokenBadSignature => "token_bad_signature",
            RejectReason::TokenInvalidClaims => "token_invalid_claims",
            RejectReason::RoomMismatch => "room_mismatch",
            RejectReason::OriginNotAllowed => "origin_not_allowed",
            RejectReason::ShuttingDown => "shutting_down",
            RejectReason::TooManyConnections => "too_many_connections",
            RejectReason::BadHandshake => "bad_handshake",
            RejectReason::TooManyPendingFromAddress => "too_many_pending_from_address",
            RejectReason::HandshakeEvicted => "handshake_evicted",
            RejectReason::TooManyConnectionsForParticipant => {
                "too_many_connections_for_participant"
            }
            RejectReason::TooManyRooms => "too_many_rooms",
        }
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
            | RejectReason::TokenInvalidClaims => StatusCode::UNAUTHORIZED,
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
                "the token needs sub, room (1-128 of A-Z a-z 0-9 . _ : -), role (customer|agent) and exp"
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

    /// The HTTP response that carries this refusal.
    pub fn response(self) -> ErrorResponse {
        let body = serde_json::json!({ "error": self.as_str(), "message": self.message() });
        let mut resp = ErrorResponse::new(Some(body.to_string()));
        *resp.status_mut() = self.status();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        resp
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
pub fn admit(auth: &Auth, req: &Request) -> Result<Admission, RejectReason> {
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
