//! Blue-list walk tests at the console: the technical team records each walk of a staff volunteer
//! past a camera (who walked, which camera, when, by which account), and the supervisor page
//! shows every walk scored, alerted or missed ([`crate::accuracy`]).
//!
//! A walk is a [`BlueWalk`] on ALERTS (`lfr.alerts.<deployment>.walk`, published by dispatch
//! alone), so every replica folds the same walks. Recording one is audited first and refused if
//! the audit record cannot be written. A walk names the volunteer either by their **blue-list**
//! entry reference (checked against the deployment's list: a reference of anyone else is
//! refused, so a walk can never point at a person on the watch list) or by a label; it holds no
//! image.

use super::{allow, html, Console};
use crate::accuracy::{Rates, ScoredWalk};
use crate::auth::{guard, CurrentSession, Role, Session};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use lfr_alerts::walks::WalkResult;
use lfr_schemas::{
    streams, subjects, AuditAction, AuditObject, BlueWalk, Timestamp, Walker, WatchlistCategory,
};
use serde::Deserialize;
use std::time::Duration;

/// How far ahead of now a walk's start may be given (clock skew between a phone and the server).
const FUTURE_SLACK: Duration = Duration::from_secs(300);

#[derive(Debug, Deserialize)]
pub struct WalkForm {
    csrf: String,
    deployment: String,
    camera: String,
    /// The volunteer's blue-list entry reference, or empty.
    #[serde(default)]
    reference: String,
    /// A label for the volunteer, when no reference is given.
    #[serde(default)]
    label: String,
    /// `YYYY-MM-DDTHH:MM:SSZ`; empty: now.
    #[serde(default)]
    started_at: String,
}

/// The form, for the supervisor page.
pub fn form(session: &Session) -> String {
    format!(
        r#"<form method="post" action="/supervisor/walks" class="walk">{csrf}
<label>Deployment <input name="deployment" required></label>
<label>Camera <input name="camera" required></label>
<label>Blue-list reference <input name="reference"></label>
<label>or volunteer label <input name="label" maxlength="64"></label>
<label>Started (UTC, YYYY-MM-DDTHH:MM:SSZ; empty: now) <input name="started_at"></label>
<button type="submit">Record walk</button></form>"#,
        csrf = guard::csrf_field(session)
    )
}

/// Record a walk.
pub async fn record(
    State(console): State<Console>,
    session: CurrentSession,
    form: Result<Form<WalkForm>, axum::extract::rejection::FormRejection>,
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
    let walk = match checked(&console, &session, &form).await {
        Ok(walk) => walk,
        Err(refused) => return refused,
    };
    // On the record before it is stored: a walk that cannot be audited is not recorded.
    let audited = session
        .audit()
        .event(
            AuditAction::Collection,
            AuditObject::Deployment(walk.deployment.clone()),
        )
        .deployment(&walk.deployment)
        .why(format!(
            "blue-list walk test {} recorded on camera {}",
            walk.walk_id, walk.camera
        ))
        .record(&console.bus.jetstream)
        .await;
    if let Err(e) = audited {
        return console.unaudited("walk", &walk.walk_id, &e);
    }
    let stored = async {
        console
            .bus
            .publish_record(
                streams::ALERTS,
                subjects::blue_walks(&walk.deployment),
                &format!("{}.walk", walk.walk_id),
                &walk,
            )
            .await?
            .acknowledged()
            .await?;
        anyhow::Ok(())
    };
    if let Err(e) = stored.await {
        tracing::error!(deployment = %walk.deployment, error = %e, "walk not stored");
        return html::refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "The walk could not be stored. Try again.",
        );
    }
    // Wait for the book to fold it, so the page shown next lists it.
    for _ in 0..100 {
        if console
            .book
            .walks(&walk.deployment)
            .iter()
            .any(|w| w.walk_id == walk.walk_id)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!(deployment = %walk.deployment, camera = %walk.camera, "blue-list walk recorded");
    Redirect::to("/supervisor").into_response()
}

