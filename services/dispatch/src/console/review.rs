//! # A deployment's record, and the review of its watch list
//!
//! | page | role | shows | actions |
//! |---|---|---|---|
//! | `/deployments/{id}` | supervisor, auditor | the governance record (command structure, objectives, intelligence case, signage), the authorisation (officer, rank, list digest), the review and when it lapses, a banner while matching is paused | |
//! | same | supervisor | also every entry of the attached list: reference, category, image | sign off this list (`POST .../review`) |
//! | `/deployments/{id}/entries/{sha256}` | supervisor | one reference image of the list | |
//!
//! The reviewer signs off what they were shown: the form carries the digest of the list the page
//! listed, and the lifecycle refuses it if another list is attached by then (or if the reviewer
//! enrolled it). A review stands for 48 hours, also while the deployment runs: once it lapses
//! matching pauses (no capture, no alerts) until someone reviews the same list again here.
//!
//! Showing the entries and each reference image is a **consultation** of the watch list, recorded
//! on AUDIT before anything is shown; if it cannot be recorded nothing is shown (fail closed).
//! Auditors see the records, never the faces.

use super::{allow, html, Console};
use crate::auth::{guard, CurrentSession, Role};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use lfr_schemas::{AuditAction, AuditObject, Timestamp};
use lfr_watchlist::deployment::{Deployment, Pause};
use lfr_watchlist::lifecycle::Error;
use serde::Deserialize;

pub async fn page(
    State(console): State<Console>,
    session: CurrentSession,
    Path(id): Path<String>,
) -> Response {
    if let Err(refused) = allow(&session, &[Role::Supervisor, Role::Auditor]) {
        return refused;
    }
    let deployment = match console.lifecycle.show(&id).await {
        Ok(view) => view.deployment,
        Err(Error::NotFound(_)) => {
            return html::refusal(StatusCode::NOT_FOUND, "No such deployment.")
        }
        Err(e) => {
            tracing::warn!(deployment = %id, error = %e, "deployment record unreadable");
            return html::refusal(StatusCode::SERVICE_UNAVAILABLE, "Deployment unavailable.");
        }
    };
    let mut body = banner(&deployment, Timestamp::now());
    body.push_str(&record(&deployment));
    if session.role == Role::Supervisor {
        match entries(&console, &session, &deployment).await {
            Ok(section) => body.push_str(&section),
            Err(refused) => return refused,
        }
    }
    html::page(
        &session,
        &format!("Deployment {}", deployment.id),
        "deployment",
        None,
        &body,
    )
}

/// A notice while `d` is paused at `now` (empty otherwise).
pub fn banner(d: &Deployment, now: Timestamp) -> String {
    match d.paused(now) {
        Some(Pause::ReviewLapsed { since }) => format!(
            r#"<p class="notice paused" role="alert">Matching is PAUSED on {id}: the review of its watch list lapsed at {since} (a review stands for 48 hours). Nothing is captured or matched until the list is <a href="/deployments/{id}">reviewed again</a>.</p>"#,
            id = html::escape(&d.id),
            since = lfr_watchlist::time::format_utc(since),
        ),
        None => String::new(),
    }
}

/// The same notice for the people who work a deployment (operators): no link to the record,
/// which is not theirs to open, only who can end the pause.
pub fn staff_banner(d: &Deployment, now: Timestamp) -> String {
    match d.paused(now) {
        Some(Pause::ReviewLapsed { .. }) => format!(
            r#"<p class="notice paused" role="alert">Matching is PAUSED on {id}: the review of its watch list lapsed, so no alert can arrive. A supervisor must review the list again.</p>"#,
            id = html::escape(&d.id),
        ),
        None => String::new(),
    }
}

