//! # Sessions: staying logged in for a shift
//!
//! After a good password the browser gets a **session token**: 32 bytes from the operating
//! system's random generator, written as 64 hex characters, sent back in the `lfr_session`
//! cookie with every request. Knowing the token is being logged in, so the server never stores
//! it: the `lfr-sessions` KV bucket is keyed by the token's **sha256**. Someone who reads the
//! bucket (a backup, a debugging session) learns who is logged in, but cannot become them.
//!
//! A session records who, in which role, for which deployments, and until when. It expires
//! twice over: [`Sessions::get`] refuses it after `expires_at`, and the bucket's `max_age` (the
//! session TTL) makes JetStream delete the record anyway, so expired sessions do not pile up.
//!
//! Every [`Sessions::get`] also re-reads the account (one KV read): a disabled account's sessions
//! stop at their next request, and a change of assigned deployments applies at once. So do the
//! sessions of an account whose password was changed since they started: each session remembers
//! the account's password generation, and a new password moves it on. Live pages' event streams
//! re-check their session every few seconds too (`console::live`).
//!
//! Each session carries its own random **CSRF token**. Pages put it in a hidden field of every
//! form ([`super::csrf_field`]), handlers compare it ([`Session::check_csrf`], constant time), so
//! another site cannot make a logged-in browser submit a form it did not show.

use super::accounts::Accounts;
use super::Role;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use async_nats::jetstream::{self, kv};
use lfr_schemas::Timestamp;
use lfr_watchlist::list::hex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;
use subtle::ConstantTimeEq;

pub const BUCKET: &str = lfr_schemas::streams::buckets::SESSIONS;
/// Random bytes in a session token (and in a CSRF token).
pub const TOKEN_BYTES: usize = 32;

/// One logged-in browser.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub account: String,
    pub role: Role,
    pub deployments: Vec<String>,
    /// The token forms must echo back (see [`Session::check_csrf`]).
    pub csrf: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// The account's [`super::Account::password_generation`] at login; the session ends when
    /// the account's moves on. Records from before it read as 0.
    #[serde(default)]
    pub password_generation: u64,
    /// The account's rank, as it is now (refreshed like the role).
    #[serde(default)]
    pub rank: Option<lfr_watchlist::deployment::Rank>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("account", &self.account)
            .field("role", &self.role)
            .field("deployments", &self.deployments)
            .field("csrf", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("password_generation", &self.password_generation)
            .finish()
    }
}

impl Session {
    /// Whether this person may see anything of `deployment`: supervisors and auditors see every
    /// deployment, operators and officers only those assigned to them.
    pub fn may_see(&self, deployment: &str) -> bool {
        self.role.sees_all_deployments() || self.deployments.iter().any(|d| d == deployment)
    }

    /// Whether `presented` is this session's CSRF token (constant time: the comparison does not
    /// stop at the first differing byte, so timing does not reveal how much was right).
    pub fn check_csrf(&self, presented: &str) -> bool {
        let expected = self.csrf.as_bytes();
        let presented = presented.as_bytes();
        // `ct_eq` on slices of different lengths is false; the length is not a secret.
        !expected.is_empty() && bool::from(expected.ct_eq(presented))
    }

    pub fn is_expired_at(&self, now: Timestamp) -> bool {
        now.0 >= self.expires_at.0
    }

    /// The account as the deployments lifecycle and audit events name it.
    pub fn actor(&self) -> lfr_watchlist::lifecycle::Actor {
        lfr_watchlist::lifecycle::Actor::new(&self.account, self.role.as_str()).with_rank(self.rank)
    }

    /// For recording the console's own audit events as this person.
    pub fn audit(&self) -> lfr_common::audit::Audit<'_> {
        lfr_common::audit::Audit {
            actor: &self.account,
            role: self.role.as_str(),
        }
    }
}

/// 32 random bytes as 64 lower-case hex characters.
pub fn random_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// The KV key of a token: its sha256 in hex. None for anything that is not a token we issued
/// (checked before hashing, so junk cookies cost nothing and never reach the KV).
fn key_of(token: &str) -> Option<String> {
    let well_formed = token.len() == TOKEN_BYTES * 2
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then(|| hex(&Sha256::digest(token.as_bytes())))
}

#[derive(Clone)]
pub struct Sessions {
    kv: kv::Store,
    accounts: Accounts,
    ttl: Duration,
}

