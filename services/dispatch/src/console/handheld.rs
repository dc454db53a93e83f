//! The officers' handheld feed: confirmed alerts of live deployments only (empty once the
//! deployment has ended), newest first, sized for a phone. The
//! upper-torso context image comes first and largest: it is what lets an officer stop the right
//! person. Each alert takes an outcome: engaged and arrested, engaged with no further action, not
//! the person (a false alert), or not located.
//!
//! Showing an alert here is a **disclosure** to that officer, recorded on AUDIT once per officer and
//! alert (each image fetched is one more, see `images`); an alert whose disclosure cannot be
//! recorded is not shown. An outcome is recorded on AUDIT first (refused, 503, if it cannot be)
//! and then appended to ALERTS (`lfr.alerts.<deployment>.outcome`), where retention
//! (an arrest puts the alert under legal hold) and the accuracy figures read it.
//!
//! **Corrections.** The latest outcome counts. The officer who recorded an alert's current
//! outcome may correct it (a mistaken "arrested" corrected to "no further action" lifts the arrest
//! hold); another officer cannot overwrite it (409): they ask that officer, or a supervisor
//! releases the arrest hold (`lfr retention release`). Every outcome stays on ALERTS and each
//! change is recorded on AUDIT ("outcome corrected: arrested -> no-further-action"); the card
//! shows the history. Submitting the current outcome again (a double tap) records nothing new.

use super::operator::{facts, images};
use super::{allow, html, visible, Console};
use crate::auth::{guard, CurrentSession, Role, Session};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use lfr_alerts::book::Entry;
use lfr_schemas::{streams, subjects, AlertOutcome, AuditAction, AuditObject, Outcome, Timestamp};
use serde::Deserialize;

