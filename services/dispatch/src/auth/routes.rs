//! # The login and logout pages
//!
//! Plain HTML forms rendered by the server, no JavaScript:
//!
//! - `GET /login` shows the form (account, password, and a hidden `next`: where to go after).
//! - `POST /login` checks, in order: that the form was posted from this site (`Origin` against
//!   `Host`: there is no session yet, so no CSRF token; the `SameSite=Strict` cookie covers the
//!   rest), the throttle, then the password. On success it starts a session, sets the cookie and
//!   answers `303 See Other` to `next` (only a path on this site) or the role's home page. On
//!   failure it shows the form again with the reason, and no cookie: 401 for a wrong account or
//!   password (one message for both), 429 when throttled, 403 for a disabled account, 503 when
//!   too many passwords are being checked at once.
//! - `POST /logout` needs the session's CSRF token (so another site cannot log people out), ends
//!   the session, clears the cookie and sends the browser to `/login`.
//!
//! Every attempt is counted in `lfr_dispatch_logins_total{result}`. Every attempt whose password
//! was checked is recorded on the AUDIT stream (action `Login`, object `account/<id>`):
//! successes, refusals (bad credentials, disabled) and logouts; the refusal that starts a lockout
//! says so, with the count of failures. Refusals without a password check (throttled, busy) are
//! only counted: a guesser hammering a locked account cannot flood the audit trail, and how many
//! events refusals can add is bounded by the throttle's limits and the argon2 pool. A login whose
//! audit event cannot be stored does not happen: the audit trail must not miss an access.

use super::accounts::sanitize_id;
use super::guard::{clear_cookie, forbidden, same_origin, see_other, session_cookie};
use super::throttle::{LockedOut, Lockout};
use super::{Auth, ClientIp, LoginRefused, LoginResult};
use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use lfr_common::audit::Audit;
use lfr_schemas::{AuditAction, AuditObject};
use serde::Deserialize;

/// The role recorded on audit events of attempts that did not log anyone in.
const NOBODY: &str = "unauthenticated";
/// Forms here are a few short fields.
const FORM_LIMIT: usize = 16 * 1024;

/// `/login` and `/logout`, ready to merge into the console's router (state included).
pub fn router(auth: Auth) -> Router {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .with_state(auth)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LoginQuery {
    next: String,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct LoginForm {
    account: String,
    password: String,
    next: String,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct LogoutForm {
    csrf: String,
}

/// `next` if it is a path on this site: starts with one `/` (`//host` and `/\host` would leave
/// the site), printable ASCII only (no header injection), and of reasonable length.
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.len() <= 2048
        && next.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(next)
}

async fn login_page(
    State(auth): State<Auth>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    // Already logged in: go on.
    if let Some(token) = auth.session_token(&headers) {
        if let Ok(Some(session)) = auth.sessions.get(&token).await {
            return see_other(safe_next(&query.next).unwrap_or(session.role.home()));
        }
    }
    page(StatusCode::OK, None, "", &query.next)
}

async fn login(
    State(auth): State<Auth>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return page(
            StatusCode::FORBIDDEN,
            Some("This sign-in did not come from the console's own page."),
            "",
            &form.next,
        );
    }
    let typed = sanitize_id(&form.account);
    let actor = if typed.is_empty() { "unknown" } else { &typed };
    // Checked and reserved in one step: a burst gets no more password checks than the limit.
    let attempt = match auth.throttle.begin(&form.account, ip) {
        Ok(attempt) => attempt,
        Err(throttled) => {
            // Counted, not recorded: the refusal that started the lockout was recorded.
            auth.count(LoginResult::Throttled);
            let mut response = page(
                StatusCode::TOO_MANY_REQUESTS,
                Some("Too many attempts, try later."),
                &form.account,
                &form.next,
            );
            retry_after(&mut response, throttled.retry_after.as_secs_f64());
            return response;
        }
    };
    match auth
        .accounts
        .verify_with(&form.account, &form.password, &auth.checks)
        .await
    {
        Ok(account) => {
            attempt.succeeded();
            let (token, session) = match auth.sessions.start(&account).await {
                Ok(started) => started,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start a session");
                    return unavailable(&form);
                }
            };
            let recorded = Audit {
                actor: &account.id,
                role: account.role.as_str(),
            }
            .event(AuditAction::Login, AuditObject::Account(account.id.clone()))
            .why("login succeeded")
            .record(auth.jetstream())
            .await;
            if let Err(e) = recorded {
                tracing::error!(error = %e, "login refused: its audit event cannot be stored");
                let _ = auth.sessions.end(&token).await;
                return unavailable(&form);
            }
            auth.count(LoginResult::Ok);
            tracing::info!(account = %account.id, role = %account.role, "login");
            let mut response = see_other(safe_next(&form.next).unwrap_or(session.role.home()));
            response.headers_mut().append(
                header::SET_COOKIE,
                session_cookie(
                    &token,
                    auth.sessions.ttl().as_secs(),
                    auth.config().cookie_secure,
                ),
            );
            response
        }
        Err(LoginRefused::BadCredentials) => {
            let lockouts = attempt.failed();
            auth.count(LoginResult::BadCredentials);
            let why = refusal("login refused: bad credentials", &lockouts);
            audit(&auth, actor, NOBODY, &why).await;
            page(
                StatusCode::UNAUTHORIZED,
                Some("Wrong account or password."),
                &form.account,
                &form.next,
            )
        }
        Err(LoginRefused::Disabled) => {
            // A refusal like any other for the throttle: it cannot be repeated without limit.
            let lockouts = attempt.failed();
            auth.count(LoginResult::Disabled);
            let why = refusal("login refused: account disabled", &lockouts);
            audit(&auth, actor, NOBODY, &why).await;
            page(
                StatusCode::FORBIDDEN,
                Some("This account is disabled. Ask a supervisor."),
                &form.account,
                &form.next,
            )
        }
        Err(LoginRefused::Busy) => {
            attempt.abandoned();
            auth.count(LoginResult::Busy);
            let mut response = page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("Too many sign-ins at once. Try again shortly."),
                &form.account,
                &form.next,
            );
            retry_after(&mut response, 1.0);
            response
        }
        Err(LoginRefused::Unavailable(e)) => {
            attempt.abandoned();
            tracing::error!(error = %e, "cannot check a login");
            unavailable(&form)
        }
    }
}

