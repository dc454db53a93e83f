//! # Guarding the console's pages
//!
//! Every console page sits behind [`require_session`], an axum middleware that runs before the
//! handler:
//!
//! 1. For anything but `GET`/`HEAD` it checks the request comes from the console's own pages:
//!    the browser's `Origin` header, when sent, must name the host the request went to, and
//!    `Sec-Fetch-Site` must not say `cross-site`. Otherwise 403.
//! 2. It reads the session cookie (`__Host-lfr_session`, or `lfr_session` when
//!    `cookie_secure = false`) and loads the [`Session`]. None, expired or disabled:
//!    a browser asking for a page (`GET`, `Accept: text/html`) is sent to
//!    `/login?next=<where it was going>`; anything else gets 401.
//! 3. It puts the [`Session`] into the request's extensions, where the [`CurrentSession`]
//!    extractor finds it: a handler that takes `session: CurrentSession` can only run for a
//!    logged-in person.
//!
//! What each person may do is for the handler to say, with [`require_role`],
//! [`Session::may_see`] and, for every form it accepts, [`verify_csrf`] (pages emit the token with
//! [`csrf_field`]). The middleware checks *who*; handlers check *what*.
//!
//! With `cookie_secure` (the default) the cookie has the `__Host-` prefix: browsers accept it
//! only when set by this very host over HTTPS with `Path=/` and no `Domain`, so a neighbouring
//! site on a sibling domain cannot plant a session of its choosing (session fixation); and
//! [`strict_transport_security`] makes every answer tell browsers to use HTTPS only.

use super::{Auth, Role, Session};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::net::{IpAddr, SocketAddr};

/// The cookie that carries the session token over plain HTTP (`cookie_secure = false`: tests,
/// a demonstration on `http://127.0.0.1`).
pub const SESSION_COOKIE: &str = "lfr_session";
/// The cookie that carries the session token over HTTPS (`cookie_secure`, the default).
pub const SECURE_SESSION_COOKIE: &str = "__Host-lfr_session";
/// `Strict-Transport-Security` when secure: HTTPS only, for a year.
pub const HSTS: &str = "max-age=31536000";

/// The session cookie's name for `secure`.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// `app` with `Strict-Transport-Security` on every answer when `secure` (the console is served
/// over HTTPS); as it is otherwise.
pub fn strict_transport_security(app: Router, secure: bool) -> Router {
    if !secure {
        return app;
    }
    app.layer(axum::middleware::map_response(
        |mut response: Response| async move {
            response.headers_mut().insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static(HSTS),
            );
            response
        },
    ))
}

/// The session of the person making the request; put there by [`require_session`]. Handlers take
/// it as an argument; without a session (a route mounted outside the middleware) it answers 401.
#[derive(Debug, Clone)]
pub struct CurrentSession(pub Session);

impl std::ops::Deref for CurrentSession {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .map(CurrentSession)
            .ok_or_else(unauthorised)
    }
}

/// 403 unless the session's role is one of `roles`.
pub fn require_role(session: &Session, roles: &[Role]) -> Result<(), StatusCode> {
    if roles.contains(&session.role) {
        Ok(())
    } else {
        Err(StatusCode::FORBIDDEN)
    }
}

/// The hidden form field carrying the session's CSRF token; put it in every `<form method=post>`.
pub fn csrf_field(session: &Session) -> String {
    // The token is hex, but escape anyway: this is HTML.
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        super::routes::escape_html(&session.csrf)
    )
}

/// A small "Log out" form (a POST with the CSRF token) for the console's page header.
pub fn logout_form(session: &Session) -> String {
    format!(
        r#"<form method="post" action="/logout" class="logout">{}<button type="submit">Log out {}</button></form>"#,
        csrf_field(session),
        super::routes::escape_html(&session.account)
    )
}

/// For a handler of a form post: 403 unless `presented` (the form's `csrf` field) is the
/// session's token.
#[allow(clippy::result_large_err)]
pub fn verify_csrf(session: &Session, presented: &str) -> Result<(), Response> {
    if session.check_csrf(presented) {
        Ok(())
    } else {
        Err(forbidden(
            "the form is stale or not from this console: reload the page and try again",
        ))
    }
}

/// Whether a state-changing request comes from a page of this site: `Origin`, when present, must
/// be `scheme://<Host>`; `Sec-Fetch-Site`, when present, must not be `cross-site`. Browsers send
/// both on every cross-site POST; tools like curl send neither (and have no victim's cookies).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if cross_site {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    // `Origin: null` (sandboxed frames, some redirects) has no "://" and is refused.
    origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .is_some_and(|(_scheme, authority)| authority.eq_ignore_ascii_case(host))
}

/// The value of the cookie called `name` ([`session_cookie_name`]), if the request carries one.
/// Only that name: a secure console ignores a plain `lfr_session` someone else may have set.
pub fn session_token(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim_matches('"').to_string())
}

/// The middleware: see the module documentation. Mount with
/// `axum::middleware::from_fn_with_state(auth, require_session)`.
pub async fn require_session(
    State(auth): State<Auth>,
    mut request: Request,
    next: Next,
) -> Response {
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if !reads && !same_origin(request.headers()) {
        return forbidden("cross-site request refused");
    }
    let token = auth.session_token(request.headers());
    let session = match &token {
        Some(token) => auth.sessions.get(token).await,
        None => Ok(None),
    };
    match session {
        Ok(Some(session)) => {
            request.extensions_mut().insert(session);
            next.run(request).await
        }
        Ok(None) => {
            let wants_page = request.method() == Method::GET
                && request
                    .headers()
                    .get(header::ACCEPT)
                    .and_then(|a| a.to_str().ok())
                    .is_some_and(|a| a.contains("text/html"));
            if wants_page {
                let target = request
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                let mut response = see_other(&format!("/login?next={}", encode_query(&target)));
                if token.is_some() {
                    clear_cookie(&mut response, auth.config().cookie_secure);
                }
                response
            } else {
                let mut response = unauthorised();
                if token.is_some() {
                    clear_cookie(&mut response, auth.config().cookie_secure);
                }
                response
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot check the session");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({ "error": "sessions are unavailable, try again" })),
            )
                .into_response()
        }
    }
}

