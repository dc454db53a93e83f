//! Signed audit anchors: the chain's head, kept where the writers cannot reach it.
//!
//! The hash chain on AUDIT ([`crate::audit`]) shows an event altered, inserted or removed in the
//! middle of the log. It cannot show a log cut short at its end, or one deleted and rebuilt with
//! valid hashes from the first event on: that is a chain too. What can is a point of the old
//! chain written down somewhere else (an [`Anchor`]: sequence and hash) that the new log no
//! longer passes through. So that point is kept out of the writers' reach:
//!
//! - **signed**: after each check that finds the chain intact, the verifier (the purge service,
//!   the only holder of an Ed25519 [`AnchorKey`]) signs the sequence and hash of the chain's last
//!   event, when it checked, and when AUDIT was created ([`SignedAnchor`]). A log deleted and
//!   declared again has a new creation time, even if every old event is copied into it.
//! - **stored outside AUDIT**: in the bucket `lfr-audit-anchors`, which only purge may write and
//!   the administrator only read; nobody may delete from it or purge it (the stream refuses both,
//!   and so do the permissions), so every anchor ever signed stays there.
//! - **exportable**: `lfr audit anchors export` writes the latest one as JSON, for an auditor to
//!   keep offline; `lfr audit verify --anchor-file` checks the log against it later, which still
//!   works if someone with the server's own rights has removed the bucket as well.
//!
//! A verifier trusts an anchor only when it is signed by a key it already knows ([`PublicKey`]:
//! configured, given on the command line, or in a file it kept). The key written inside a record
//! proves nothing on its own: a forger signs with a key of their own and writes that in.
//!
//! [`check`] verifies the chain against anchors; [`Notary`] is the verifier's side: read the
//! latest anchor back from the bucket at every check (so a restart loses nothing), verify the
//! chain against it, and sign the new head when everything is intact.

use crate::audit::{self, Anchor, ChainReport};
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use lfr_schemas::streams::{self, buckets};
use lfr_schemas::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use tokio::sync::Mutex;

/// The key under which every anchor is stored (each one a new revision; all are kept).
pub const LATEST: &str = "latest";

/// The subject of [`LATEST`] in the anchors bucket.
pub fn subject() -> String {
    format!("$KV.{}.{LATEST}", buckets::AUDIT_ANCHORS)
}

/// Domain tag of the signed bytes: a signature made for anything else never verifies here.
const DOMAIN: &str = "lfr-audit-anchor-v1";

/// The verifier's private signing key: 32 random bytes, stored as 64 hex digits in a file that
/// only the purge service can read.
pub struct AnchorKey {
    signing: SigningKey,
}

impl AnchorKey {
    /// A new key from the operating system's random generator.
    pub fn generate() -> anyhow::Result<AnchorKey> {
        use std::io::Read;
        let mut seed = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
        Ok(AnchorKey {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// The key in `path`.
    pub fn load(path: &Path) -> anyhow::Result<AnchorKey> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the anchor key {}: {e}", path.display()))?;
        let seed: [u8; 32] = unhex(text.trim())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{} is not an anchor key (64 hex digits); restore it from its backup",
                    path.display()
                )
            })?;
        use std::os::unix::fs::PermissionsExt;
        // Group-readable is how Kubernetes mounts a Secret for a pod's fsGroup; world is not.
        if std::fs::metadata(path)?.permissions().mode() & 0o007 != 0 {
            tracing::warn!(path = %path.display(), "the audit anchor key is readable by anyone: chmod 600 it");
        }
        Ok(AnchorKey {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// The key in `path`, created there (mode 0600 from the first byte, never over an existing
    /// file) when there is none. Returns whether it was created.
    pub fn load_or_create(path: &Path) -> anyhow::Result<(AnchorKey, bool)> {
        if path.exists() {
            return Ok((AnchorKey::load(path)?, false));
        }
        let key = AnchorKey::generate()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
        file.write_all(format!("{}\n", hex(&key.signing.to_bytes())).as_bytes())?;
        file.sync_all()?;
        Ok((key, true))
    }

    /// What verifiers are given to trust this key's anchors.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key())
    }

    /// Sign `point` of the chain of the AUDIT created at `audit_created_ns`, checked at `at`.
    pub fn sign(&self, point: &Anchor, at: Timestamp, audit_created_ns: i64) -> SignedAnchor {
        let mut anchor = SignedAnchor {
            seq: point.seq,
            hash: point.hash.clone(),
            at,
            audit_created_ns,
            key: self.public().to_string(),
            signature: String::new(),
        };
        anchor.signature = hex(&self.signing.sign(&anchor.signed_bytes()).to_bytes());
        anchor
    }
}

/// A verifier's trusted public key, written as 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(self.0.as_bytes()))
    }
}