pub async fn page(State(console): State<Console>, session: CurrentSession) -> Response {
    if let Err(refused) = allow(&session, &[Role::Officer]) {
        return refused;
    }
    let feed = render_feed(&console, &session).await;
    let body = format!(r#"<section id="feed" data-live="/handheld/feed">{feed}</section>"#);
    html::page(
        &session,
        "Confirmed alerts",
        "handheld",
        Some("/handheld/feed"),
        &body,
    )
}

pub async fn feed(State(console): State<Console>, session: CurrentSession) -> Response {
    if let Err(refused) = allow(&session, &[Role::Officer]) {
        return refused;
    }
    html::fragment(render_feed(&console, &session).await)
}

async fn render_feed(console: &Console, session: &Session) -> String {
    // Officers act on live deployments only: after the end, the feed is empty.
    let live = console.live_deployments().await;
    let alerts = console.book.select(|e| {
        e.is_confirmed()
            && live.contains(&e.alert.deployment)
            && session.may_see(&e.alert.deployment)
    });
    if alerts.is_empty() {
        return r#"<p class="empty">No confirmed alerts.</p>"#.into();
    }
    let mut out = String::new();
    for (shown, entry) in alerts.iter().enumerate() {
        if let Err(e) = console.shown(session, entry, AuditAction::Disclosure).await {
            out.push_str(&console.unaudited_list(alerts.len() - shown, &e));
            break;
        }
        out.push_str(&card(session, entry));
    }
    out
}

fn card(session: &Session, entry: &Entry) -> String {
    let id = html::escape(&entry.alert.alert_id);
    let recorded = match entry.outcome() {
        Some(o) => {
            let history: String = entry
                .corrected_outcomes()
                .iter()
                .map(|c| {
                    format!(
                        "<li>{} ({}, {}), corrected</li>",
                        c.outcome.describe(),
                        html::escape(&c.actor),
                        html::clock(c.recorded_at)
                    )
                })
                .collect();
            let history = if history.is_empty() {
                history
            } else {
                format!(r#"<ul class="outcome-history">{history}</ul>"#)
            };
            format!(
                r#"<p class="outcome">Outcome: <strong>{}</strong> ({})</p>{history}"#,
                o.outcome.describe(),
                html::escape(&o.actor)
            )
        }
        None => String::new(),
    };
    // Once recorded, only the officer who recorded the outcome may correct it.
    if entry.outcome().is_some_and(|o| o.actor != session.account) {
        return format!(
            r#"<article class="alert" id="alert-{id}" data-alert="{id}">
{images}{facts}{recorded}
</article>"#,
            images = images(entry),
            facts = facts(entry),
        );
    }
    let correcting = if entry.outcome().is_some() {
        r#"<p class="correct">Correct the outcome:</p>"#
    } else {
        ""
    };
    let buttons: String = Outcome::ALL
        .iter()
        .map(|o| {
            format!(
                r#"<button type="submit" name="outcome" value="{}">{}</button>"#,
                o.as_str(),
                o.describe()
            )
        })
        .collect();
    format!(
        r#"<article class="alert" id="alert-{id}" data-alert="{id}">
{images}{facts}{recorded}
<form method="post" action="/alerts/{id}/outcome">{csrf}{correcting}
<input type="text" name="note" placeholder="Note (optional)" maxlength="500">
<div class="outcomes">{buttons}</div></form>
</article>"#,
        images = images(entry),
        facts = facts(entry),
        csrf = guard::csrf_field(session),
    )
}

#[derive(Debug, Deserialize)]
pub struct OutcomeForm {
    csrf: String,
    outcome: String,
    #[serde(default)]
    note: String,
}

pub async fn record_outcome(
    State(console): State<Console>,
    session: CurrentSession,
    Path(id): Path<String>,
    form: Result<Form<OutcomeForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if let Err(refused) = allow(&session, &[Role::Officer]) {
        return refused;
    }
    let Ok(Form(form)) = form else {
        return html::refusal(StatusCode::BAD_REQUEST, "The form was not understood.");
    };
    if let Err(refused) = guard::verify_csrf(&session, &form.csrf) {
        return refused;
    }
    let Some(outcome) = Outcome::parse(&form.outcome) else {
        return html::refusal(StatusCode::BAD_REQUEST, "Choose one of the outcomes.");
    };
    let entry = match visible(&console, &session, &id) {
        Ok(entry) if entry.is_confirmed() => entry,
        // An officer has no business with an unconfirmed alert: as far as they know, none exists.
        _ => return html::refusal(StatusCode::NOT_FOUND, "No such alert."),
    };
    // The latest outcome counts: a later one corrects it, by the officer who recorded it only.
    let previous = entry.outcome().cloned();
    if let Some(current) = &previous {
        if current.actor != session.account {
            return html::refusal(
                StatusCode::CONFLICT,
                "Another officer recorded this alert's outcome: only they can correct it.",
            );
        }
        if current.outcome == outcome {
            // A double tap: already recorded.
            return Redirect::to("/handheld").into_response();
        }
    }
    // On the record before it is stored: an outcome that cannot be audited is not taken.
    let why = match &previous {
        None => format!("outcome recorded: {}", outcome.as_str()),
        Some(p) if p.outcome == Outcome::EngagedArrested => format!(
            "outcome corrected: {} -> {} (the arrest hold is lifted)",
            p.outcome.as_str(),
            outcome.as_str()
        ),
        Some(p) => format!(
            "outcome corrected: {} -> {}",
            p.outcome.as_str(),
            outcome.as_str()
        ),
    };
    let audited = session
        .audit()
        .event(AuditAction::Alteration, AuditObject::Alert(id.clone()))
        .deployment(&entry.alert.deployment)
        .why(why)
        .record(&console.bus.jetstream)
        .await;
    if let Err(e) = audited {
        return console.unaudited("outcome", &id, &e);
    }
    let note = form.note.trim();
    let record = AlertOutcome {
        alert_id: id.clone(),
        deployment: entry.alert.deployment.clone(),
        outcome,
        actor: session.account.clone(),
        note: (!note.is_empty()).then(|| note.chars().take(500).collect()),
        recorded_at: Timestamp::now(),
    };
    let stored = async {
        console
            .bus
            .publish_record(
                streams::ALERTS,
                subjects::alert_outcomes(&record.deployment),
                // Numbered by the outcomes before it: a retried publish is stored once, and a
                // correction is a new record.
                &format!(
                    "{id}.outcome.{}.{}.{}",
                    entry.outcomes.len(),
                    outcome.as_str(),
                    session.account
                ),
                &record,
            )
            .await?
            .acknowledged()
            .await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = stored {
        tracing::error!(alert = %id, error = %e, "outcome not stored");
        return html::refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "The outcome could not be stored. Try again.",
        );
    }
    console.metrics.outcome(outcome);
    tracing::info!(
        alert = %id,
        outcome = outcome.as_str(),
        corrected = previous.is_some(),
        "outcome recorded"
    );
    Redirect::to("/handheld").into_response()
}
