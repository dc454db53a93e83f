//! The operator's review queue: each pending candidate alert with the probe face, the upper-torso
//! context and the watch-list image side by side, and two actions. **Confirm** sends it to the
//! officers' handheld feed; **reject** marks it a false alert, and it never reaches an officer.
//!
//! A decision is appended to ALERTS (`lfr.alerts.<deployment>.decision`, message id
//! `<alert>.decision`, so a double submit is stored once) and takes effect when the book folds it:
//! the first decision wins. Deciding again the same way is a no-op; the other way is refused.
//!
//! The decision is recorded on AUDIT (an alteration of `alert/<id>`, by the operator) **before**
//! it is appended: if the event cannot be stored the decision is refused (503) and nothing
//! reaches ALERTS. The queue records each alert it shows once per operator (a consultation) and
//! shows no alert whose showing cannot be recorded.

use super::{allow, html, visible, Console};
use crate::auth::{guard, CurrentSession, Role, Session};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use lfr_alerts::book::Entry;
use lfr_schemas::{
    streams, subjects, AlertDecision, AuditAction, AuditObject, Decision, Timestamp,
};
use serde::Deserialize;
use std::time::Duration;

pub async fn page(State(console): State<Console>, session: CurrentSession) -> Response {
    if let Err(refused) = allow(&session, &[Role::Operator]) {
        return refused;
    }
    let queue = render_queue(&console, &session).await;
    let now = lfr_schemas::Timestamp::now();
    let paused: String = console
        .lifecycle
        .list()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|d| session.may_see(&d.id))
        .map(|d| super::review::staff_banner(d, now))
        .collect();
    let body =
        format!(r#"{paused}<section id="queue" data-live="/operator/queue">{queue}</section>"#);
    html::page(
        &session,
        "Alert review",
        "operator",
        Some("/operator/queue"),
        &body,
    )
}

pub async fn queue(State(console): State<Console>, session: CurrentSession) -> Response {
    if let Err(refused) = allow(&session, &[Role::Operator]) {
        return refused;
    }
    html::fragment(render_queue(&console, &session).await)
}

async fn render_queue(console: &Console, session: &Session) -> String {
    let ended = console.ended_deployments().await;
    let mut alerts = console.book.select(|e| {
        e.is_pending()
            && session.may_see(&e.alert.deployment)
            && !ended.contains(&e.alert.deployment)
    });
    // Oldest first: the one waiting longest is the one to review next.
    alerts.reverse();
    if alerts.is_empty() {
        return r#"<p class="empty">No alerts waiting for review.</p>"#.into();
    }
    let mut out = String::new();
    for (shown, entry) in alerts.iter().enumerate() {
        if let Err(e) = console
            .shown(session, entry, AuditAction::Consultation)
            .await
        {
            out.push_str(&console.unaudited_list(alerts.len() - shown, &e));
            break;
        }
        out.push_str(&card(session, entry));
    }
    out
}