/// The governance record, the authorisation and the review, as text.
fn record(d: &Deployment) -> String {
    let row = |k: &str, v: &str| {
        format!(
            "<tr><th>{}</th><td>{}</td></tr>",
            html::escape(k),
            html::escape(v)
        )
    };
    let mut rows = String::new();
    rows.push_str(&row("Name", &d.name));
    rows.push_str(&row("Location", &d.location));
    rows.push_str(&row("Cameras", &d.cameras.join(", ")));
    rows.push_str(&row("Purpose", &d.purpose));
    let when = |t: Timestamp| lfr_watchlist::time::format_utc(t);
    rows.push_str(&row(
        "Window",
        &format!("{} to {}", when(d.starts_at), when(d.ends_at)),
    ));
    rows.push_str(&row("State", &format!("{:?}", d.state)));
    match &d.governance {
        Some(g) => {
            rows.push_str(&row("Gold (strategic)", &g.gold));
            rows.push_str(&row("Silver (tactical)", &g.silver));
            rows.push_str(&row("Bronze (operational)", &g.bronze));
            rows.push_str(&row("Objectives", &g.objectives));
            rows.push_str(&row("Intelligence case", &g.intelligence_case));
            rows.push_str(&row("Signage and notices", &g.signage));
        }
        None => rows.push_str(&row(
            "Governance",
            "not recorded: required before authorisation",
        )),
    }
    rows.push_str(&row(
        "Threshold",
        &match &d.threshold_override {
            None => format!("{} (calibrated)", d.lowest_threshold()),
            Some(o) => format!(
                "{} — BELOW the calibrated {} by override of {}: {}",
                d.lowest_threshold(),
                o.calibrated,
                o.by,
                o.reason
            ),
        },
    ));
    rows.push_str(&row(
        "Authorised",
        &match &d.authorisation {
            Some(a) => format!(
                "by {} ({}) at {}, list {}",
                a.officer,
                a.rank.map(|r| r.as_str()).unwrap_or("rank not recorded"),
                when(a.at),
                a.digest
            ),
            None => "no".into(),
        },
    ));
    rows.push_str(&row(
        "Reviewed",
        &match (&d.review, d.review_lapses_at()) {
            (Some(r), Some(lapses)) => format!(
                "by {} at {}, list {}; stands until {}",
                r.reviewer,
                when(r.at),
                r.digest,
                when(lapses)
            ),
            _ => "no".into(),
        },
    ));
    format!(r#"<h2>Record</h2><table class="record">{rows}</table>"#)
}

/// The attached list's entries with their images and the sign-off form, recorded as a
/// consultation first (refused if that cannot be recorded).
async fn entries(
    console: &Console,
    session: &crate::auth::Session,
    d: &Deployment,
) -> Result<String, Response> {
    let Some(attached) = &d.watchlist else {
        return Ok("<h2>Watch list</h2><p>No list attached.</p>".into());
    };
    let list = match console.lifecycle.store().watchlist(&d.id).await {
        Ok(Some(list)) if list.digest() == attached.digest => list,
        Ok(_) => {
            return Ok("<h2>Watch list</h2><p class=\"notice\">The stored list is not the attached one: enrol it again.</p>".into())
        }
        Err(e) => {
            tracing::warn!(deployment = %d.id, error = %e, "watch list unreadable");
            return Err(html::refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "The watch list cannot be read now.",
            ));
        }
    };
    let recorded = session
        .audit()
        .event(
            AuditAction::Consultation,
            AuditObject::Watchlist(d.id.clone()),
        )
        .deployment(d.id.clone())
        .why("watch list shown to a supervisor for review")
        .digest(attached.digest.clone())
        .record(&console.bus.jetstream)
        .await;
    if let Err(e) = recorded {
        tracing::error!(deployment = %d.id, error = %e, "watch list not shown: its consultation could not be recorded");
        return Err(unaudited());
    }
    let mut rows = String::new();
    for e in &list.entries {
        rows.push_str(&format!(
            r#"<tr><td>{reference}</td><td>{category}</td><td><img src="/deployments/{id}/entries/{sha}" alt="reference image of {reference}" width="112"></td></tr>"#,
            reference = html::escape(&e.reference),
            category = e.category.as_str(),
            id = html::escape(&d.id),
            sha = html::escape(&e.image_sha256),
        ));
    }
    let form = if d.state == lfr_watchlist::deployment::State::Ended {
        String::new()
    } else {
        format!(
            r#"<form method="post" action="/deployments/{id}/review">{csrf}<input type="hidden" name="digest" value="{digest}"><button type="submit">I have reviewed these {n} entries (list {digest})</button></form>"#,
            id = html::escape(&d.id),
            csrf = guard::csrf_field(session),
            digest = html::escape(&attached.digest),
            n = list.entries.len(),
        )
    };
    Ok(format!(
        r#"<h2>Watch list</h2><p>{n} entries, {subjects} subjects, list {digest}, enrolled by {by}.</p>
<table class="entries"><thead><tr><th>Reference</th><th>Category</th><th>Image</th></tr></thead><tbody>{rows}</tbody></table>{form}"#,
        n = attached.entries,
        subjects = attached.subjects,
        digest = html::escape(&attached.digest),
        by = html::escape(if attached.enrolled_by.is_empty() {
            "(not recorded)"
        } else {
            &attached.enrolled_by
        }),
    ))
}

