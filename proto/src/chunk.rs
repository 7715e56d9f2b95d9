//! Chunked transfer of large rrweb events.
//!
//! An event whose frame would exceed the relay's frame limit travels as `chunk` frames: slices of
//! the event's JSON text, numbered `0..count`, with the total `size` in bytes. Customers upload
//! that way (with a `digest` of the whole, checked when the relay stitches); the relay delivers
//! large events to viewers the same way (with the room `offset`). In JSON frames a slice is a
//! string (so it must end on a UTF-8 character boundary); in MessagePack frames it is `bin` (any
//! boundary) or `str`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// Most chunks one upload may have.
pub const MAX_CHUNKS: u32 = 65_536;

/// The digest algorithm prefix every upload digest carries.
pub const DIGEST_PREFIX: &str = "sha256:";

/// One slice of an event's JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkData<'a> {
    /// A string slice (JSON frames; also accepted in MessagePack).
    Text(Cow<'a, str>),
    /// Raw bytes (MessagePack `bin`).
    Bytes(Cow<'a, [u8]>),
}

impl ChunkData<'_> {
    /// The slice's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            ChunkData::Text(s) => s.as_bytes(),
            ChunkData::Bytes(b) => b,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the slice is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Detaches the slice from the buffer it was decoded from.
    pub fn into_owned(self) -> ChunkData<'static> {
        match self {
            ChunkData::Text(s) => ChunkData::Text(Cow::Owned(s.into_owned())),
            ChunkData::Bytes(b) => ChunkData::Bytes(Cow::Owned(b.into_owned())),
        }
    }
}

impl Serialize for ChunkData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ChunkData::Text(t) => s.serialize_str(t),
            ChunkData::Bytes(b) => s.serialize_bytes(b),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ChunkData<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ChunkData<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or bytes")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ChunkData::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ChunkData::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(ChunkData::Text(Cow::Owned(v)))
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(ChunkData::Bytes(Cow::Borrowed(v)))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(ChunkData::Bytes(Cow::Owned(v.to_vec())))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
                Ok(ChunkData::Bytes(Cow::Owned(v)))
            }
            // serde_json writes bytes as an array of numbers; accept that form back.
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(ChunkData::Bytes(Cow::Owned(out)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Checks an upload digest: `sha256:` and 64 lowercase hex digits.
pub fn validate_digest(digest: &str) -> Result<(), String> {
    let hex = digest
        .strip_prefix(DIGEST_PREFIX)
        .ok_or_else(|| format!("digest must start with {DIGEST_PREFIX:?}"))?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("digest must be sha256: followed by 64 lowercase hex digits".into());
    }
    Ok(())
}

/// Splits `json` into slices of at most `max` bytes that end on UTF-8 character boundaries (so
/// each can travel as a JSON string). `max` must be at least 4.
pub fn split_text(json: &str, max: usize) -> Vec<&str> {
    let max = max.max(4);
    let mut out = Vec::with_capacity(json.len() / max + 1);
    let mut rest = json;
    while !rest.is_empty() {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (head, tail) = rest.split_at(end);
        out.push(head);
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_text_keeps_characters_whole() {
        let s = "ab张三丰cd".repeat(10);
        for max in 4..20 {
            let parts = split_text(&s, max);
            assert!(parts.iter().all(|p| p.len() <= max && !p.is_empty()));
            assert_eq!(parts.concat(), s);
        }
        assert!(split_text("", 8).is_empty());
    }

    #[test]
    fn digests_are_checked() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert!(validate_digest(&ok).is_ok());
        assert!(validate_digest(&"a".repeat(64)).is_err());
        assert!(validate_digest(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(validate_digest("sha256:abc").is_err());
    }
}