impl Sessions {
    /// Open the `lfr-sessions` bucket (declared by `lfr bus init`; its records expire after
    /// `bus.sessions_max_age`); sessions made here last `ttl`.
    pub async fn open(
        js: &jetstream::Context,
        accounts: Accounts,
        ttl: Duration,
    ) -> anyhow::Result<Sessions> {
        let kv = js.get_key_value(BUCKET).await.map_err(|e| {
            anyhow::anyhow!("cannot open the {BUCKET} bucket ({e}): has `lfr bus init` run?")
        })?;
        let max_age = kv
            .status()
            .await
            .map(|s| s.max_age())
            .map_err(|e| anyhow::anyhow!("cannot read the {BUCKET} bucket: {e}"))?;
        anyhow::ensure!(
            max_age.is_zero() || ttl <= max_age,
            "the session TTL ({ttl:?}) is longer than the {BUCKET} bucket keeps a session \
             ({max_age:?}, bus.sessions_max_age)"
        );
        Ok(Sessions { kv, accounts, ttl })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session for `account` (whose password was just verified). Returns the token, which
    /// goes to the browser and nowhere else, and the session.
    pub async fn start(&self, account: &super::Account) -> anyhow::Result<(String, Session)> {
        let token = random_token();
        let key = key_of(&token).expect("our own tokens are well formed");
        let now = Timestamp::now();
        let session = Session {
            account: account.id.clone(),
            role: account.role,
            deployments: account.deployments.clone(),
            csrf: random_token(),
            created_at: now,
            expires_at: Timestamp(now.0.saturating_add(self.ttl.as_nanos() as u64)),
            password_generation: account.password_generation,
            rank: account.rank,
        };
        self.kv
            .create(&key, serde_json::to_vec(&session)?.into())
            .await
            .map_err(|e| anyhow::anyhow!("cannot store the session: {e}"))?;
        Ok((token, session))
    }

    /// The session `token` opens, if it is live: not expired, and its account still exists, is
    /// not disabled and has kept the password it was opened with. Role and deployments come from
    /// the account as it is now.
    pub async fn get(&self, token: &str) -> anyhow::Result<Option<Session>> {
        let Some(key) = key_of(token) else {
            return Ok(None);
        };
        let Some(bytes) = self
            .kv
            .get(&key)
            .await
            .map_err(|e| anyhow::anyhow!("cannot read sessions: {e}"))?
        else {
            return Ok(None);
        };
        let mut session: Session = serde_json::from_slice(&bytes)?;
        if session.is_expired_at(Timestamp::now()) {
            self.forget(&key).await;
            return Ok(None);
        }
        match self.accounts.get(&session.account).await? {
            Some(account)
                if !account.disabled
                    && account.password_generation == session.password_generation =>
            {
                session.role = account.role;
                session.deployments = account.deployments;
                session.rank = account.rank;
                Ok(Some(session))
            }
            _ => {
                self.forget(&key).await;
                Ok(None)
            }
        }
    }

    /// Log out: the token opens nothing from now on.
    pub async fn end(&self, token: &str) -> anyhow::Result<()> {
        if let Some(key) = key_of(token) {
            self.kv
                .purge(&key)
                .await
                .map_err(|e| anyhow::anyhow!("cannot end the session: {e}"))?;
        }
        Ok(())
    }

    /// Best-effort removal of a dead session (the bucket's max_age removes it anyway).
    async fn forget(&self, key: &str) {
        if let Err(e) = self.kv.purge(key).await {
            tracing::debug!(error = %e, "could not remove a dead session");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(role: Role, deployments: &[&str]) -> Session {
        Session {
            account: "a".into(),
            role,
            deployments: deployments.iter().map(|d| d.to_string()).collect(),
            csrf: random_token(),
            created_at: Timestamp(0),
            expires_at: Timestamp(10),
            password_generation: 0,
            rank: None,
        }
    }

    #[test]
    fn operators_and_officers_see_only_their_deployments() {
        for role in [Role::Operator, Role::Officer] {
            let s = session(role, &["match-day"]);
            assert!(s.may_see("match-day"));
            assert!(!s.may_see("fair"));
            assert!(!session(role, &[]).may_see("match-day"));
        }
        for role in [Role::Supervisor, Role::Auditor] {
            assert!(session(role, &[]).may_see("fair"));
        }
    }

    #[test]
    fn only_the_sessions_own_csrf_token_passes() {
        let s = session(Role::Operator, &[]);
        assert!(s.check_csrf(&s.csrf.clone()));
        assert!(!s.check_csrf(""));
        assert!(!s.check_csrf(&s.csrf[..63]));
        assert!(!s.check_csrf(&random_token()));
        let mut empty = s.clone();
        empty.csrf.clear();
        assert!(!empty.check_csrf(""), "an empty token never matches");
        assert!(!format!("{s:?}").contains(&s.csrf), "never printed");
    }

    #[test]
    fn sessions_expire_at_their_end() {
        let s = session(Role::Operator, &[]);
        assert!(!s.is_expired_at(Timestamp(9)));
        assert!(s.is_expired_at(Timestamp(10)));
    }

    #[test]
    fn tokens_are_random_hex_and_keys_are_their_sha256() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        let key = key_of(&a).unwrap();
        assert_eq!(key.len(), 64);
        assert_ne!(key, a, "the bucket never holds the token itself");
        for junk in ["", "abc", &a.to_uppercase(), &format!("{}x", &a[..63])] {
            assert_eq!(key_of(junk), None, "{junk}");
        }
    }
}