/// An audit justification for a refused login, saying which lockouts it started.
fn refusal(base: &str, lockouts: &[Lockout]) -> String {
    let mut why = base.to_string();
    for l in lockouts {
        let whose = match l.locked {
            LockedOut::AccountFromAddress => "of this account from this address",
            LockedOut::Address => "from this address",
        };
        why.push_str(&format!(
            "; {} failed logins {whose}: locked out for {} s, further attempts counted, not recorded",
            l.failures,
            l.lockout.as_secs()
        ));
    }
    why
}

/// `Retry-After` in whole seconds, at least one.
fn retry_after(response: &mut Response, secs: f64) {
    let secs = secs.ceil() as u64;
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
}

async fn logout(
    State(auth): State<Auth>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return forbidden("cross-site request refused");
    }
    let secure = auth.config().cookie_secure;
    let token = auth.session_token(&headers);
    let session = match &token {
        Some(token) => match auth.sessions.get(token).await {
            Ok(session) => session,
            Err(e) => {
                tracing::error!(error = %e, "cannot check the session");
                return (StatusCode::SERVICE_UNAVAILABLE, "sessions are unavailable")
                    .into_response();
            }
        },
        None => None,
    };
    let (Some(token), Some(session)) = (token, session) else {
        // Nobody to log out: just make sure the browser forgets any stale cookie.
        let mut response = see_other("/login");
        clear_cookie(&mut response, secure);
        return response;
    };
    let presented = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if !session.check_csrf(&presented) {
        return forbidden("logout needs the form's token: reload the page and try again");
    }
    if let Err(e) = auth.sessions.end(&token).await {
        tracing::error!(error = %e, "cannot end a session");
        return (StatusCode::SERVICE_UNAVAILABLE, "sessions are unavailable").into_response();
    }
    audit(&auth, &session.account, session.role.as_str(), "logout").await;
    tracing::info!(account = %session.account, "logout");
    let mut response = see_other("/login");
    clear_cookie(&mut response, secure);
    response
}

/// Record a login-related event; a failure to record is logged (the answer does not change).
async fn audit(auth: &Auth, actor: &str, role: &str, justification: &str) {
    let recorded = Audit { actor, role }
        .event(AuditAction::Login, AuditObject::Account(actor.into()))
        .why(justification)
        .record(auth.jetstream())
        .await;
    if let Err(e) = recorded {
        tracing::error!(error = %e, justification, "audit event not stored");
    }
}

fn unavailable(form: &LoginForm) -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        Some("Sign-in is unavailable at the moment. Try again shortly."),
        &form.account,
        &form.next,
    )
}