impl std::str::FromStr for PublicKey {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<PublicKey> {
        let bytes: [u8; 32] = unhex(s.trim())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| anyhow::anyhow!("{s:?} is not an anchor public key (64 hex digits)"))?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| anyhow::anyhow!("{s:?} is not an ed25519 public key"))
    }
}

/// A point of the chain as the verifier signed it: what the bucket holds and what an auditor
/// keeps (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAnchor {
    /// The chain's length when it was found intact (the stream sequence of its last event).
    pub seq: u64,
    /// The hash of that event.
    pub hash: String,
    /// When the verifier found it intact.
    pub at: Timestamp,
    /// When AUDIT was created, as the server reports it (nanoseconds since the epoch).
    pub audit_created_ns: i64,
    /// The signer's public key (hex); trusted only if the verifier already knows it.
    pub key: String,
    /// Ed25519 signature (hex) over every field above.
    pub signature: String,
}

impl SignedAnchor {
    fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "{DOMAIN}\nseq={}\nhash={}\nat={}\naudit_created={}\nkey={}\n",
            self.seq, self.hash, self.at.0, self.audit_created_ns, self.key
        )
        .into_bytes()
    }

    /// The chain point this anchors.
    pub fn point(&self) -> Anchor {
        Anchor {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }

    /// Whether one of the `trusted` keys signed this anchor exactly as it reads.
    pub fn verify(&self, trusted: &[PublicKey]) -> Result<(), Problem> {
        let forged = |why: &str| Problem::Forged {
            seq: self.seq,
            why: why.into(),
        };
        let key: PublicKey = self
            .key
            .parse()
            .map_err(|_| forged("its key is malformed"))?;
        if !trusted.contains(&key) {
            return Err(Problem::UntrustedKey {
                seq: self.seq,
                key: self.key.clone(),
            });
        }
        let signature: [u8; 64] = unhex(&self.signature)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| forged("its signature is malformed"))?;
        key.0
            .verify_strict(&self.signed_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| forged("its signature does not verify"))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an anchor serialises")
    }

    pub fn from_json(text: &str) -> anyhow::Result<SignedAnchor> {
        serde_json::from_str(text).map_err(|e| anyhow::anyhow!("not a signed audit anchor: {e}"))
    }
}

/// Something wrong with the anchors themselves (the chain's own breaks are in [`ChainReport`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The anchor is not signed by its key as it reads: altered or forged.
    Forged { seq: u64, why: String },
    /// Signed by a key the verifier does not trust: a forger's, or an old key after a rotation
    /// that was not listed as trusted.
    UntrustedKey { seq: u64, key: String },
    /// AUDIT was created after the anchored log was: deleted and declared again.
    Recreated { anchored_ns: i64, found_ns: i64 },
    /// The anchors bucket has held anchors (its last sequence) but none can be read now.
    Removed { last_sequence: u64 },
    /// The latest anchor is older than one this verifier stored itself: the bucket was rewound.
    RolledBack { stored: u64, found: Option<u64> },
    /// A message in the bucket is not a signed anchor.
    Undecodable { seq: u64, why: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Forged { seq, why } => {
                write!(f, "FORGED anchor (sequence {seq}): {why}")
            }
            Problem::UntrustedKey { seq, key } => write!(
                f,
                "UNTRUSTED anchor (sequence {seq}): signed by key {key}, which is not a trusted \
                 anchor key"
            ),
            Problem::Recreated {
                anchored_ns,
                found_ns,
            } => write!(
                f,
                "AUDIT RE-CREATED: the log was created at {}, but the anchored log was created at \
                 {}: it was deleted and declared again",
                utc(*found_ns),
                utc(*anchored_ns)
            ),
            Problem::Removed { last_sequence } => write!(
                f,
                "ANCHORS REMOVED: the anchors bucket has held {last_sequence} anchor(s), none can \
                 be read"
            ),
            Problem::RolledBack { stored, found } => write!(
                f,
                "ANCHORS ROLLED BACK: this verifier stored an anchor at sequence {stored}, the \
                 latest now is {}",
                found.map_or("none".to_string(), |s| format!("at sequence {s}"))
            ),
            Problem::Undecodable { seq, why } => {
                write!(f, "anchor message {seq} is not a signed anchor: {why}")
            }
        }
    }
}

