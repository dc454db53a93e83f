//! # Accounts: the people who may use the console
//!
//! Accounts live in the JetStream KV bucket `lfr-accounts` (file storage), one JSON record per
//! account keyed by its id, so every dispatch replica and the `lfr account` CLI see the same set.
//! Changes use the KV's revision numbers (optimistic concurrency): two supervisors editing the
//! same account at once cannot silently overwrite each other.
//!
//! ## Passwords
//!
//! A password is never stored, only its **argon2id** hash as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`): the string carries its own random salt and
//! parameters, so verification needs nothing else and stronger parameters can come later without
//! breaking old hashes. Argon2 is deliberately slow and memory-hungry (tens of milliseconds, 19 MiB)
//! to make guessing expensive, so it runs on tokio's blocking pool, never on a request thread, and
//! for logins in a bounded number of slots ([`super::checks`], [`Accounts::verify_with`]).
//!
//! A new password moves the account's `password_generation` on; sessions opened before it end
//! ([`super::Sessions::get`]), so whoever knew the old password is logged out too.
//!
//! [`Accounts::verify`] takes the same path whether or not the account exists: for an unknown id
//! it verifies the password against a dummy hash made at start-up. Without that, a fast "no" for
//! unknown ids would tell an attacker which ids are real.
//!
//! Neither passwords nor hashes are ever logged: [`Account`]'s `Debug` redacts the hash, and
//! [`AccountSummary`] (what lists and pages show) does not carry it.

use super::checks::PasswordChecks;
use super::Role;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use lfr_common::audit::Audit;
use lfr_schemas::{AuditAction, AuditObject, Timestamp};
use lfr_watchlist::list::hex;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub const BUCKET: &str = lfr_schemas::streams::buckets::ACCOUNTS;
/// Shorter passwords are refused: length is what makes a password hard to guess.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longer ones are refused too, so nobody can make the server hash megabytes.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// One person's account. Deployments are ids; only operators and officers are limited to them.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub role: Role,
    pub deployments: Vec<String>,
    /// argon2id PHC string. Never shown, never logged.
    pub password_hash: String,
    pub created_at: Timestamp,
    pub disabled: bool,
    /// How many times the password has been changed. A session remembers the generation it was
    /// started with and ends when the account's moves on ([`super::Sessions::get`]): changing a
    /// password logs out everyone who knew the old one. Records from before it read as 0.
    #[serde(default)]
    pub password_generation: u64,
    /// The person's police rank, where recorded: authorising a deployment needs a
    /// superintendent or above ([`lfr_watchlist::deployment::AUTHORISING_RANK`]).
    #[serde(default)]
    pub rank: Option<lfr_watchlist::deployment::Rank>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("deployments", &self.deployments)
            .field("password_hash", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("disabled", &self.disabled)
            .field("password_generation", &self.password_generation)
            .field("rank", &self.rank)
            .finish()
    }
}

/// An account as lists and pages show it: everything but the hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountSummary {
    pub id: String,
    pub role: Role,
    pub deployments: Vec<String>,
    pub created_at: Timestamp,
    pub disabled: bool,
    #[serde(default)]
    pub rank: Option<lfr_watchlist::deployment::Rank>,
}

impl Account {
    pub fn summary(&self) -> AccountSummary {
        AccountSummary {
            id: self.id.clone(),
            role: self.role,
            deployments: self.deployments.clone(),
            created_at: self.created_at,
            disabled: self.disabled,
            rank: self.rank,
        }
    }
}

/// Why an account operation did not happen; the text is meant for the person who asked.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("an account id is 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_': {0:?} is not")]
    InvalidId(String),
    #[error("a password needs at least {MIN_PASSWORD_CHARS} characters")]
    PasswordTooShort,
    #[error("a password may have at most {MAX_PASSWORD_CHARS} characters")]
    PasswordTooLong,
    #[error("{0:?} is not a deployment id")]
    InvalidDeployment(String),
    #[error("account {0} already exists")]
    Exists(String),
    #[error("{0:?} names an actor of the audit trail that is not a person: choose another id")]
    Reserved(String),
    #[error("no account {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// Why a login was refused. Unknown account and wrong password are deliberately one answer.
