//! # Accounts, sessions and login for the web console
//!
//! The console serves four kinds of people, each seeing only what their job needs (the DPIA's
//! "need to know"): operators review candidate alerts, officers receive confirmed ones on a
//! handheld, supervisors run deployments and accounts, auditors read the audit trail. This module
//! is how the console knows who is asking; the console's pages decide what each may do.
//!
//! The pieces, each in its own file:
//!
//! - [`roles`]: the four [`Role`]s and what each may see.
//! - [`accounts`]: the `lfr-accounts` KV bucket. Passwords are stored only as argon2id hashes;
//!   checking one takes the same time whether or not the account exists.
//! - [`sessions`]: the `lfr-sessions` KV bucket. A session is a random token in a cookie; the
//!   bucket holds only the token's sha256, so reading the bucket does not let anyone log in.
//! - [`throttle`]: in memory, refuses logins for an account from an address, or from an address,
//!   after repeated failures (password guessing); checked and counted in one step.
//! - [`checks`]: the bounded pool argon2 verifications run in, so a burst of logins cannot
//!   exhaust memory.
//! - [`routes`]: `GET`/`POST /login` and `POST /logout`, as plain server-rendered HTML forms.
//! - [`guard`]: the [`require_session`] middleware every console page sits behind, the
//!   [`CurrentSession`] extractor handlers take, and the role and CSRF checks.
//!
//! ## How the console mounts it
//!
//! ```ignore
//! let auth = auth::Auth::new(&js, config.dispatch.auth.clone(), &registry).await?;
//! let pages = Router::new()
//!     .route("/operator", get(operator_queue))              // handlers take `CurrentSession`
//!     .layer(middleware::from_fn_with_state(auth.clone(), auth::require_session));
//! let app = auth::router(auth).merge(pages);
//! // The login throttle keys on the client's address: serve with connect info.
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//! ```
//!
//! A handler then reads:
//!
//! ```ignore
//! async fn confirm(session: CurrentSession, Form(f): Form<Confirm>) -> Result<Response, Response> {
//!     auth::require_role(&session, &[Role::Operator]).map_err(IntoResponse::into_response)?;
//!     auth::verify_csrf(&session, &f.csrf)?;
//!     if !session.may_see(&f.deployment) { return Err(StatusCode::NOT_FOUND.into_response()); }
//!     ...
//! }
//! ```
//!
//! ## What protects what
//!
//! | threat | defence |
//! |---|---|
//! | stolen session bucket | it holds sha256s of tokens, not tokens |
//! | password guessing | argon2id (slow by design), the throttle (no more checks than its limit, however many arrive at once), an audit event for every password checked and refused |
//! | locking a real person out | the throttle keys on the account *from an address*: a guesser elsewhere locks only themselves |
//! | flooding the audit trail | refusals without a password check (throttled, busy) are counted, not recorded; a lockout is recorded once, by the failure that started it |
//! | exhausting memory with logins | argon2 runs in a few slots ([`checks`]), a bounded queue waits, the rest get 503 at once |
//! | finding which ids exist | unknown ids run argon2 against a dummy hash: same answer, same time |
//! | cross-site request forgery | `SameSite=Strict` cookies, `Origin` must match `Host` on every write, and a per-session CSRF token in every form |
//! | cookie theft by script | `HttpOnly`; pages never echo input unescaped |
//! | cookie sent in clear | `Secure` and HSTS (the default); dispatch refuses to listen on a network address without them |
//! | cookie planted by a neighbouring site | the `__Host-` prefix when secure: only this host, over HTTPS, may set it |
//! | a password known to someone else | changing it ends every session opened with the old one |
//! | a session outliving its right | logout, disabling and re-assignment end open live streams within seconds |
//! | open redirects after login | `next` must be a path on this site (`/...`, never `//...`) |

pub mod accounts;
pub mod checks;
pub mod guard;
pub mod roles;
pub mod routes;
pub mod sessions;
pub mod throttle;

pub use accounts::{Account, AccountError, AccountSummary, Accounts, LoginRefused};
pub use checks::{Busy, PasswordChecks};
pub use guard::{
    csrf_field, logout_form, require_role, require_session, same_origin, session_cookie_name,
    strict_transport_security, verify_csrf, ClientIp, CurrentSession, SECURE_SESSION_COOKIE,
    SESSION_COOKIE,
};
pub use roles::Role;
pub use routes::router;
pub use sessions::{Session, Sessions};
pub use throttle::{Attempt, LockedOut, Lockout, Throttle, ThrottleLimits, Throttled};