/// The client's address, for the login throttle: the TCP peer (the server must be run with
/// `into_make_service_with_connect_info::<SocketAddr>()`), or the last entry of the configured
/// proxy header ([`super::AuthConfig::client_ip_header`]). None when neither is available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<Auth> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, auth: &Auth) -> Result<Self, Self::Rejection> {
        let from_header = auth.config().client_ip_header.as_deref().and_then(|name| {
            parts
                .headers
                .get_all(name)
                .iter()
                .next_back()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
        });
        let peer = || {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        };
        Ok(ClientIp(from_header.or_else(peer)))
    }
}

/// `Set-Cookie` for a new session.
pub(crate) fn session_cookie(token: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    cookie(token, max_age_secs, secure)
}

/// Make the browser drop its session cookie.
pub(crate) fn clear_cookie(response: &mut Response, secure: bool) {
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookie("", 0, secure));
}

fn cookie(value: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let name = session_cookie_name(secure);
    // `__Host-` cookies must be `Secure`, `Path=/` and carry no `Domain`: all three hold.
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}"
    ))
    .expect("hex tokens make a valid header")
}

/// 303 See Other to `location` (a path on this site).
pub(crate) fn see_other(location: &str) -> Response {
    let location = HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

fn unauthorised() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({ "error": "authentication required" })),
    )
        .into_response()
}

pub(crate) fn forbidden(why: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        axum::Json(serde_json::json!({ "error": why })),
    )
        .into_response()
}

/// Percent-encode `s` for a query value: unreserved characters and `/` stay as they are.
pub(crate) fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn writes_must_come_from_this_origin() {
        assert!(
            same_origin(&headers(&[("host", "console:8080")])),
            "no Origin: curl"
        );
        assert!(same_origin(&headers(&[
            ("host", "console:8080"),
            ("origin", "http://console:8080")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "LFR.example"),
            ("origin", "https://lfr.example")
        ])));
        for (host, origin) in [
            ("console:8080", "http://evil.example"),
            ("console:8080", "http://console:8081"),
            ("console:8080", "null"),
            ("console:8080", "http://console:8080.evil"),
        ] {
            let mut h = HeaderMap::new();
            h.insert("host", host.parse().unwrap());
            h.insert("origin", origin.parse().unwrap());
            assert!(!same_origin(&h), "{origin}");
        }
        assert!(
            !same_origin(&headers(&[("origin", "http://console:8080")])),
            "no Host"
        );
        assert!(!same_origin(&headers(&[
            ("host", "console"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "console"),
            ("sec-fetch-site", "same-origin")
        ])));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        assert_eq!(
            session_token(
                &headers(&[("cookie", "a=1; lfr_session=abc; b=2")]),
                SESSION_COOKIE
            ),
            Some("abc".into())
        );
        assert_eq!(
            session_token(
                &headers(&[("cookie", "a=1"), ("cookie", "lfr_session=x")]),
                SESSION_COOKIE
            ),
            Some("x".into())
        );
        assert_eq!(
            session_token(&headers(&[("cookie", "lfr_sessionx=1")]), SESSION_COOKIE),
            None
        );
        assert_eq!(session_token(&HeaderMap::new(), SESSION_COOKIE), None);
        // A secure console reads only the `__Host-` cookie.
        let both = headers(&[("cookie", "lfr_session=planted; __Host-lfr_session=mine")]);
        assert_eq!(
            session_token(&both, SECURE_SESSION_COOKIE),
            Some("mine".into())
        );
        assert_eq!(
            session_token(
                &headers(&[("cookie", "lfr_session=planted")]),
                SECURE_SESSION_COOKIE
            ),
            None
        );
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_with_the_host_prefix_when_asked() {
        let c = session_cookie("tok", 43_200, true);
        assert_eq!(
            c.to_str().unwrap(),
            "__Host-lfr_session=tok; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200; Secure"
        );
        assert!(!c.to_str().unwrap().contains("Domain"));
        let plain = session_cookie("tok", 1, false);
        let plain = plain.to_str().unwrap();
        assert!(plain.starts_with("lfr_session=tok;") && !plain.contains("Secure"));
    }

    #[test]
    fn the_return_path_is_query_encoded() {
        assert_eq!(
            encode_query("/operator?d=a&x=1"),
            "/operator%3Fd%3Da%26x%3D1"
        );
    }

    #[test]
    fn roles_outside_the_list_are_forbidden() {
        let session = Session {
            account: "a".into(),
            role: Role::Officer,
            deployments: vec![],
            csrf: "c".into(),
            created_at: lfr_schemas::Timestamp(0),
            expires_at: lfr_schemas::Timestamp(1),
            password_generation: 0,
            rank: None,
        };
        assert_eq!(
            require_role(&session, &[Role::Operator, Role::Supervisor]),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(require_role(&session, &[Role::Officer]), Ok(()));
        assert!(verify_csrf(&session, "c").is_ok());
        assert_eq!(
            verify_csrf(&session, "d").unwrap_err().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            csrf_field(&session),
            r#"<input type="hidden" name="csrf" value="c">"#
        );
    }
}
