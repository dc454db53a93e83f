//! Registered subject access requests: the `lfr-access-requests` bucket (file storage, 64
//! revisions of history per request, read and written by the administrator's CLI only).
//!
//! One JSON record per request, keyed by its reference: who asked (as the force names them), who
//! verified their identity, on what evidence and when, the scope the request covers (deployments,
//! a period), every search and export made for it (the photo's sha256, never the photo; every
//! alert found), and its closure. Changes use the bucket's revisions (optimistic concurrency), so
//! two supervisors recording searches on the same request at once both land.

use async_nats::jetstream::{self, kv};
use lfr_schemas::{CandidateAlert, Timestamp};
use serde::{Deserialize, Serialize};

pub const BUCKET: &str = lfr_schemas::streams::buckets::ACCESS_REQUESTS;
/// Longest free text (requester's name, identity evidence, closure reason).
const MAX_TEXT: usize = 200;
/// Attempts at an update when others keep changing the same request.
const UPDATE_ATTEMPTS: usize = 20;

/// One registered request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// The force's reference (the key).
    pub reference: String,
    /// The requester, as the force names them in its SAR file.
    pub requester: String,
    /// Account id of the supervisor who verified the requester's identity (data about the
    /// request: not necessarily who registered it).
    pub identity_verified_by: String,
    /// What the identity was verified on (e.g. "passport seen").
    pub identity_evidence: String,
    #[serde(with = "utc")]
    pub registered_at: Timestamp,
    /// The logged-in account that registered it (empty in records from before logins).
    #[serde(default)]
    pub registered_by: String,
    pub scope: Scope,
    /// Every search and export made for the request, oldest first.
    pub searches: Vec<SearchRecord>,
    pub closed: Option<Closure>,
}

/// What a request covers: alerts of these deployments (all if none are named), raised in this
/// period (either end open).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    pub deployments: Vec<String>,
    #[serde(with = "utc_opt", default)]
    pub from: Option<Timestamp>,
    #[serde(with = "utc_opt", default)]
    pub to: Option<Timestamp>,
}

impl Scope {
    /// Whether a search for this request may look at `alert`.
    pub fn covers(&self, alert: &CandidateAlert) -> bool {
        (self.deployments.is_empty() || self.deployments.contains(&alert.deployment))
            && self.from.is_none_or(|from| alert.raised_at >= from)
            && self.to.is_none_or(|to| alert.raised_at <= to)
    }

    /// `deployments match-day, away-day; raised 2026-11-01T00:00:00Z to any time`.
    pub fn describe(&self) -> String {
        let deployments = if self.deployments.is_empty() {
            "all deployments".to_string()
        } else {
            format!("deployments {}", self.deployments.join(", "))
        };
        let end = |t: Option<Timestamp>| t.map_or("any time".to_string(), format_utc);
        if self.from.is_none() && self.to.is_none() {
            format!("{deployments}; any time")
        } else {
            format!(
                "{deployments}; raised {} to {}",
                end(self.from),
                end(self.to)
            )
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchKind {
    /// `lfr access search`: a consultation.
    Search,
    /// `lfr access export`: a disclosure to the data subject.
    Export,
}

impl SearchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchKind::Search => "search",
            SearchKind::Export => "export",
        }
    }
}

/// One search made for a request: what was searched for (by digest), over what, what was found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRecord {
    pub kind: SearchKind,
    #[serde(with = "utc")]
    pub at: Timestamp,
    /// The logged-in account of the supervisor who made it.
    pub by: String,
    /// sha256 of the requester's photo. The photo itself is never stored.
    pub photo_sha256: String,
    /// What became of the photo's file after the search.
    pub photo_file: PhotoFile,
    pub threshold: f32,
    pub embedder: String,
    /// Retained alerts in the request's scope (skipped ones included).
    pub searched: usize,
    /// Retained alerts outside the scope, not looked at.
    pub out_of_scope: usize,
    pub crypto_shredded: usize,
    pub unreadable: usize,
    /// Every alert found, oldest first.
    pub found: Vec<Found>,
    /// The AUDIT event of the search as a whole (consultation or disclosure).
    pub audit_event: String,
    /// An export's `manifest.json` sha256.
    pub manifest_sha256: Option<String>,
}

/// What became of the file the requester's photo was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhotoFile {
    /// Removed once the search was recorded (the default).
    Removed,
    /// Kept on request (`--keep-photo`, to export next), or because it could not be removed.
    Kept,
    /// Read from standard input: there never was a file.
    Stdin,
}

impl PhotoFile {
    pub fn as_str(self) -> &'static str {
        match self {
            PhotoFile::Removed => "removed",
            PhotoFile::Kept => "kept",
            PhotoFile::Stdin => "stdin",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Found {
    pub alert_id: String,
    pub deployment: String,
    #[serde(with = "utc")]
    pub raised_at: Timestamp,
    /// Of the alert's probe face to the requester's photo.
    pub similarity: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Closure {
    /// The logged-in account of the supervisor who closed it.
    pub by: String,
    #[serde(with = "utc")]
    pub at: Timestamp,
    pub reason: String,
}

/// A request's reference: 1-64 of `A-Z a-z 0-9 - _ .`, not starting or ending with `.` and
/// without `..` (it is the bucket's key).
pub fn check_reference(reference: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=64).contains(&reference.len())
            && reference
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && !reference.starts_with('.')
            && !reference.ends_with('.')
            && !reference.contains(".."),
        "--request must be the request's reference: 1-64 of A-Z a-z 0-9 - _ . (e.g. SAR-2026-0042)"
    );
    Ok(())
}

/// Free text given on the command line: present, one line, at most 200 characters.
pub fn check_text(flag: &str, text: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !text.trim().is_empty() && text.chars().count() <= MAX_TEXT && !text.contains('\n'),
        "{flag} must be given: one line of at most {MAX_TEXT} characters"
    );
    Ok(())
}

