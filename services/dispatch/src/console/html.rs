//! Server-rendered HTML: one layout for every console page, escaping for everything that came from
//! data, and the security headers every answer carries.
//!
//! Pages load one stylesheet and, on live pages, one script, both served by the console itself
//! (`/static/...`), so the Content-Security-Policy can forbid inline scripts and every other origin.

use crate::auth::{guard, Session};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

pub use crate::auth::routes::escape_html as escape;

pub const CSS: &str = include_str!("../../assets/console.css");
pub const LIVE_JS: &str = include_str!("../../assets/live.js");

const CSP: &str = "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A whole page for `session`. `live` names the fragment URL the page refreshes when told to.
pub fn page(
    session: &Session,
    title: &str,
    body_class: &str,
    live: Option<&str>,
    body: &str,
) -> Response {
    let script = if live.is_some() {
        r#"<script src="/static/live.js" defer></script>"#
    } else {
        ""
    };
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · lfr</title><link rel="stylesheet" href="/static/console.css">{script}</head>
<body class="{body_class}">
<header><h1>{title}</h1><span class="who">{account} ({role})</span>{logout}</header>
<main>{body}</main>
</body></html>"#,
        title = escape(title),
        account = escape(&session.account),
        role = session.role.as_str(),
        logout = guard::logout_form(session),
    );
    secure(Html(html).into_response())
}

/// A fragment for a live region (no layout).
pub fn fragment(html: String) -> Response {
    secure(Html(html).into_response())
}

/// A plain page for a refusal a person will read.
pub fn refusal(status: StatusCode, message: &str) -> Response {
    let html = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{status}</title>
<link rel="stylesheet" href="/static/console.css"></head><body><main>
<p class="notice">{message}</p><p><a href="/">Back</a></p></main></body></html>"#,
        status = status.as_u16(),
        message = escape(message),
    );
    secure((status, Html(html)).into_response())
}

/// Headers for every console answer: nothing cached (pages show faces), no framing, no inline
/// script, no referrer leaking alert ids to elsewhere.
pub fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// `Timestamp` as `HH:MM:SS` UTC (the console shows times of today's deployment).
pub fn clock(t: lfr_schemas::Timestamp) -> String {
    let secs = t.0 / 1_000_000_000;
    format!(
        "{:02}:{:02}:{:02} UTC",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}
