//! Wire encoding: a short fixed header, then the message body in bincode.
//!
//! ```text
//! +------+------+------+---------+------------------+
//! | 'L'  | 'F'  | kind | version | bincode body ... |
//! +------+------+------+---------+------------------+
//! ```
//!
//! The header lets a receiver refuse a message *before* trying to parse it: a frame published by a
//! newer ingest (version 2) to an older detector is reported as "unsupported version", not as a
//! confusing parse error, and a face sent to the frames subject is reported as "wrong kind".
//! Decoding never panics; every failure is a [`WireError`] whose [`WireError::reason`] is a short,
//! fixed label suitable for a metrics counter.

use serde::{de::DeserializeOwned, Serialize};

const MAGIC: [u8; 2] = *b"LF";
const HEADER_LEN: usize = 4;

/// Upper bound on a decoded message: large enough for a 4K JPEG frame, small enough that a
/// malicious length prefix cannot make a receiver allocate gigabytes.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// The kinds of message on the bus. The numeric value is part of the wire format: never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Frame = 1,
    DetectedFace = 2,
    Embedding = 3,
    CandidateAlert = 4,
    AlertDecision = 5,
    AlertOutcome = 6,
    AuditEvent = 7,
    AlertsErased = 8,
    HoldReleased = 9,
    HoldPlaced = 10,
    HoldLifted = 11,
    BlueWalk = 12,
    ContextRequest = 13,
    ContextReply = 14,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Frame,
            2 => Kind::DetectedFace,
            3 => Kind::Embedding,
            4 => Kind::CandidateAlert,
            5 => Kind::AlertDecision,
            6 => Kind::AlertOutcome,
            7 => Kind::AuditEvent,
            8 => Kind::AlertsErased,
            9 => Kind::HoldReleased,
            10 => Kind::HoldPlaced,
            11 => Kind::HoldLifted,
            12 => Kind::BlueWalk,
            13 => Kind::ContextRequest,
            14 => Kind::ContextReply,
            _ => return None,
        })
    }
}

/// A type that travels on the bus. Implemented by every struct in [`crate::messages`].
pub trait Message: Serialize + DeserializeOwned {
    const KIND: Kind;
    /// Bumped whenever the body's shape changes; receivers accept only the versions they know.
    const VERSION: u8;

    /// Encode with header. Encoding a well-formed struct cannot fail except through a bug.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&MAGIC);
        out.push(Self::KIND as u8);
        out.push(Self::VERSION);
        bincode::serde::encode_into_std_write(self, &mut out, config())
            .expect("encoding into a Vec cannot fail");
        out
    }

    /// Decode, checking magic, kind and version first.
    fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() < HEADER_LEN {
            return Err(WireError::Truncated { len: bytes.len() });
        }
        if bytes[..2] != MAGIC {
            return Err(WireError::NotLfr);
        }
        let found = bytes[2];
        if found != Self::KIND as u8 {
            return Err(WireError::WrongKind {
                expected: Self::KIND,
                found: Kind::from_u8(found),
                found_raw: found,
            });
        }
        let version = bytes[3];
        if version != Self::VERSION {
            return Err(WireError::UnsupportedVersion {
                kind: Self::KIND,
                found: version,
                supported: Self::VERSION,
            });
        }
        let body = &bytes[HEADER_LEN..];
        let (value, used) = bincode::serde::decode_from_slice(body, config())
            .map_err(|e| WireError::Malformed(e.to_string()))?;
        if used != body.len() {
            return Err(WireError::TrailingBytes {
                extra: body.len() - used,
            });
        }
        Ok(value)
    }
}

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_MESSAGE_BYTES>,
> {
    bincode::config::standard().with_limit::<MAX_MESSAGE_BYTES>()
}

/// Why a received message was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    #[error("message too short for an lfr header ({len} bytes)")]
    Truncated { len: usize },
    #[error("not an lfr message (bad magic bytes)")]
    NotLfr,
    #[error("wrong message kind: expected {expected:?}, found {found:?} (raw {found_raw})")]
    WrongKind {
        expected: Kind,
        found: Option<Kind>,
        found_raw: u8,
    },
    #[error(
        "unsupported {kind:?} schema version {found}; this service understands version {supported}"
    )]
    UnsupportedVersion {
        kind: Kind,
        found: u8,
        supported: u8,
    },
    #[error("malformed message body: {0}")]
    Malformed(String),
    #[error("{extra} unexpected bytes after the message body")]
    TrailingBytes { extra: usize },
}

impl WireError {
    /// A fixed, low-cardinality label for the `reason` of a rejection counter.
    pub fn reason(&self) -> &'static str {
        match self {
            WireError::Truncated { .. } | WireError::NotLfr => "not_lfr",
            WireError::WrongKind { .. } => "wrong_kind",
            WireError::UnsupportedVersion { .. } => "unsupported_version",
            WireError::Malformed(_) | WireError::TrailingBytes { .. } => "malformed",
        }
    }
}

/// Re-stamp an encoded message with another version byte. Only for tests of version handling.
#[doc(hidden)]
pub fn with_version(mut encoded: Vec<u8>, version: u8) -> Vec<u8> {
    if encoded.len() >= HEADER_LEN {
        encoded[3] = version;
    }
    encoded
}