/// One alert for review.
fn card(session: &Session, entry: &Entry) -> String {
    let a = &entry.alert;
    let id = html::escape(&a.alert_id);
    let waited = a.raised_at.until(Timestamp::now()).as_secs();
    let flag = if entry.escalated {
        format!(r#"<span class="flag">ESCALATED: waiting {waited} s</span>"#)
    } else {
        String::new()
    };
    format!(
        r#"<article class="alert{escalated}" id="alert-{id}" data-alert="{id}">
<div class="actions">{flag}</div>
{images}
{facts}
<div class="actions">
<form method="post" action="/alerts/{id}/decision">{csrf}<input type="hidden" name="decision" value="confirm">
<button class="confirm" type="submit">Confirm: send to officers</button></form>
<form method="post" action="/alerts/{id}/decision">{csrf}<input type="hidden" name="decision" value="reject">
<input type="text" name="reason" placeholder="Reason (optional)" maxlength="500">
<button class="reject" type="submit">Reject: false alert</button></form>
</div></article>"#,
        escalated = if entry.escalated { " escalated" } else { "" },
        images = images(entry),
        facts = facts(entry),
        csrf = guard::csrf_field(session),
    )
}

/// Probe, context and watch-list image, side by side.
pub fn images(entry: &Entry) -> String {
    let id = html::escape(&entry.alert.alert_id);
    format!(
        r#"<div class="images">
<figure class="context"><img src="/alerts/{id}/context.jpg" alt="Upper-torso context from the camera"><figcaption>Camera: upper torso</figcaption></figure>
<figure class="probe"><img src="/alerts/{id}/probe.jpg" alt="Face seen by the camera"><figcaption>Camera: face</figcaption></figure>
<figure class="reference"><img src="/alerts/{id}/reference.jpg" alt="Watch-list image"><figcaption>Watch list</figcaption></figure>
</div>"#
    )
}

/// Category, score, camera, time and corroboration.
pub fn facts(entry: &Entry) -> String {
    let a = &entry.alert;
    format!(
        r#"<dl class="facts"><dt>Category</dt><dd class="category">{category}</dd>
<dt>Reference</dt><dd>{reference}</dd>
<dt>Similarity</dt><dd>{score:.2} ({frames} of {track} frames)</dd>
<dt>Camera</dt><dd>{camera}</dd><dt>Seen</dt><dd>{seen}</dd>
<dt>Deployment</dt><dd>{deployment}</dd></dl>"#,
        category = a.category.as_str(),
        reference = html::escape(&a.entry_ref),
        score = a.score,
        frames = a.corroborating_frames,
        track = a.track_frames,
        camera = html::escape(&a.probe.frame.camera),
        seen = html::clock(a.probe.frame.captured_at),
        deployment = html::escape(&a.deployment),
    )
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    csrf: String,
    decision: String,
    #[serde(default)]
    reason: String,
}

pub async fn decide(
    State(console): State<Console>,
    session: CurrentSession,
    Path(id): Path<String>,
    form: Result<Form<DecisionForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if let Err(refused) = allow(&session, &[Role::Operator]) {
        return refused;
    }
    let Ok(Form(form)) = form else {
        return html::refusal(StatusCode::BAD_REQUEST, "The form was not understood.");
    };
    if let Err(refused) = guard::verify_csrf(&session, &form.csrf) {
        return refused;
    }
    let decision = match form.decision.as_str() {
        "confirm" => Decision::Confirmed,
        "reject" => Decision::RejectedFalseAlert,
        _ => return html::refusal(StatusCode::BAD_REQUEST, "Confirm or reject."),
    };
    let entry = match visible(&console, &session, &id) {
        Ok(entry) => entry,
        Err(refused) => return refused,
    };
    if entry.is_blue() {
        return html::refusal(
            StatusCode::CONFLICT,
            "Blue-list alerts are for the technical team; they are not reviewed.",
        );
    }
    if let Some(done) = &entry.decision {
        return if done.decision == decision {
            Redirect::to("/operator").into_response()
        } else {
            html::refusal(
                StatusCode::CONFLICT,
                &format!(
                    "This alert was already {} by {}.",
                    done.decision.as_str(),
                    done.actor
                ),
            )
        };
    }
    if console
        .ended_deployments()
        .await
        .contains(&entry.alert.deployment)
    {
        return html::refusal(
            StatusCode::CONFLICT,
            "This deployment has ended: its alerts can no longer be sent to officers.",
        );
    }
    // On the record before it is stored: a decision that cannot be audited is not taken.
    let why = match decision {
        Decision::Confirmed => "operator confirmed the alert: released to officers",
        Decision::RejectedFalseAlert => "operator rejected the alert as a false alert",
    };
    let audited = session
        .audit()
        .event(AuditAction::Alteration, AuditObject::Alert(id.clone()))
        .deployment(&entry.alert.deployment)
        .why(why)
        .record(&console.bus.jetstream)
        .await;
    if let Err(e) = audited {
        return console.unaudited("decision", &id, &e);
    }
    let reason = form.reason.trim();
    let record = AlertDecision {
        alert_id: id.clone(),
        deployment: entry.alert.deployment.clone(),
        decision,
        actor: session.account.clone(),
        reason: (!reason.is_empty()).then(|| reason.chars().take(500).collect()),
        decided_at: Timestamp::now(),
    };
    if let Err(e) = publish(&console, &record).await {
        tracing::error!(alert = %id, error = %e, "decision not stored");
        return html::refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "The decision could not be stored. Try again.",
        );
    }
    // Wait for the book to fold it, so the queue shown next reflects it.
    let folded = wait_for_decision(&console, &id).await;
    match folded {
        Some(d) if d.actor == record.actor && d.decided_at == record.decided_at => {
            console.metrics.decision(decision);
            console
                .metrics
                .review_seconds
                .observe(entry.alert.raised_at.until(d.decided_at).as_secs_f64());
            tracing::info!(alert = %id, decision = decision.as_str(), "alert decided");
            Redirect::to("/operator").into_response()
        }
        Some(d) if d.decision == decision => Redirect::to("/operator").into_response(),
        Some(d) => html::refusal(
            StatusCode::CONFLICT,
            &format!(
                "This alert was already {} by {}.",
                d.decision.as_str(),
                d.actor
            ),
        ),
        None => html::refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "The decision was sent but is not visible yet. Reload in a moment.",
        ),
    }
}

async fn publish(console: &Console, decision: &AlertDecision) -> anyhow::Result<()> {
    console
        .bus
        .publish_record(
            streams::ALERTS,
            subjects::alert_decisions(&decision.deployment),
            &format!("{}.decision", decision.alert_id),
            decision,
        )
        .await?
        .acknowledged()
        .await?;
    Ok(())
}

async fn wait_for_decision(console: &Console, id: &str) -> Option<AlertDecision> {
    for _ in 0..100 {
        if let Some(d) = console.book.get(id).and_then(|e| e.decision) {
            return Some(d);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
