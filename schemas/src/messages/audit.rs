//! Audit events: the processing operations that UK DPA 2018 s.62 requires a log of.
//!
//! Events form a hash chain on the AUDIT stream: each carries the hash of the event stored before
//! it ([`AuditEvent::prev_hash`]) and its own hash over everything else it says
//! ([`AuditEvent::compute_hash`]), so an event altered, removed or inserted after the fact breaks
//! every later link. `lfr_common::audit` appends and verifies the chain.

use super::Timestamp;
use crate::wire::{Kind, Message};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditAction {
    Collection,
    Alteration,
    Consultation,
    Disclosure,
    Combination,
    Erasure,
    Login,
    ConfigurationChange,
}

impl AuditAction {
    pub const ALL: [AuditAction; 8] = [
        AuditAction::Collection,
        AuditAction::Alteration,
        AuditAction::Consultation,
        AuditAction::Disclosure,
        AuditAction::Combination,
        AuditAction::Erasure,
        AuditAction::Login,
        AuditAction::ConfigurationChange,
    ];

    /// A stable lower-case name (`consultation`, `configuration_change`, ...). Part of the chain's
    /// hash input: never change one.
    pub fn name(self) -> &'static str {
        match self {
            AuditAction::Collection => "collection",
            AuditAction::Alteration => "alteration",
            AuditAction::Consultation => "consultation",
            AuditAction::Disclosure => "disclosure",
            AuditAction::Combination => "combination",
            AuditAction::Erasure => "erasure",
            AuditAction::Login => "login",
            AuditAction::ConfigurationChange => "configuration_change",
        }
    }

    /// The action named by [`AuditAction::name`] (also accepting `-` for `_`, any case).
    pub fn from_name(name: &str) -> Option<AuditAction> {
        let wanted = name.trim().to_ascii_lowercase().replace('-', "_");
        AuditAction::ALL.into_iter().find(|a| a.name() == wanted)
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What an audit event is about, by reference (never by content): the typed form of
/// [`AuditEvent::object`]. Each renders as `<kind>/<id>` ([`AuditObject::kind`]), the strings the
/// log has always held, so a query like `lfr audit query --object 'alert/*'` finds old and new
/// events alike; [`AuditObject::parse`] reads one back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AuditObject {
    /// `alert/<alert id>`: a candidate alert, its images, decision and outcomes.
    Alert(String),
    /// `deployment/<deployment id>`: a deployment's record (and holds on all its alerts).
    Deployment(String),
    /// `watchlist/<deployment id>`: the watch list attached to a deployment.
    Watchlist(String),
    /// `account/<account id>`: a console account (logins, changes).
    Account(String),
    /// `access-request/<reference>`: a data subject's right of access request.
    AccessRequest(String),
    /// `key/<deployment id>`: a deployment's data key (crypto-shredding).
    Key(String),
    /// `vault/<bucket>`: the key store itself (rotation of the master key).
    Vault(String),
}

impl AuditObject {
    /// The prefix before the `/`. Part of the stored `object` string: never change one.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditObject::Alert(_) => "alert",
            AuditObject::Deployment(_) => "deployment",
            AuditObject::Watchlist(_) => "watchlist",
            AuditObject::Account(_) => "account",
            AuditObject::AccessRequest(_) => "access-request",
            AuditObject::Key(_) => "key",
            AuditObject::Vault(_) => "vault",
        }
    }

    /// The reference after the `/`.
    pub fn id(&self) -> &str {
        match self {
            AuditObject::Alert(id)
            | AuditObject::Deployment(id)
            | AuditObject::Watchlist(id)
            | AuditObject::Account(id)
            | AuditObject::AccessRequest(id)
            | AuditObject::Key(id)
            | AuditObject::Vault(id) => id,
        }
    }

    /// The object an `object` string names, if it is `<known kind>/<non-empty id>`.
    pub fn parse(object: &str) -> Option<AuditObject> {
        let (kind, id) = object.split_once('/')?;
        if id.is_empty() {
            return None;
        }
        let id = id.to_string();
        Some(match kind {
            "alert" => AuditObject::Alert(id),
            "deployment" => AuditObject::Deployment(id),
            "watchlist" => AuditObject::Watchlist(id),
            "account" => AuditObject::Account(id),
            "access-request" => AuditObject::AccessRequest(id),
            "key" => AuditObject::Key(id),
            "vault" => AuditObject::Vault(id),
            _ => return None,
        })
    }
}