/// RFC 3339 UTC with nanoseconds, from nanoseconds since the epoch.
pub fn utc(ns: i64) -> String {
    let (secs, nanos) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = crate::calendar::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// What the anchors bucket holds at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Latest {
    /// Nothing was ever anchored.
    Empty,
    Found(SignedAnchor),
    /// Its end cannot be trusted as it is.
    Problem(Problem),
}

/// Read the latest anchor from the bucket (its signature is not checked here).
pub async fn latest(js: &async_nats::jetstream::Context) -> anyhow::Result<Latest> {
    let name = buckets::stream(buckets::AUDIT_ANCHORS);
    let stream = js
        .get_stream(&name)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the anchors bucket {name}: {e}"))?;
    match stream.get_last_raw_message_by_subject(&subject()).await {
        Ok(m) => Ok(match serde_json::from_slice::<SignedAnchor>(&m.payload) {
            Ok(anchor) => Latest::Found(anchor),
            Err(e) => Latest::Problem(Problem::Undecodable {
                seq: m.sequence,
                why: e.to_string(),
            }),
        }),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
            let last_sequence = stream.cached_info().state.last_sequence;
            Ok(if last_sequence > 0 {
                Latest::Problem(Problem::Removed { last_sequence })
            } else {
                Latest::Empty
            })
        }
        Err(e) => Err(anyhow::anyhow!("cannot read the anchors bucket: {e}")),
    }
}

/// Store `anchor` as the new latest (the verifier's identity alone may).
pub async fn store(
    js: &async_nats::jetstream::Context,
    anchor: &SignedAnchor,
) -> anyhow::Result<()> {
    let body = serde_json::to_vec(anchor)?;
    js.publish(subject(), body.into())
        .await
        .map_err(|e| anyhow::anyhow!("anchor not stored: {e}"))?
        .await
        .map_err(|e| anyhow::anyhow!("anchor not stored: {e}"))?;
    Ok(())
}

/// When AUDIT was created, in nanoseconds since the epoch.
pub async fn audit_created(js: &async_nats::jetstream::Context) -> anyhow::Result<i64> {
    let stream = js
        .get_stream(streams::AUDIT)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the {} stream: {e}", streams::AUDIT))?;
    Ok(stream.cached_info().created.unix_timestamp_nanos() as i64)
}

/// What [`check`] found: the chain's report (against the first anchor it fails, if any) and
/// every problem with the anchors themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub chain: ChainReport,
    pub problems: Vec<Problem>,
    /// The anchors whose signature verified and that the chain was checked against.
    pub checked: Vec<SignedAnchor>,
    /// The anchor signed by this check ([`Notary::check_and_anchor`] only).
    pub signed: Option<SignedAnchor>,
}

impl Verdict {
    pub fn is_intact(&self) -> bool {
        self.chain.is_intact() && self.problems.is_empty()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.chain)?;
        for p in &self.problems {
            write!(f, "\n{p}")?;
        }
        Ok(())
    }
}

/// Verify the chain from `from` on against each of `anchors` that one of `trusted` signed, and
/// that AUDIT is still the log they were taken of. An anchor that does not verify is a problem,
/// not a point to check against.
pub async fn check(
    js: &async_nats::jetstream::Context,
    anchors: &[SignedAnchor],
    trusted: &[PublicKey],
    from: u64,
) -> anyhow::Result<Verdict> {
    let mut problems = Vec::new();
    let mut checked = Vec::new();
    for a in anchors {
        match a.verify(trusted) {
            Ok(()) => checked.push(a.clone()),
            Err(p) => problems.push(p),
        }
    }
    if !checked.is_empty() {
        let found_ns = audit_created(js).await?;
        for a in &checked {
            let recreated = Problem::Recreated {
                anchored_ns: a.audit_created_ns,
                found_ns,
            };
            if a.audit_created_ns != found_ns && !problems.contains(&recreated) {
                problems.push(recreated);
            }
        }
    }
    let mut chain = None;
    for a in &checked {
        let report = audit::verify_from(js, from, Some(&a.point())).await?;
        let broken = !report.is_intact();
        chain = Some(report);
        if broken {
            break;
        }
    }
    let chain = match chain {
        Some(c) => c,
        None => audit::verify_from(js, from, None).await?,
    };
    Ok(Verdict {
        chain,
        problems,
        checked,
        signed: None,
    })
}

