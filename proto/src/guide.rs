//! Agent guidance on the customer's page (`guide` frames) and WebRTC call signaling (`signal`
//! frames), plus the ICE servers a node hands to its clients in `joined`.
//!
//! Both travel as small maps inside the envelope (`guide`, `signal`); the wire structs keep every
//! field optional so that a missing field is an `invalid_frame` (a rule broken) rather than a
//! `malformed` frame (a field of the wrong type), as for every other frame.

use serde::{Deserialize, Deserializer, Serialize};

use crate::types::{all, find, truncate, MAX_ID_LEN};

/// Longest annotation text, in bytes of UTF-8.
pub const MAX_ANNOTATION_TEXT: usize = 500;
/// Largest pointer coordinate (absolute value), in CSS pixels.
pub const MAX_COORDINATE: f64 = 10_000_000.0;
/// Longest SDP in an `offer` or `answer`, in bytes.
pub const MAX_SDP: usize = 32 * 1024;
/// Longest ICE candidate line, in bytes.
pub const MAX_CANDIDATE: usize = 1024;
/// Longest `sdp_mid`, in bytes.
pub const MAX_SDP_MID: usize = 64;
/// Longest hang-up reason, in bytes.
pub const MAX_REASON: usize = 128;

/// What an agent shows on the customer's page. Node ids are rrweb node ids: the agent reads them
/// from its replay, the customer's recorder resolves them to live elements.
#[derive(Debug, Clone, PartialEq)]
pub enum Guidance {
    /// The agent's pointer, in CSS pixels from the top-left corner of the replayed document
    /// (page coordinates: the viewport position plus the scroll offset).
    Pointer {
        /// Horizontal position.
        x: f64,
        /// Vertical position.
        y: f64,
        /// The element under the pointer, when the agent's SDK knows it.
        node: Option<u32>,
    },
    /// Draw a box around one element (replaces the previous highlight).
    Highlight {
        /// rrweb node id.
        node: u32,
    },
    /// A short text bubble anchored to one element (replaces an earlier bubble on that element).
    Annotate {
        /// rrweb node id.
        node: u32,
        /// 1 to [`MAX_ANNOTATION_TEXT`] bytes.
        text: String,
    },
    /// Remove the pointer, the highlight and every annotation.
    Clear,
}

impl Guidance {
    /// The wire `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Guidance::Pointer { .. } => "pointer",
            Guidance::Highlight { .. } => "highlight",
            Guidance::Annotate { .. } => "annotate",
            Guidance::Clear => "clear",
        }
    }

    /// Whether this is a pointer move (rate-limited by coalescing rather than refusal).
    pub fn is_pointer(&self) -> bool {
        matches!(self, Guidance::Pointer { .. })
    }

    /// Validates a wire map.
    pub fn from_wire(w: GuideWire) -> Result<Guidance, String> {
        let node = |n: Option<u32>| match n {
            Some(0) => Err("node must be a positive rrweb node id".to_owned()),
            Some(n) => Ok(n),
            None => Err("missing field `node`".to_owned()),
        };
        match w.kind.as_deref() {
            Some("pointer") => {
                let coord = |v: Option<f64>, name: &str| match v {
                    Some(v) if v.is_finite() && v.abs() <= MAX_COORDINATE => Ok(v),
                    Some(_) => Err(format!("`{name}` must be a finite number of CSS pixels")),
                    None => Err(format!("missing field `{name}`")),
                };
                let x = coord(w.x, "x")?;
                let y = coord(w.y, "y")?;
                let node = w.node.map(|n| node(Some(n))).transpose()?;
                Ok(Guidance::Pointer { x, y, node })
            }
            Some("highlight") => Ok(Guidance::Highlight {
                node: node(w.node)?,
            }),
            Some("annotate") => {
                let node = node(w.node)?;
                let text = w.text.ok_or("missing field `text`")?;
                if text.is_empty() || text.len() > MAX_ANNOTATION_TEXT {
                    return Err(format!("text must be 1 to {MAX_ANNOTATION_TEXT} bytes"));
                }
                Ok(Guidance::Annotate { node, text })
            }
            Some("clear") => Ok(Guidance::Clear),
            Some(other) => Err(format!(
                "unknown guidance kind {:?} (pointer, highlight, annotate, clear)",
                truncate(other, 32)
            )),
            None => Err("missing field `kind`".to_owned()),
        }
    }

    /// The wire map.
    pub fn to_wire(&self) -> GuideWire {
        let mut w = GuideWire {
            kind: Some(self.kind().to_owned()),
            ..Default::default()
        };
        match self {
            Guidance::Pointer { x, y, node } => {
                w.x = Some(*x);
                w.y = Some(*y);
                w.node = *node;
            }
            Guidance::Highlight { node } => w.node = Some(*node),
            Guidance::Annotate { node, text } => {
                w.node = Some(*node);
                w.text = Some(text.clone());
            }
            Guidance::Clear => {}
        }
        w
    }
}