#[derive(Debug, thiserror::Error)]
pub enum LoginRefused {
    #[error("wrong account or password")]
    BadCredentials,
    /// Only ever returned with the right password, so it reveals nothing to a guesser.
    #[error("this account is disabled")]
    Disabled,
    #[error("accounts are unavailable: {0}")]
    Unavailable(anyhow::Error),
    /// Too many passwords being checked at once: nothing was checked, try again shortly.
    #[error("too many sign-ins at once, try again shortly")]
    Busy,
}

/// Ids are KV keys, subject tokens and audit actors: 1-64 of `[A-Za-z0-9_-]`.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Names the audit trail gives to actors that are not a person's account: the first-run
/// account creation (`lfr account create` before any supervisor exists) and the API's shared
/// token. No account may take one, so no event of theirs can be mistaken for a person's.
pub const RESERVED_IDS: [&str; 2] = ["bootstrap", "api-token"];

pub fn check_id(id: &str) -> Result<(), AccountError> {
    if RESERVED_IDS.contains(&id) {
        Err(AccountError::Reserved(id.into()))
    } else if valid_id(id) {
        Ok(())
    } else {
        Err(AccountError::InvalidId(id.into()))
    }
}

/// The password policy: at least [`MIN_PASSWORD_CHARS`] characters (not bytes), at most
/// [`MAX_PASSWORD_CHARS`]. Length is the one rule that reliably helps; no composition rules.
pub fn check_password(password: &str) -> Result<(), AccountError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        Err(AccountError::PasswordTooShort)
    } else if chars > MAX_PASSWORD_CHARS {
        Err(AccountError::PasswordTooLong)
    } else {
        Ok(())
    }
}

/// Deployment ids as the deployments store spells them; duplicates dropped, order kept.
fn check_deployments(deployments: Vec<String>) -> Result<Vec<String>, AccountError> {
    let mut out: Vec<String> = Vec::with_capacity(deployments.len());
    for d in deployments {
        let d = d.trim().to_string();
        if !valid_id(&d) {
            return Err(AccountError::InvalidDeployment(d));
        }
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

/// What an audit event may say about an id someone typed: at most 64 characters of
/// `[A-Za-z0-9_-]`, so a login form cannot inject anything into the audit log.
pub fn sanitize_id(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect()
}

/// argon2id with the crate's default parameters (OWASP's m=19 MiB, t=2, p=1) and a fresh salt.
fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?
        .to_string())
}

/// True when `password` matches the PHC string (parameters are read from the string).
fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .and_then(|hash| Argon2::default().verify_password(password.as_bytes(), &hash))
        .is_ok()
}

async fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_password(&password)).await?
}

#[derive(Clone)]
pub struct Accounts {
    kv: kv::Store,
    /// A hash of a random password, verified against when the account does not exist.
    dummy_hash: Arc<str>,
}

impl Accounts {
    /// Open the `lfr-accounts` bucket (declared by `lfr bus init`).
    pub async fn open(js: &jetstream::Context) -> anyhow::Result<Accounts> {
        let kv = js.get_key_value(BUCKET).await.map_err(|e| {
            anyhow::anyhow!("cannot open the {BUCKET} bucket ({e}): has `lfr bus init` run?")
        })?;
        let mut random = [0u8; 32];
        argon2::password_hash::rand_core::RngCore::fill_bytes(&mut OsRng, &mut random);
        let dummy_hash = hash_blocking(&hex(&random)).await?.into();
        Ok(Accounts { kv, dummy_hash })
    }

