//! Agent guidance (`guide`) and WebRTC call signaling (`signal`): relayed, never stored.
//!
//! A [`Relayed`] message goes through the room's live stream ([`crate::store::Broker::relay`]),
//! the same ordered stream as the room's entries, on every node. The store stamps it with the
//! room's epoch and head, so guidance carries the offset of the entry it follows and every
//! customer sees it in the same place among the room's entries. It takes no offset of its own:
//! the log, catch-up, resume, masking and recordings never see it.
//!
//! Rates per connection ([`GuideRates`]): pointer moves over [`POINTER_PER_SEC`] are coalesced
//! (the newest waits for the next slot, older ones are dropped); other guidance over
//! [`GUIDE_PER_SEC`] and signals over [`SIGNAL_PER_SEC`] are refused with `rate_limited`.
//!
//! [`IceConfig`] holds the node's STUN/TURN servers and mints TURN REST API credentials.

use std::num::NonZeroU32;
use std::time::Duration;

use assist_relay_proto::{Guidance, IceServer};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

pub use crate::hub::relayed::{Relayed, RelayedBody};

/// Pointer moves relayed per second and connection; faster ones are coalesced.
pub const POINTER_PER_SEC: u32 = 20;
/// Highlight, annotate and clear frames per second and connection (bursts of twice that).
pub const GUIDE_PER_SEC: u32 = 5;
/// Signaling messages per second and connection (bursts of [`SIGNAL_BURST`]).
pub const SIGNAL_PER_SEC: u32 = 20;
/// Signaling burst: ICE gathering emits a handful of candidates at once.
pub const SIGNAL_BURST: u32 = 50;

fn per_second(rate: u32, burst: u32) -> DefaultDirectRateLimiter {
    let nz = |v: u32| NonZeroU32::new(v.max(1)).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(nz(rate)).allow_burst(nz(burst)))
}

/// One connection's guidance and signaling rates, and its coalesced pointer move.
pub struct GuideRates {
    pointer: DefaultDirectRateLimiter,
    guide: DefaultDirectRateLimiter,
    signal: DefaultDirectRateLimiter,
    /// The newest pointer move over the rate, and when it may go.
    pending: Option<(Guidance, Instant)>,
}

impl Default for GuideRates {
    fn default() -> Self {
        GuideRates {
            pointer: per_second(POINTER_PER_SEC, 1),
            guide: per_second(GUIDE_PER_SEC, GUIDE_PER_SEC * 2),
            signal: per_second(SIGNAL_PER_SEC, SIGNAL_BURST),
            pending: None,
        }
    }
}

impl GuideRates {
    /// A pointer move: `Some` to relay now, `None` when it is held (replacing an older held one)
    /// until [`GuideRates::due`].
    pub fn pointer(&mut self, g: Guidance) -> Option<Guidance> {
        if let Some((held, _)) = &mut self.pending {
            *held = g; // keep the order: never overtake the held move
            return None;
        }
        match self.pointer.check() {
            Ok(()) => Some(g),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.pointer.clock().now());
                self.pending = Some((g, Instant::now() + wait));
                None
            }
        }
    }

    /// When the held pointer move may go, if one is held.
    pub fn due(&self) -> Option<Instant> {
        self.pending.as_ref().map(|(_, at)| *at)
    }

    /// The held pointer move, once its slot has come (else it stays held, rescheduled).
    pub fn take_due(&mut self) -> Option<Guidance> {
        let (g, _) = self.pending.take()?;
        match self.pointer.check() {
            Ok(()) => Some(g),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.pointer.clock().now());
                self.pending = Some((g, Instant::now() + wait));
                None
            }
        }
    }

    /// Whether a highlight, annotation or clear fits the rate (and spends it).
    pub fn guide(&self) -> bool {
        self.guide.check().is_ok()
    }

    /// Whether a signal fits the rate (and spends it).
    pub fn signal(&self) -> bool {
        self.signal.check().is_ok()
    }
}