/// One reference image of the attached list: supervisors only, one consultation per fetch.
pub async fn image(
    State(console): State<Console>,
    session: CurrentSession,
    Path((id, sha)): Path<(String, String)>,
) -> Response {
    if let Err(refused) = allow(&session, &[Role::Supervisor]) {
        return refused;
    }
    let not_found = || html::refusal(StatusCode::NOT_FOUND, "No such image.");
    let store = console.lifecycle.store();
    // Only an image the attached list names: not any blob stored under the deployment.
    let named = match store.watchlist(&id).await {
        Ok(Some(list)) => list.entries.iter().any(|e| e.image_sha256 == sha),
        Ok(None) => false,
        Err(_) => return html::refusal(StatusCode::SERVICE_UNAVAILABLE, "Image unavailable."),
    };
    if !named {
        return not_found();
    }
    let bytes = match store.image(&id, &sha).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return not_found(),
        Err(_) => return html::refusal(StatusCode::SERVICE_UNAVAILABLE, "Image unavailable."),
    };
    let recorded = session
        .audit()
        .event(
            AuditAction::Consultation,
            AuditObject::Watchlist(id.clone()),
        )
        .deployment(id.clone())
        .why("watch-list reference image shown to a supervisor for review")
        .digest(sha.clone())
        .record(&console.bus.jetstream)
        .await;
    if let Err(e) = recorded {
        tracing::error!(deployment = %id, error = %e, "reference image not shown: its consultation could not be recorded");
        return unaudited();
    }
    html::secure(([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response())
}

#[derive(Deserialize)]
pub struct ReviewForm {
    csrf: String,
    digest: String,
}

/// Sign off the list the page showed, as the logged-in supervisor.
pub async fn sign_off(
    State(console): State<Console>,
    session: CurrentSession,
    Path(id): Path<String>,
    form: Result<Form<ReviewForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if let Err(refused) = allow(&session, &[Role::Supervisor]) {
        return refused;
    }
    let Ok(Form(form)) = form else {
        return html::refusal(StatusCode::BAD_REQUEST, "The form was not understood.");
    };
    if let Err(refused) = guard::verify_csrf(&session, &form.csrf) {
        return refused;
    }
    match console
        .lifecycle
        .review(&id, &session.actor(), &form.digest)
        .await
    {
        Ok(_) => Redirect::to(&format!("/deployments/{id}")).into_response(),
        Err(Error::NotFound(_)) => html::refusal(StatusCode::NOT_FOUND, "No such deployment."),
        Err(Error::Gate(refused)) => {
            let status = match refused {
                lfr_watchlist::deployment::GateError::Forbidden(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::CONFLICT,
            };
            html::refusal(status, &refused.to_string())
        }
        Err(e) => {
            tracing::error!(deployment = %id, error = %e, "review not recorded");
            html::refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "The review could not be recorded.",
            )
        }
    }
}

fn unaudited() -> Response {
    html::refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "This cannot be shown now: the audit record could not be written.",
    )
}