pub struct Requests {
    kv: kv::Store,
}

impl Requests {
    /// Open the bucket (declared by `lfr bus init`).
    pub async fn open(js: &jetstream::Context) -> anyhow::Result<Requests> {
        let kv = js.get_key_value(BUCKET).await.map_err(|e| {
            anyhow::anyhow!("cannot open the {BUCKET} bucket ({e}): has `lfr bus init` run?")
        })?;
        Ok(Requests { kv })
    }

    /// Store a new request; an existing reference is refused, never overwritten.
    pub async fn register(&self, registration: &Registration) -> anyhow::Result<Vec<u8>> {
        let bytes = serde_json::to_vec(registration)?;
        match self
            .kv
            .create(&registration.reference, bytes.clone().into())
            .await
        {
            Ok(_) => Ok(bytes),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => anyhow::bail!(
                "access request {} is already registered (`lfr access show --request {0}`)",
                registration.reference
            ),
            Err(e) => Err(anyhow::anyhow!(
                "cannot store access request {}: {e}",
                registration.reference
            )),
        }
    }

    /// The request and its revision, or `None`.
    pub async fn get(&self, reference: &str) -> anyhow::Result<Option<(Registration, u64)>> {
        let entry = self
            .kv
            .entry(reference)
            .await
            .map_err(|e| anyhow::anyhow!("cannot read access request {reference}: {e}"))?;
        match entry {
            Some(e) if e.operation == kv::Operation::Put => {
                let registration = serde_json::from_slice(&e.value).map_err(|err| {
                    anyhow::anyhow!("access request {reference} does not decode: {err}")
                })?;
                Ok(Some((registration, e.revision)))
            }
            _ => Ok(None),
        }
    }

    /// The request, refused unless registered and open: no search is made without one.
    pub async fn open_request(&self, reference: &str) -> anyhow::Result<Registration> {
        let Some((registration, _)) = self.get(reference).await? else {
            anyhow::bail!(
                "access request {reference} is not registered: no search is made without a \
                 registered request. Verify the requester's identity, then `lfr access register \
                 --request {reference} --requester NAME --verified-by ACCOUNT --identity-evidence \
                 TEXT` (docs/access.md)"
            );
        };
        if let Some(closed) = &registration.closed {
            anyhow::bail!(
                "access request {reference} was closed by {} at {} ({}): no further search is \
                 made for it; register a new request if the requester asks again",
                closed.by,
                format_utc(closed.at),
                closed.reason
            );
        }
        Ok(registration)
    }

    /// Change the request with `change`, re-reading and retrying when someone else changed it in
    /// between. Returns the record as stored.
    pub async fn update(
        &self,
        reference: &str,
        change: impl Fn(&mut Registration) -> anyhow::Result<()>,
    ) -> anyhow::Result<Registration> {
        for _ in 0..UPDATE_ATTEMPTS {
            let Some((mut registration, revision)) = self.get(reference).await? else {
                anyhow::bail!("access request {reference} is not registered");
            };
            change(&mut registration)?;
            let bytes = serde_json::to_vec(&registration)?;
            match self.kv.update(reference, bytes.into(), revision).await {
                Ok(_) => return Ok(registration),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => anyhow::bail!("cannot store access request {reference}: {e}"),
            }
        }
        anyhow::bail!("access request {reference} kept changing: try again")
    }
}

fn format_utc(t: Timestamp) -> String {
    lfr_watchlist::time::format_utc(t)
}

/// Times in records as operators read them: `2026-11-28T12:00:00Z`.
mod utc {
    use lfr_schemas::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_utc(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        lfr_watchlist::time::parse_utc(&s).map_err(serde::de::Error::custom)
    }
}

mod utc_opt {
    use lfr_schemas::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&super::format_utc(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| lfr_watchlist::time::parse_utc(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_request_references_are_safe_keys() {
        for good in ["SAR-2026-0042", "a", "sar_1.2"] {
            assert!(check_reference(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".SAR",
            "SAR.",
            "SAR..1",
            "SAR 1",
            "SAR/1",
            "SAR*",
            &"x".repeat(65),
        ] {
            assert!(check_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_access_request_record_round_trips_with_readable_times() {
        let registration = Registration {
            reference: "SAR-1".into(),
            requester: "J. Doe".into(),
            identity_verified_by: "sup-1".into(),
            identity_evidence: "passport seen".into(),
            registered_at: lfr_watchlist::time::parse_utc("2026-11-28T12:00:00Z").unwrap(),
            registered_by: "sup-2".into(),
            scope: Scope {
                deployments: vec!["match-day".into()],
                from: None,
                to: Some(lfr_watchlist::time::parse_utc("2026-12-01T00:00:00Z").unwrap()),
            },
            searches: vec![],
            closed: None,
        };
        let json = serde_json::to_string(&registration).unwrap();
        assert!(
            json.contains("\"registered_at\":\"2026-11-28T12:00:00Z\""),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<Registration>(&json).unwrap(),
            registration
        );
        assert_eq!(
            registration.scope.describe(),
            "deployments match-day; raised any time to 2026-12-01T00:00:00Z"
        );
    }
}