    /// A new account. Refuses an existing id, a malformed id or deployment, a weak password.
    pub async fn create(
        &self,
        id: &str,
        role: Role,
        password: &str,
        deployments: Vec<String>,
    ) -> Result<Account, AccountError> {
        check_id(id)?;
        check_password(password)?;
        let deployments = check_deployments(deployments)?;
        let account = Account {
            id: id.into(),
            role,
            deployments,
            password_hash: hash_blocking(password).await?,
            created_at: Timestamp::now(),
            disabled: false,
            password_generation: 0,
            rank: None,
        };
        let record = serde_json::to_vec(&account).map_err(anyhow::Error::from)?;
        match self.kv.create(id, record.into()).await {
            Ok(_) => Ok(account),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                Err(AccountError::Exists(id.into()))
            }
            Err(e) => Err(anyhow::anyhow!("cannot store account {id}: {e}").into()),
        }
    }

    /// The account, or None (also for ids that could never be one).
    pub async fn get(&self, id: &str) -> Result<Option<Account>, AccountError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let bytes = self
            .kv
            .get(id)
            .await
            .map_err(|e| anyhow::anyhow!("cannot read account {id}: {e}"))?;
        match bytes {
            Some(bytes) => Ok(Some(
                serde_json::from_slice(&bytes).map_err(anyhow::Error::from)?,
            )),
            None => Ok(None),
        }
    }

    /// Every account, by id.
    pub async fn list(&self) -> Result<Vec<Account>, AccountError> {
        let mut keys = self
            .kv
            .keys()
            .await
            .map_err(|e| anyhow::anyhow!("cannot list accounts: {e}"))?;
        let mut ids = Vec::new();
        while let Some(key) = keys.next().await {
            ids.push(key.map_err(|e| anyhow::anyhow!("cannot list accounts: {e}"))?);
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(account) = self.get(&id).await? {
                out.push(account);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// A new password (same policy as at creation). The account's open sessions end: they were
    /// opened with the old one.
    pub async fn set_password(&self, id: &str, password: &str) -> Result<Account, AccountError> {
        check_password(password)?;
        let hash = hash_blocking(password).await?;
        self.update(id, |a| {
            a.password_hash = hash;
            a.password_generation = a.password_generation.wrapping_add(1);
        })
        .await
    }

    /// Replace the deployments an operator or officer works on.
    pub async fn assign(
        &self,
        id: &str,
        deployments: Vec<String>,
    ) -> Result<Account, AccountError> {
        let deployments = check_deployments(deployments)?;
        self.update(id, |a| a.deployments = deployments).await
    }

    /// Record the person's rank (or clear it). A session picks the new rank up at its next
    /// request.
    pub async fn set_rank(
        &self,
        id: &str,
        rank: Option<lfr_watchlist::deployment::Rank>,
    ) -> Result<Account, AccountError> {
        self.update(id, |a| a.rank = rank).await
    }

    /// Refuse the account's logins from now on; its open sessions stop working at their next
    /// request ([`super::Sessions::get`] checks).
    pub async fn disable(&self, id: &str) -> Result<Account, AccountError> {
        self.update(id, |a| a.disabled = true).await
    }

    /// Undo [`Accounts::disable`].
    pub async fn enable(&self, id: &str) -> Result<Account, AccountError> {
        self.update(id, |a| a.disabled = false).await
    }

    /// The account if `password` is its password and it is not disabled. Takes the same time for
    /// unknown accounts as for known ones. For tools checking a password now and then; the
    /// console's logins use [`Accounts::verify_with`].
    pub async fn verify(&self, id: &str, password: &str) -> Result<Account, LoginRefused> {
        let checks = PasswordChecks::unregistered(1, 0).map_err(LoginRefused::Unavailable)?;
        self.verify_with(id, password, &checks).await
    }

    /// [`Accounts::verify`], with the argon2 check run in a slot of `checks` (bounded at once and
    /// queued; [`LoginRefused::Busy`] when the queue is full).
    pub async fn verify_with(
        &self,
        id: &str,
        password: &str,
        checks: &PasswordChecks,
    ) -> Result<Account, LoginRefused> {
        let account = self
            .get(id)
            .await
            .map_err(|e| LoginRefused::Unavailable(e.into()))?;
        let phc = match &account {
            Some(a) => a.password_hash.clone(),
            None => self.dummy_hash.to_string(),
        };
        let slot = checks.slot().await.map_err(|_| LoginRefused::Busy)?;
        let password = password.to_owned();
        let matches =
            tokio::task::spawn_blocking(move || slot.run(|| password_matches(&password, &phc)))
                .await
                .map_err(|e| LoginRefused::Unavailable(e.into()))?;
        match account {
            Some(account) if matches && account.disabled => Err(LoginRefused::Disabled),
            Some(account) if matches => Ok(account),
            _ => Err(LoginRefused::BadCredentials),
        }
    }

    /// Apply `change` to the stored record; fails if someone else changed it in between.
    async fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut Account),
    ) -> Result<Account, AccountError> {
        if !valid_id(id) {
            return Err(AccountError::NotFound(id.into()));
        }
        let entry = self
            .kv
            .entry(id)
            .await
            .map_err(|e| anyhow::anyhow!("cannot read account {id}: {e}"))?
            .filter(|e| e.operation == kv::Operation::Put)
            .ok_or_else(|| AccountError::NotFound(id.into()))?;
        let mut account: Account =
            serde_json::from_slice(&entry.value).map_err(anyhow::Error::from)?;
        change(&mut account);
        let record = serde_json::to_vec(&account).map_err(anyhow::Error::from)?;
        self.kv
            .update(id, record.into(), entry.revision)
            .await
            .map_err(|e| anyhow::anyhow!("account {id} changed concurrently, try again: {e}"))?;
        Ok(account)
    }
}