use async_nats::jetstream;
use axum::http::HeaderMap;
use lfr_common::config::secs;
use prometheus::{IntCounterVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// `[dispatch.auth]` in the configuration file; `LFR_DISPATCH__AUTH__...` in the environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// How long a login lasts, in seconds (default 12 hours: a shift). There is no sliding
    /// renewal: after this the person logs in again.
    #[serde(with = "secs")]
    pub session_ttl: Duration,
    /// The console is reached over HTTPS (TLS terminates in front of it): the session cookie is
    /// `__Host-lfr_session`, marked `Secure` so browsers send it only over HTTPS, and every answer
    /// carries `Strict-Transport-Security`. Leave on in any real deployment; turn off only for
    /// tests or a demonstration on `http://127.0.0.1` (dispatch refuses to start with it off
    /// on any other address, unless `allow_plain_http`).
    pub cookie_secure: bool,
    /// With `cookie_secure = false`, listen on a network address anyway. Only where that address
    /// is not reachable from a network: a container whose port is published on the host's
    /// loopback only (the compose file).
    pub allow_plain_http: bool,
    /// Failed logins for one account from one client address that lock that account out from
    /// that address (not from others: a guesser cannot lock a real person out)...
    pub max_failed_logins: u32,
    /// ...and failed logins from one address, whatever the accounts, that lock the address out...
    pub max_failed_logins_per_address: u32,
    /// ...when they happen within this many seconds...
    #[serde(with = "secs")]
    pub failed_login_window: Duration,
    /// ...for this many seconds.
    #[serde(with = "secs")]
    pub lockout: Duration,
    /// Password (argon2) checks that may run at once. Each takes 19 MiB and tens of milliseconds
    /// of a core; logins beyond this wait in the queue.
    pub password_checks: usize,
    /// Logins that may wait for a password check; beyond them a login is refused at once with
    /// 503 ("try again shortly"), so a burst cannot pile up.
    pub password_check_queue: usize,
    /// Behind a reverse proxy every login comes from the proxy's address: name the header the
    /// proxy writes the client's address to (e.g. `X-Forwarded-For`; its last entry is used).
    /// None: the address of the TCP peer. Set it only behind a proxy that overwrites the header,
    /// or clients can choose their own throttle key.
    pub client_ip_header: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            session_ttl: Duration::from_secs(12 * 3600),
            cookie_secure: true,
            allow_plain_http: false,
            max_failed_logins: 5,
            max_failed_logins_per_address: 20,
            failed_login_window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
            password_checks: 2,
            password_check_queue: 32,
            client_ip_header: None,
        }
    }
}

impl AuthConfig {
    pub fn throttle_limits(&self) -> ThrottleLimits {
        ThrottleLimits {
            max_failures: self.max_failed_logins,
            max_failures_per_address: self.max_failed_logins_per_address,
            window: self.failed_login_window,
            lockout: self.lockout,
        }
    }

    /// The session cookie's name: `__Host-lfr_session` when secure, `lfr_session` otherwise.
    pub fn session_cookie(&self) -> &'static str {
        session_cookie_name(self.cookie_secure)
    }

    /// Refuse a console on `addr` that would send session cookies and passwords over a network in
    /// clear: `cookie_secure = false` is for the loopback only (or `allow_plain_http`).
    pub fn check_console_addr(&self, addr: SocketAddr) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.cookie_secure || self.allow_plain_http || addr.ip().is_loopback(),
            "dispatch.auth.cookie_secure = false, but the console listens on {addr}, a network \
             address: passwords and session cookies would cross the network in clear. Serve the \
             console through TLS and set cookie_secure = true, or listen on 127.0.0.1 (or, for a \
             container port published on the host's loopback only, set \
             dispatch.auth.allow_plain_http = true)"
        );
        Ok(())
    }
}

/// Everything the login pages and the session guard need; cheap to clone (handles inside).
#[derive(Clone)]
pub struct Auth {
    pub accounts: Accounts,
    pub sessions: Sessions,
    pub throttle: Throttle,
    /// Where logins' argon2 checks run.
    pub checks: PasswordChecks,
    config: Arc<AuthConfig>,
    js: jetstream::Context,
    logins: IntCounterVec,
}

/// How a login attempt ended, as counted by `lfr_dispatch_logins_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    Ok,
    BadCredentials,
    Throttled,
    Disabled,
    /// Refused without a check: too many passwords being checked at once.
    Busy,
}

