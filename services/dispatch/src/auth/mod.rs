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
//! - [`throttle`]: in memory, refuses logins for an account or from an address after repeated
//!   failures (password guessing).
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
//! | password guessing | argon2id (slow by design), the throttle, audit events for every refusal |
//! | finding which ids exist | unknown ids run argon2 against a dummy hash: same answer, same time |
//! | cross-site request forgery | `SameSite=Strict` cookies, `Origin` must match `Host` on every write, and a per-session CSRF token in every form |
//! | cookie theft by script | `HttpOnly`; pages never echo input unescaped |
//! | cookie sent in clear | `Secure` (the default; turn off only for tests on `http://127.0.0.1`) |
//! | open redirects after login | `next` must be a path on this site (`/...`, never `//...`) |

pub mod accounts;
pub mod guard;
pub mod roles;
pub mod routes;
pub mod sessions;
pub mod throttle;

pub use accounts::{Account, AccountError, AccountSummary, Accounts, LoginRefused};
pub use guard::{
    csrf_field, logout_form, require_role, require_session, same_origin, verify_csrf, ClientIp,
    CurrentSession, SESSION_COOKIE,
};
pub use roles::Role;
pub use routes::router;
pub use sessions::{Session, Sessions};
pub use throttle::{Throttle, ThrottleLimits, Throttled};

use async_nats::jetstream;
use lfr_common::config::secs;
use prometheus::{IntCounterVec, Opts, Registry};
use serde::{Deserialize, Serialize};
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
    /// Mark the session cookie `Secure` so browsers send it only over HTTPS. Leave on in any real
    /// deployment (TLS terminates in front of the console); turn off only for tests or a
    /// demonstration on `http://127.0.0.1`.
    pub cookie_secure: bool,
    /// Failed logins for one account, or from one address, that lock it out...
    pub max_failed_logins: u32,
    /// ...when they happen within this many seconds...
    #[serde(with = "secs")]
    pub failed_login_window: Duration,
    /// ...for this many seconds.
    #[serde(with = "secs")]
    pub lockout: Duration,
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
            max_failed_logins: 5,
            failed_login_window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
            client_ip_header: None,
        }
    }
}

impl AuthConfig {
    pub fn throttle_limits(&self) -> ThrottleLimits {
        ThrottleLimits {
            max_failures: self.max_failed_logins,
            window: self.failed_login_window,
            lockout: self.lockout,
        }
    }
}

/// Everything the login pages and the session guard need; cheap to clone (handles inside).
#[derive(Clone)]
pub struct Auth {
    pub accounts: Accounts,
    pub sessions: Sessions,
    pub throttle: Throttle,
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
}

impl LoginResult {
    pub const ALL: [LoginResult; 4] = [
        LoginResult::Ok,
        LoginResult::BadCredentials,
        LoginResult::Throttled,
        LoginResult::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LoginResult::Ok => "ok",
            LoginResult::BadCredentials => "bad_credentials",
            LoginResult::Throttled => "throttled",
            LoginResult::Disabled => "disabled",
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
        let accounts = Accounts::open(js).await?;
        let sessions = Sessions::open(js, accounts.clone(), config.session_ttl).await?;
        let throttle = Throttle::new(config.throttle_limits());
        let logins = IntCounterVec::new(
            Opts::new(
                "dispatch_logins_total",
                "Console login attempts by result (ok, bad_credentials, throttled, disabled).",
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
        assert_eq!(
            c.throttle_limits(),
            ThrottleLimits {
                max_failures: 5,
                window: Duration::from_secs(900),
                lockout: Duration::from_secs(900),
            }
        );
        assert_eq!(c.client_ip_header, None);
    }
}