impl std::fmt::Display for AuditObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind(), self.id())
    }
}

/// One logged operation: who, when, why, on what. Objects are references and digests, never
/// images or templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub event_id: String,
    pub at: Timestamp,
    pub action: AuditAction,
    /// Account id or service name.
    pub actor: String,
    pub role: String,
    pub deployment: Option<String>,
    /// What was acted on, e.g. `alert/<id>` or `watchlist/<deployment>`.
    pub object: String,
    pub justification: String,
    /// Accounts or devices a disclosure went to.
    pub recipients: Vec<String>,
    /// Hex sha256 of the object's content, where there is content.
    pub digest: Option<String>,
    /// [`AuditEvent::hash`] of the event stored just before this one on the AUDIT stream, or
    /// [`AuditEvent::GENESIS_HASH`] for the first.
    pub prev_hash: String,
    /// [`AuditEvent::compute_hash`] of this event, lower-case hex.
    pub hash: String,
}

impl AuditEvent {
    /// The `prev_hash` of the first event of a chain: 64 zeros.
    pub const GENESIS_HASH: &'static str =
        "0000000000000000000000000000000000000000000000000000000000000000";

    /// The chain hash of this event: lower-case hex SHA-256 over a canonical encoding of every
    /// field except `hash` itself.
    ///
    /// The input is the domain tag `lfr-audit-event-v2` followed by, in this order: `event_id`,
    /// `at` (nanoseconds since the Unix epoch, u64 big-endian), `action` (its
    /// [`AuditAction::name`]), `actor`, `role`, `deployment`, `object`, `justification`,
    /// `recipients` (count as u64 big-endian, then each string), `digest`, `prev_hash`.
    /// Every string, the tag included, is its UTF-8 length as u64 big-endian then its bytes; an
    /// optional field is the byte 0 when absent, or 1 followed by the string when present. The
    /// length prefixes make the encoding unambiguous: no two different events share an input.
    ///
    /// Not covered: the stream sequence and subject, which the verifier checks separately (no
    /// gaps; subject matches `deployment`).
    pub fn compute_hash(&self) -> String {
        fn string(h: &mut Sha256, s: &str) {
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
        fn optional(h: &mut Sha256, s: Option<&str>) {
            match s {
                None => h.update([0u8]),
                Some(s) => {
                    h.update([1u8]);
                    string(h, s);
                }
            }
        }
        let mut h = Sha256::new();
        string(&mut h, "lfr-audit-event-v2");
        string(&mut h, &self.event_id);
        h.update(self.at.0.to_be_bytes());
        string(&mut h, self.action.name());
        string(&mut h, &self.actor);
        string(&mut h, &self.role);
        optional(&mut h, self.deployment.as_deref());
        string(&mut h, &self.object);
        string(&mut h, &self.justification);
        h.update((self.recipients.len() as u64).to_be_bytes());
        for r in &self.recipients {
            string(&mut h, r);
        }
        optional(&mut h, self.digest.as_deref());
        string(&mut h, &self.prev_hash);
        hex(&h.finalize())
    }

    /// The `prev_hash` for an event appended after the stored message `payload`: that event's
    /// `hash` as it claims it, or, if the payload is not an [`AuditEvent`] this version
    /// understands (corrupted, foreign), the hex SHA-256 of the raw payload, so writers can still
    /// extend the log. A verifier reports such a message as a break either way.
    pub fn link_hash(payload: &[u8]) -> String {
        match AuditEvent::decode(payload) {
            Ok(event) => event.hash,
            Err(_) => hex(&Sha256::digest(payload)),
        }
    }

    /// Set `prev_hash` and then `hash` so the event links onto `prev_hash`.
    pub fn seal(&mut self, prev_hash: &str) {
        self.prev_hash = prev_hash.to_string();
        self.hash = self.compute_hash();
    }
}

/// Lower-case hex, as digests are written in events and records.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

impl Message for AuditEvent {
    const KIND: Kind = Kind::AuditEvent;
    /// 2: `prev_hash` and `hash` (the chain).
    const VERSION: u8 = 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> AuditEvent {
        AuditEvent {
            event_id: "e1".into(),
            at: Timestamp(1_795_867_200_000_000_000),
            action: AuditAction::Disclosure,
            actor: "op-1".into(),
            role: "operator".into(),
            deployment: Some("match-day".into()),
            object: "alert/7".into(),
            justification: "confirmed candidate".into(),
            recipients: vec!["officer-3".into(), "officer-9".into()],
            digest: None,
            prev_hash: AuditEvent::GENESIS_HASH.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn the_hash_is_stable_and_covers_every_field() {
        let mut e = event();
        e.seal(AuditEvent::GENESIS_HASH);
        assert_eq!(e.hash.len(), 64);
        assert_eq!(e.hash, e.compute_hash(), "deterministic");
        // Changing any one field changes the hash.
        type Change = Box<dyn Fn(&mut AuditEvent)>;
        let variants: Vec<Change> = vec![
            Box::new(|e| e.event_id.push('x')),
            Box::new(|e| e.at.0 += 1),
            Box::new(|e| e.action = AuditAction::Consultation),
            Box::new(|e| e.actor.push('x')),
            Box::new(|e| e.role.push('x')),
            Box::new(|e| e.deployment = None),
            Box::new(|e| e.object.push('x')),
            Box::new(|e| e.justification.push('x')),
            Box::new(|e| {
                e.recipients.pop();
            }),
            Box::new(|e| e.digest = Some(String::new())),
            Box::new(|e| e.prev_hash = "1".repeat(64)),
        ];
        for change in variants {
            let mut other = e.clone();
            change(&mut other);
            assert_ne!(other.compute_hash(), e.hash, "{other:?}");
        }
        // Length prefixes: moving a character between adjacent fields changes the hash.
        let mut shifted = e.clone();
        shifted.actor = "op-1o".into();
        shifted.role = "perator".into();
        assert_ne!(shifted.compute_hash(), e.hash);
        let mut joined = e.clone();
        joined.recipients = vec!["officer-3officer-9".into()];
        assert_ne!(joined.compute_hash(), e.hash);
    }

    #[test]
    fn objects_render_as_the_log_has_always_named_them() {
        let cases = [
            (AuditObject::Alert("a1".into()), "alert/a1"),
            (
                AuditObject::Deployment("match-day".into()),
                "deployment/match-day",
            ),
            (
                AuditObject::Watchlist("match-day".into()),
                "watchlist/match-day",
            ),
            (AuditObject::Account("op-1".into()), "account/op-1"),
            (
                AuditObject::AccessRequest("SAR-1".into()),
                "access-request/SAR-1",
            ),
            (AuditObject::Key("match-day".into()), "key/match-day"),
            (AuditObject::Vault("lfr-keys".into()), "vault/lfr-keys"),
        ];
        for (object, written) in cases {
            assert_eq!(object.to_string(), written);
            assert_eq!(AuditObject::parse(written), Some(object));
        }
        for not_an_object in ["alert/", "alert", "frame/1", "/a1", ""] {
            assert_eq!(AuditObject::parse(not_an_object), None, "{not_an_object:?}");
        }
    }

    #[test]
    fn actions_have_stable_names() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::from_name(a.name()), Some(a));
        }
        assert_eq!(
            AuditAction::from_name("Configuration-Change"),
            Some(AuditAction::ConfigurationChange)
        );
        assert_eq!(AuditAction::from_name("nonsense"), None);
    }
}