/// The verifier's side (the purge service): its key, the public keys of earlier rotations it
/// still trusts, and the last anchor it stored itself.
pub struct Notary {
    key: AnchorKey,
    trusted: Vec<PublicKey>,
    stored: Mutex<Option<SignedAnchor>>,
}

impl Notary {
    pub fn new(key: AnchorKey, previous_keys: Vec<PublicKey>) -> Notary {
        let mut trusted = vec![key.public()];
        trusted.extend(previous_keys);
        Notary {
            key,
            trusted,
            stored: Mutex::new(None),
        }
    }

    pub fn public(&self) -> PublicKey {
        self.key.public()
    }

    /// One check: read the latest anchor back, verify the chain against it, and when all is
    /// intact and the chain has grown, sign and store its new head. Nothing is signed unless the
    /// chain verified against the latest anchor: a rebuilt log is never blessed.
    pub async fn check_and_anchor(
        &self,
        js: &async_nats::jetstream::Context,
        now: Timestamp,
    ) -> anyhow::Result<Verdict> {
        let mut stored = self.stored.lock().await;
        let mut anchors = Vec::new();
        let mut problems = Vec::new();
        match latest(js).await? {
            Latest::Empty => {}
            Latest::Found(a) => anchors.push(a),
            Latest::Problem(p) => problems.push(p),
        }
        if let Some(mine) = stored.as_ref() {
            let found = anchors.first().map(|a| a.seq);
            if found.is_none_or(|s| s < mine.seq) {
                problems.push(Problem::RolledBack {
                    stored: mine.seq,
                    found,
                });
                // Still check against what this verifier signed itself.
                anchors.push(mine.clone());
            }
        }
        let mut verdict = check(js, &anchors, &self.trusted, 1).await?;
        problems.append(&mut verdict.problems);
        verdict.problems = problems;
        if !verdict.is_intact() {
            return Ok(verdict);
        }
        let Some(head) = verdict.chain.anchor() else {
            return Ok(verdict);
        };
        if verdict.checked.iter().any(|a| a.seq >= head.seq) {
            return Ok(verdict);
        }
        let signed = self.key.sign(&head, now, audit_created(js).await?);
        store(js, &signed).await?;
        *stored = Some(signed.clone());
        verdict.signed = Some(signed);
        Ok(verdict)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point() -> Anchor {
        Anchor {
            seq: 12,
            hash: "ab".repeat(32),
        }
    }

    #[test]
    fn an_anchor_verifies_under_its_key_and_nothing_else() {
        let key = AnchorKey::generate().unwrap();
        let anchor = key.sign(&point(), Timestamp(7), 42);
        assert_eq!(anchor.verify(&[key.public()]), Ok(()));
        let back = SignedAnchor::from_json(&anchor.to_json()).unwrap();
        assert_eq!(back, anchor);

        // Any field changed after signing: the signature no longer verifies.
        for altered in [
            SignedAnchor {
                seq: 13,
                ..anchor.clone()
            },
            SignedAnchor {
                hash: "cd".repeat(32),
                ..anchor.clone()
            },
            SignedAnchor {
                audit_created_ns: 43,
                ..anchor.clone()
            },
        ] {
            assert!(
                matches!(altered.verify(&[key.public()]), Err(Problem::Forged { .. })),
                "{altered:?}"
            );
        }

        // A forger signs with their own key and writes it in: not a key the verifier trusts.
        let forger = AnchorKey::generate().unwrap();
        let forged = forger.sign(&point(), Timestamp(7), 42);
        assert!(matches!(
            forged.verify(&[key.public()]),
            Err(Problem::UntrustedKey { seq: 12, .. })
        ));
        // Claiming the trusted key without holding it: the signature fails.
        let claimed = SignedAnchor {
            key: key.public().to_string(),
            ..forged
        };
        assert!(matches!(
            claimed.verify(&[key.public()]),
            Err(Problem::Forged { .. })
        ));
    }

    #[test]
    fn the_key_file_is_made_once_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/audit-anchor.key");
        let (key, created) = AnchorKey::load_or_create(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = AnchorKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again.public(), key.public());
        let public: PublicKey = key.public().to_string().parse().unwrap();
        assert_eq!(public, key.public());
        std::fs::write(&path, "not a key\n").unwrap();
        let e = AnchorKey::load(&path).err().unwrap().to_string();
        assert!(e.contains("is not an anchor key"), "{e}");
    }

    #[test]
    fn times_print_in_utc() {
        assert_eq!(
            utc(1_500_000_000_123_456_789),
            "2017-07-14T02:40:00.123456789Z"
        );
    }
}