/// The node's STUN/TURN servers, handed to every client in `joined`.
#[derive(Debug, Clone, Default)]
pub struct IceConfig {
    /// Servers as configured (`--ice-servers`, then `--stun`), sent as they are.
    pub servers: Vec<IceServer>,
    /// TURN URLs (`--turn`) that get per-participant credentials.
    pub turn_urls: Vec<String>,
    /// Shared secret of the TURN REST API (coturn `static-auth-secret`).
    pub turn_secret: Option<Vec<u8>>,
    /// Lifetime of minted TURN credentials.
    pub turn_ttl: Duration,
}

impl IceConfig {
    /// Builds and checks the configuration from the flags.
    pub fn parse(
        ice_servers_json: Option<&str>,
        stun: &[String],
        turn: &[String],
        turn_secret: Option<&str>,
        turn_ttl: Duration,
    ) -> Result<IceConfig, String> {
        let mut servers: Vec<IceServer> = match ice_servers_json.map(str::trim) {
            Some(j) if !j.is_empty() => serde_json::from_str(j).map_err(|e| {
                format!(
                    "--ice-servers must be a JSON array of {{urls, username?, credential?}}: {e}"
                )
            })?,
            _ => Vec::new(),
        };
        let stun: Vec<String> = stun.iter().filter(|u| !u.is_empty()).cloned().collect();
        let turn: Vec<String> = turn.iter().filter(|u| !u.is_empty()).cloned().collect();
        if !stun.is_empty() {
            servers.push(IceServer {
                urls: stun,
                username: None,
                credential: None,
            });
        }
        for s in &servers {
            if s.urls.is_empty() {
                return Err("an ICE server needs at least one URL".into());
            }
            for u in &s.urls {
                check_url(u)?;
            }
        }
        for u in &turn {
            check_url(u)?;
            if !(u.starts_with("turn:") || u.starts_with("turns:")) {
                return Err(format!("--turn {u:?} is not a turn: or turns: URL"));
            }
        }
        let secret = turn_secret.filter(|s| !s.is_empty());
        match (turn.is_empty(), secret.is_some()) {
            (false, false) => {
                return Err(
                    "--turn needs --turn-secret (TURN REST API credentials); for static \
                            credentials put the server in --ice-servers"
                        .into(),
                )
            }
            (true, true) => return Err("--turn-secret needs at least one --turn URL".into()),
            _ => {}
        }
        if turn_ttl.is_zero() {
            return Err("--turn-ttl must be longer than zero".into());
        }
        Ok(IceConfig {
            servers,
            turn_urls: turn,
            turn_secret: secret.map(|s| s.as_bytes().to_vec()),
            turn_ttl,
        })
    }

    /// The servers for participant `sub` at `now` (seconds since the Unix epoch): the configured
    /// ones, plus the TURN URLs with credentials minted for `sub` that expire after the TTL.
    pub fn servers_for(&self, sub: &str, now: u64) -> Vec<IceServer> {
        let mut out = self.servers.clone();
        if let (false, Some(secret)) = (self.turn_urls.is_empty(), &self.turn_secret) {
            let username = format!("{}:{sub}", now + self.turn_ttl.as_secs());
            let credential = turn_credential(secret, &username);
            out.push(IceServer {
                urls: self.turn_urls.clone(),
                username: Some(username),
                credential: Some(credential),
            });
        }
        out
    }
}

fn check_url(u: &str) -> Result<(), String> {
    let ok = ["stun:", "stuns:", "turn:", "turns:"]
        .iter()
        .any(|p| u.starts_with(p) && u.len() > p.len());
    if !ok || u.len() > 512 {
        return Err(format!(
            "ICE server URL {u:?} must start with stun:, stuns:, turn: or turns:"
        ));
    }
    Ok(())
}