impl LoginResult {
    pub const ALL: [LoginResult; 5] = [
        LoginResult::Ok,
        LoginResult::BadCredentials,
        LoginResult::Throttled,
        LoginResult::Disabled,
        LoginResult::Busy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LoginResult::Ok => "ok",
            LoginResult::BadCredentials => "bad_credentials",
            LoginResult::Throttled => "throttled",
            LoginResult::Disabled => "disabled",
            LoginResult::Busy => "busy",
        }
    }
}

impl Auth {
    /// Open (declaring if needed) the accounts and sessions buckets and register the login
    /// counter on `registry`. `js` is also where login and logout audit events go: the AUDIT
    /// stream must exist (the service's bus connection declares it).
    pub async fn new(
        js: &jetstream::Context,
        config: AuthConfig,
        registry: &Registry,
    ) -> anyhow::Result<Auth> {
        anyhow::ensure!(
            config.session_ttl >= Duration::from_secs(1),
            "dispatch.auth.session_ttl must be at least one second"
        );
        anyhow::ensure!(
            config.max_failed_logins >= 1 && config.max_failed_logins_per_address >= 1,
            "dispatch.auth.max_failed_logins and max_failed_logins_per_address must be at least 1"
        );
        let checks = PasswordChecks::new(
            config.password_checks,
            config.password_check_queue,
            registry,
        )?;
        let accounts = Accounts::open(js).await?;
        let sessions = Sessions::open(js, accounts.clone(), config.session_ttl).await?;
        let throttle = Throttle::new(config.throttle_limits());
        let logins = IntCounterVec::new(
            Opts::new(
                "dispatch_logins_total",
                "Console login attempts by result (ok, bad_credentials, throttled, disabled, busy).",
            ),
            &["result"],
        )?;
        registry.register(Box::new(logins.clone()))?;
        for result in LoginResult::ALL {
            logins.with_label_values(&[result.as_str()]);
        }
        Ok(Auth {
            accounts,
            sessions,
            throttle,
            checks,
            config: Arc::new(config),
            js: js.clone(),
            logins,
        })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Where this module records its audit events (the console may record its own there too).
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The session token the request's cookie carries, if any (only the cookie of this
    /// configuration's name: see [`AuthConfig::session_cookie`]).
    pub fn session_token(&self, headers: &HeaderMap) -> Option<String> {
        guard::session_token(headers, self.config.session_cookie())
    }

    fn count(&self, result: LoginResult) {
        self.logins.with_label_values(&[result.as_str()]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_shift_secure_cookies_and_five_failures_in_fifteen_minutes() {
        let c = AuthConfig::default();
        assert_eq!(c.session_ttl, Duration::from_secs(43_200));
        assert!(c.cookie_secure);
        assert!(!c.allow_plain_http);
        assert_eq!(
            c.throttle_limits(),
            ThrottleLimits {
                max_failures: 5,
                max_failures_per_address: 20,
                window: Duration::from_secs(900),
                lockout: Duration::from_secs(900),
            }
        );
        assert_eq!((c.password_checks, c.password_check_queue), (2, 32));
        assert_eq!(c.client_ip_header, None);
        assert_eq!(c.session_cookie(), "__Host-lfr_session");
    }

    #[test]
    fn plain_http_is_for_the_loopback_only() {
        let plain = AuthConfig {
            cookie_secure: false,
            ..Default::default()
        };
        for ok in ["127.0.0.1:8080", "[::1]:8080", "127.0.0.2:0"] {
            assert!(
                plain.check_console_addr(ok.parse().unwrap()).is_ok(),
                "{ok}"
            );
            assert!(AuthConfig::default()
                .check_console_addr(ok.parse().unwrap())
                .is_ok());
        }
        for network in ["0.0.0.0:8080", "[::]:8080", "10.1.2.3:8080"] {
            let refused = plain
                .check_console_addr(network.parse().unwrap())
                .unwrap_err()
                .to_string();
            assert!(refused.contains("cookie_secure = false"), "{refused}");
            assert!(AuthConfig::default()
                .check_console_addr(network.parse().unwrap())
                .is_ok());
            let acknowledged = AuthConfig {
                allow_plain_http: true,
                ..plain.clone()
            };
            assert!(acknowledged
                .check_console_addr(network.parse().unwrap())
                .is_ok());
        }
        assert_eq!(plain.session_cookie(), "lfr_session");
    }
}