/// The walk the form describes, if it names a deployment the person may see, one of its cameras,
/// a volunteer, and a start not in the future.
async fn checked(
    console: &Console,
    session: &Session,
    form: &WalkForm,
) -> Result<BlueWalk, Response> {
    let bad = |why: &str| html::refusal(StatusCode::BAD_REQUEST, why);
    let deployment = console
        .lifecycle
        .store()
        .get(form.deployment.trim())
        .await
        .ok()
        .flatten()
        .filter(|d| session.may_see(&d.id))
        .ok_or_else(|| html::refusal(StatusCode::NOT_FOUND, "No such deployment."))?;
    let camera = form.camera.trim();
    if !deployment.cameras.iter().any(|c| c == camera) {
        return Err(bad("That camera is not one of the deployment's cameras."));
    }
    let reference = form.reference.trim();
    let label = form.label.trim();
    let walker = if !reference.is_empty() {
        let list = console
            .lifecycle
            .store()
            .watchlist(&deployment.id)
            .await
            .ok()
            .flatten();
        let on_blue_list = list.is_some_and(|l| {
            l.entries
                .iter()
                .any(|e| e.reference == reference && e.category == WatchlistCategory::Blue)
        });
        if !on_blue_list {
            return Err(bad(
                "That reference is not on the deployment's blue watch list.",
            ));
        }
        Walker::Entry(reference.into())
    } else if !label.is_empty() && label.chars().count() <= 64 {
        Walker::Label(label.into())
    } else {
        return Err(bad(
            "Name the volunteer: their blue-list reference, or a label of up to 64 characters.",
        ));
    };
    let now = Timestamp::now();
    let started_at = match form.started_at.trim() {
        "" => now,
        given => lfr_watchlist::time::parse_utc(given)
            .map_err(|_| bad("Give the start as YYYY-MM-DDTHH:MM:SSZ (UTC), or leave it empty."))?,
    };
    if now.until(started_at) > FUTURE_SLACK {
        return Err(bad("A walk cannot start in the future."));
    }
    Ok(BlueWalk {
        walk_id: crate::auth::sessions::random_token()[..16].to_string(),
        deployment: deployment.id.clone(),
        camera: camera.into(),
        walker,
        started_at,
        recorded_by: session.account.clone(),
        recorded_at: now,
    })
}

/// The walks of one deployment, for the supervisor's blue section.
pub fn table(deployment: &str, rates: &Rates) -> String {
    let rows: String = rates.walks.iter().map(row).collect();
    let t = rates.misses;
    let rate = t
        .miss_rate()
        .map(|r| format!("{:.1}%", r * 100.0))
        .unwrap_or_else(|| "-".into());
    format!(
        r#"<h3>Walk tests: {id}</h3>
<p class="miss-rate" data-deployment="{id}">{walks} walks: {alerted} alerted, {missed} missed, {waiting} waiting. Miss rate: <strong>{rate}</strong></p>
<table class="walks"><thead><tr><th>Started</th><th>Camera</th><th>Phase</th><th>Volunteer</th><th>Recorded by</th><th>Result</th></tr></thead>
<tbody>{rows}</tbody></table>"#,
        id = html::escape(deployment),
        walks = t.walks,
        alerted = t.alerted,
        missed = t.missed,
        waiting = t.waiting,
    )
}

fn row(w: &ScoredWalk) -> String {
    let walker = match &w.walk.walker {
        Walker::Entry(r) => format!("blue entry {r}"),
        Walker::Label(l) => l.clone(),
    };
    let result = match &w.result {
        WalkResult::Alerted { alert_id, after } => {
            format!("alerted after {}s ({alert_id})", after.as_secs())
        }
        WalkResult::Waiting => "waiting".into(),
        WalkResult::Missed => "MISSED".into(),
    };
    format!(
        "<tr><td>{at}</td><td>{camera}</td><td>{phase}</td><td>{walker}</td><td>{by}</td><td>{result}</td></tr>",
        at = html::escape(&lfr_watchlist::time::format_utc(w.walk.started_at)),
        camera = html::escape(&w.walk.camera),
        phase = w.phase.as_str(),
        walker = html::escape(&walker),
        by = html::escape(&w.walk.recorded_by),
        result = html::escape(&result),
    )
}