/// Record an account change (creation, password, assignment, disabling) on the AUDIT stream as a
/// configuration change of `account/<id>`, by `actor` acting as `role`.
pub async fn audit_change(
    js: &jetstream::Context,
    actor: &str,
    role: &str,
    account: &str,
    justification: &str,
) -> anyhow::Result<()> {
    Audit { actor, role }
        .event(
            AuditAction::ConfigurationChange,
            AuditObject::Account(account.into()),
        )
        .why(justification)
        .record(js)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_tokens_of_safe_characters() {
        for ok in ["a", "supt-17", "insp_4", &"x".repeat(64)] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", "a.b", "a b", "a*", "ü", "../x", &"x".repeat(65)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn passwords_need_twelve_characters_counted_as_characters() {
        assert!(matches!(
            check_password("eleven-char"),
            Err(AccountError::PasswordTooShort)
        ));
        assert!(check_password("twelve-chars").is_ok());
        // Twelve bytes but six characters is still too short.
        assert!(check_password("éééééé").is_err());
        assert!(check_password(&"x".repeat(MAX_PASSWORD_CHARS)).is_ok());
        assert!(matches!(
            check_password(&"x".repeat(MAX_PASSWORD_CHARS + 1)),
            Err(AccountError::PasswordTooLong)
        ));
    }

    #[test]
    fn deployments_must_be_ids_and_are_deduplicated() {
        assert_eq!(
            check_deployments(vec!["a".into(), " b".into(), "a".into()]).unwrap(),
            ["a", "b"]
        );
        assert!(check_deployments(vec!["a.b".into()]).is_err());
        assert!(check_deployments(vec![String::new()]).is_err());
    }

    #[test]
    fn argon2id_hashes_verify_only_their_own_password() {
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(password_matches("correct horse battery", &phc));
        assert!(!password_matches("correct horse batterY", &phc));
        assert!(!password_matches("correct horse battery", "not a hash"));
        assert_ne!(
            phc,
            hash_password("correct horse battery").unwrap(),
            "salted"
        );
    }

    #[test]
    fn typed_ids_are_made_safe_for_the_audit_log() {
        assert_eq!(sanitize_id("alice"), "alice");
        assert_eq!(sanitize_id("al ice\n<script>.*"), "alicescript");
        assert_eq!(sanitize_id(&"y".repeat(100)).len(), 64);
    }

    #[test]
    fn the_hash_never_shows_in_a_debug_print() {
        let a = Account {
            id: "a".into(),
            role: Role::Operator,
            deployments: vec![],
            password_hash: "$argon2id$secret".into(),
            created_at: Timestamp(0),
            disabled: false,
            password_generation: 0,
            rank: None,
        };
        assert!(!format!("{a:?}").contains("secret"));
        assert!(!serde_json::to_string(&a.summary())
            .unwrap()
            .contains("argon"));
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
    }
}