/// The TURN REST API password for `username`: base64 of HMAC-SHA1 keyed with the shared secret
/// (what coturn's `use-auth-secret` checks).
pub fn turn_credential(secret: &[u8], username: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = match hmac::Hmac::<sha1::Sha1>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(), // HMAC takes keys of any length
    };
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use assist_relay_proto::{Member, Role, Signal};

    fn agent() -> Member {
        Member {
            id: "a1".into(),
            role: Role::Agent,
        }
    }

    #[test]
    fn turn_credentials_follow_the_rest_api_convention() {
        // RFC 2202 test case 2: HMAC-SHA1("Jefe", "what do ya want for nothing?").
        assert_eq!(
            turn_credential(b"Jefe", "what do ya want for nothing?"),
            "7/zfauXrL6LSdBbV8YTfnCWafHk="
        );
        let cfg = IceConfig::parse(
            Some(r#"[{"urls":"stun:stun.example.com:3478"}]"#),
            &[],
            &["turn:turn.example.com:3478?transport=udp".into()],
            Some("s3cret"),
            Duration::from_secs(3600),
        )
        .expect("valid");
        let servers = cfg.servers_for("cust-7", 1_700_000_000);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].urls, ["stun:stun.example.com:3478"]);
        let turn = &servers[1];
        assert_eq!(turn.username.as_deref(), Some("1700003600:cust-7"));
        assert_eq!(
            turn.credential.as_deref(),
            Some(turn_credential(b"s3cret", "1700003600:cust-7").as_str())
        );
    }

    #[test]
    fn bad_ice_configuration_is_refused() {
        let ttl = Duration::from_secs(60);
        assert!(IceConfig::parse(Some("{}"), &[], &[], None, ttl).is_err());
        assert!(IceConfig::parse(None, &["http://x".into()], &[], None, ttl).is_err());
        assert!(IceConfig::parse(None, &[], &["turn:x".into()], None, ttl).is_err());
        assert!(IceConfig::parse(None, &[], &[], Some("s"), ttl).is_err());
        assert!(IceConfig::parse(None, &[], &["stun:x".into()], Some("s"), ttl).is_err());
        let empty = IceConfig::parse(None, &[], &[], None, ttl).expect("empty is fine");
        assert!(empty.servers_for("x", 0).is_empty());
    }

    #[test]
    fn relayed_messages_survive_the_trip_between_nodes() {
        let g = Relayed::new(
            agent(),
            RelayedBody::Guide(Guidance::Highlight { node: 57 }),
        );
        let back = Relayed::from_bytes("e1", 12, &g.to_bytes()).expect("decodes");
        assert_eq!(back.body, g.body);
        assert_eq!((back.epoch.as_str(), back.offset), ("e1", 12));
        let s = Relayed::new(
            agent(),
            RelayedBody::Signal {
                to: Some("c1".into()),
                signal: Signal {
                    kind: Some("hangup".into()),
                    call: Some("k".into()),
                    ..Default::default()
                },
            },
        );
        let back = Relayed::from_bytes("e1", 0, &s.to_bytes()).expect("decodes");
        assert_eq!(back.body, s.body);
        let c1 = Member {
            id: "c1".into(),
            role: Role::Customer,
        };
        let c2 = Member {
            id: "c2".into(),
            role: Role::Customer,
        };
        assert!(back.is_for(&c1) && !back.is_for(&c2) && !back.is_for(&agent()));
        assert!(g.is_for(&c2) && !g.is_for(&agent()));
    }

    #[tokio::test]
    async fn pointer_moves_over_the_rate_are_coalesced_to_the_newest() {
        let mut r = GuideRates::default();
        let at = |x: f64| Guidance::Pointer {
            x,
            y: 0.0,
            node: None,
        };
        assert_eq!(r.pointer(at(1.0)), Some(at(1.0)));
        assert_eq!(r.pointer(at(2.0)), None);
        assert_eq!(r.pointer(at(3.0)), None);
        let due = r.due().expect("held");
        tokio::time::sleep_until(due).await;
        assert_eq!(r.take_due(), Some(at(3.0)));
        assert!(r.due().is_none());
    }
}