/// The `guide` map as it travels; see [`Guidance`] for the rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GuideWire {
    /// `pointer`, `highlight`, `annotate` or `clear`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Pointer x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<f64>,
    /// Pointer y.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<f64>,
    /// rrweb node id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u32>,
    /// Annotation text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One WebRTC signaling message between a customer and an agent. Media flows peer to peer; the
/// relay only forwards these.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Signal {
    /// `offer`, `answer`, `ice` or `hangup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Call id chosen by the caller (1-128 bytes); every message of one call carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    /// `offer` and `answer`: the session description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp: Option<String>,
    /// `ice`: the candidate line (`""` marks the end of candidates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<String>,
    /// `ice`: the media stream identification tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// `ice`: the m-line index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mline_index: Option<u16>,
    /// `hangup`: why, for humans (at most [`MAX_REASON`] bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Signal {
    /// Checks the fields each kind needs and every size.
    pub fn validate(&self) -> Result<(), String> {
        let call = self.call.as_deref().ok_or("missing field `call`")?;
        if call.is_empty() || call.len() > MAX_ID_LEN {
            return Err(format!("call must be 1 to {} bytes", MAX_ID_LEN));
        }
        let short = |v: &Option<String>, name: &str, max: usize| match v {
            Some(s) if s.len() > max => Err(format!("{name} must be at most {max} bytes")),
            _ => Ok(()),
        };
        short(&self.sdp_mid, "sdp_mid", MAX_SDP_MID)?;
        short(&self.reason, "reason", MAX_REASON)?;
        short(&self.candidate, "candidate", MAX_CANDIDATE)?;
        match self.kind.as_deref() {
            Some("offer") | Some("answer") => match &self.sdp {
                Some(s) if !s.is_empty() && s.len() <= MAX_SDP => Ok(()),
                Some(_) => Err(format!("sdp must be 1 to {MAX_SDP} bytes")),
                None => Err("missing field `sdp`".to_owned()),
            },
            Some("ice") => match &self.candidate {
                Some(_) => Ok(()),
                None => Err("missing field `candidate`".to_owned()),
            },
            Some("hangup") => Ok(()),
            Some(other) => Err(format!(
                "unknown signal kind {:?} (offer, answer, ice, hangup)",
                truncate(other, 32)
            )),
            None => Err("missing field `kind`".to_owned()),
        }
    }
}

/// A STUN or TURN server for `RTCPeerConnection`'s `iceServers`, as announced in `joined`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs (a single string is accepted on input).
    #[serde(deserialize_with = "one_or_many")]
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Urls {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Urls::deserialize(d)? {
        Urls::One(u) => vec![u],
        Urls::Many(v) => v,
    })
}

/// Deserializes `Option<T>` from a map only (or `null`): serde's derive would also read a struct
/// from an array, which the protocol does not define.
pub(crate) fn opt_map<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct MapOnly<T>(T);
    impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOnly<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<T>(std::marker::PhantomData<T>);
            impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
                type Value = T;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a map")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                    T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                }
            }
            d.deserialize_map(V(std::marker::PhantomData)).map(MapOnly)
        }
    }
    Ok(Option::<MapOnly<T>>::deserialize(d)?.map(|m| m.0))
}

/// What a token may do beyond its role (the `caps` claim).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::EnumCount,
)]
#[strum(serialize_all = "snake_case")]
pub enum Capability {
    /// Send `guide` frames (agents).
    Guide,
    /// Signal WebRTC calls (agents; customers always may, and consent in their app).
    Call,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; <Capability as strum::EnumCount>::COUNT] =
        all(<Capability as strum::VariantArray>::VARIANTS);

    /// The claim string.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl std::str::FromStr for Capability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        find(s).ok_or_else(|| format!("unknown capability {s:?} (expected guide or call)"))
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