/// Escape text for HTML element content and quoted attribute values.
pub use lfr_common::markup::escape as escape_html;

/// The login page with `status`, an optional error, the account as typed and the return path.
fn page(status: StatusCode, error: Option<&str>, account: &str, next: &str) -> Response {
    let html = login_html(error, account, next);
    let mut response = (status, axum::response::Html(html)).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn login_html(error: Option<&str>, account: &str, next: &str) -> String {
    let error = error
        .map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, escape_html(e)))
        .unwrap_or_default();
    let next = safe_next(next).unwrap_or("");
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · lfr console</title>
<style>
  :root {{ color-scheme: light dark; --accent: #1d4ed8; }}
  * {{ box-sizing: border-box; }}
  body {{ margin: 0; min-height: 100vh; display: grid; place-items: center;
         font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
         background: Canvas; color: CanvasText; }}
  main {{ width: min(22rem, 100% - 2rem); padding: 2rem; border: 1px solid #8884;
         border-radius: 0.75rem; }}
  h1 {{ font-size: 1.25rem; margin: 0 0 1.5rem; }}
  label {{ display: block; font-weight: 600; margin-bottom: 1rem; }}
  input {{ display: block; width: 100%; margin-top: 0.35rem; padding: 0.6rem 0.7rem;
          font: inherit; border: 1px solid #8888; border-radius: 0.4rem; }}
  input:focus {{ outline: 2px solid var(--accent); outline-offset: 1px; }}
  button {{ width: 100%; padding: 0.7rem; font: inherit; font-weight: 600; color: #fff;
           background: var(--accent); border: 0; border-radius: 0.4rem; cursor: pointer; }}
  .error {{ padding: 0.6rem 0.8rem; border-radius: 0.4rem; background: #b91c1c22;
           border: 1px solid #b91c1c; margin: 0 0 1rem; }}
  .note {{ font-size: 0.85rem; opacity: 0.75; margin: 1.5rem 0 0; }}
</style>
</head>
<body>
<main>
<h1>lfr console: sign in</h1>
{error}<form method="post" action="/login">
<label>Account<input name="account" value="{account}" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus></label>
<label>Password<input name="password" type="password" autocomplete="current-password" required></label>
<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button>
</form>
<p class="note">Authorised users only. Every sign-in is recorded.</p>
</main>
</body>
</html>
"#,
        account = escape_html(account),
        next = escape_html(next),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_site_are_followed_after_login() {
        for ok in [
            "/",
            "/operator",
            "/operator?deployment=match-day&x=%20",
            "/a/b#c",
        ] {
            assert_eq!(safe_next(ok), Some(ok));
        }
        for bad in [
            "",
            "operator",
            "//evil.example/",
            "/\\evil.example",
            "/a\\b",
            "https://evil.example/",
            "javascript:alert(1)",
            "/a b",
            "/a\r\nSet-Cookie: x=1",
            "/é",
            &format!("/{}", "a".repeat(2048)),
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_refusal_that_starts_a_lockout_says_so_with_the_count() {
        assert_eq!(
            refusal("login refused: bad credentials", &[]),
            "login refused: bad credentials"
        );
        let lockout = |locked, failures| Lockout {
            locked,
            failures,
            lockout: std::time::Duration::from_secs(900),
        };
        let why = refusal(
            "login refused: bad credentials",
            &[
                lockout(LockedOut::AccountFromAddress, 5),
                lockout(LockedOut::Address, 20),
            ],
        );
        assert_eq!(
            why,
            "login refused: bad credentials; 5 failed logins of this account from this address: \
             locked out for 900 s, further attempts counted, not recorded; 20 failed logins from \
             this address: locked out for 900 s, further attempts counted, not recorded"
        );
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_page_echoes_input_only_escaped_and_drops_unsafe_return_paths() {
        let response = page(
            StatusCode::UNAUTHORIZED,
            Some("Wrong account or password."),
            "<script>",
            "//evil.example",
        );
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert!(response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
        let html = login_html(Some("<b>"), "<script>", "//evil.example");
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"));
        assert!(!html.contains("<b>") && html.contains("&lt;b&gt;"));
        assert!(
            html.contains(r#"name="next" value="""#),
            "unsafe next dropped"
        );
        let html = login_html(None, "", "/operator?d=1&x=2");
        assert!(html.contains(r#"name="next" value="/operator?d=1&amp;x=2""#));
        assert!(html.contains(r#"name="account""#) && html.contains(r#"name="password""#));
        assert!(!html.contains("class=\"error\""));
    }
}
