//! # The console: review by a person before any officer acts
//!
//! Server-rendered pages, one per role, kept live over Server-Sent Events:
//!
//! | page | role | shows | actions |
//! |---|---|---|---|
//! | `/operator` | operator | pending candidate alerts of their deployments, oldest waiting flagged | confirm, reject as false alert |
//! | `/handheld` | officer | confirmed alerts of their deployments (phone-sized) | record the outcome |
//! | `/supervisor` | supervisor | paused deployments, deployments and their verification, live accuracy, blue-list walks and alerts | record a blue-list walk (`walks`); (deployments API) |
//! | `/auditor` | auditor | the latest audit events | none |
//! | `/deployments/{id}` | supervisor, auditor | the deployment's governance, authorisation and review; to supervisors its watch list's entries ([`review`]) | sign off the list |
//!
//! The state of every alert comes from the [`Book`] (ALERTS folded in order); actions append
//! decisions and outcomes to ALERTS and the book folds them back, so every replica agrees.
//!
//! Privacy rules enforced here, not left to the pages:
//! - a person sees only deployments they are assigned to (supervisors and auditors: all);
//! - officers see only **confirmed** alerts of deployments **in their live window**: once a
//!   deployment ends (or before it starts, in its set-up window) their feed and the alerts' images
//!   are closed to them; supervisors keep access, through audited views;
//! - blue-list alerts never reach an operator's queue or an officer, only the supervisor's
//!   (technical team's) view;
//! - the first time a person is shown an alert in a list it is recorded on AUDIT: a
//!   **consultation** for operators and supervisors, a **disclosure** (recipient: the officer)
//!   for the handheld feed;
//! - **every** fetch of a face image is recorded, one event per fetch, before the bytes are sent
//!   (a consultation; for an officer, a disclosure to them), naming the account, role, image and
//!   `alert/<id>`;
//! - every decision and outcome is recorded on AUDIT, with who and why, **before** it is
//!   appended to ALERTS.
//!
//! **Fail closed.** What cannot be put on the record does not happen: an image whose fetch
//! cannot be recorded is refused (503, no bytes); a decision or outcome whose event cannot be
//! stored is refused (503, nothing on ALERTS); a list stops at the first alert whose showing
//! cannot be recorded and renders, for it and the rest, only how many cannot be shown (no
//! reference, category, image or camera). Each refusal counts in
//! `lfr_dispatch_audit_refusals_total{action}` and is logged without face data.

// Handlers answer a refusal with the refusal page itself: boxing the `Err` buys nothing.
#![allow(clippy::result_large_err)]

mod handheld;
pub mod html;
mod images;
mod live;
mod operator;
mod oversight;
pub mod review;
mod walks;

use crate::auth::{guard, Auth, CurrentSession, Role};
use crate::metrics::DispatchMetrics;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use lfr_alerts::book::{Book, Entry};
use lfr_common::bus::Bus;
use lfr_schemas::{AuditAction, AuditObject};
use lfr_vault::Vault;
use lfr_watchlist::deployment::{Deployment, Phase, State as DeploymentState};
use lfr_watchlist::lifecycle::Lifecycle;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// What the console's handlers share.
#[derive(Clone)]
pub struct Console {
    pub book: Book,
    pub bus: Bus,
    pub lifecycle: Lifecycle,
    /// Opens the alerts' sealed images.
    pub vault: Vault,
    pub metrics: DispatchMetrics,
    /// (account, alert, action) already on the audit record from this replica.
    recorded: Arc<Mutex<HashSet<(String, String, AuditAction)>>>,
}

impl Console {
    pub fn new(
        book: Book,
        bus: Bus,
        lifecycle: Lifecycle,
        vault: Vault,
        metrics: DispatchMetrics,
    ) -> Console {
        Console {
            book,
            bus,
            lifecycle,
            vault,
            metrics,
            recorded: Arc::default(),
        }
    }

    /// Record that `session`'s person was shown `entry` (or part of it, said in `why`): every
    /// time, as each fetch of a face image is. `Err`: not on the record, so not to be shown.
    pub async fn record_view(
        &self,
        session: &crate::auth::Session,
        entry: &Entry,
        action: AuditAction,
        why: String,
    ) -> anyhow::Result<()> {
        let mut event = session
            .audit()
            .event(action, AuditObject::Alert(entry.alert.alert_id.clone()))
            .deployment(&entry.alert.deployment)
            .why(why);
        if action == AuditAction::Disclosure {
            event = event.recipient(&session.account);
        }
        event.record(&self.bus.jetstream).await.map(|_| ())
    }

    /// Record once per person, alert and action (from this replica) that `session`'s person
    /// was shown `entry` in a list: a consultation, or a disclosure to an officer's device.
    /// `Err`: not on the record, so the alert is not to be rendered; the next showing tries
    /// again.
    pub async fn shown(
        &self,
        session: &crate::auth::Session,
        entry: &Entry,
        action: AuditAction,
    ) -> anyhow::Result<()> {
        let key = (
            session.account.clone(),
            entry.alert.alert_id.clone(),
            action,
        );
        if self
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return Ok(());
        }
        let why = match action {
            AuditAction::Disclosure => "confirmed alert delivered to the officer's handheld device",
            _ => "alert shown for review",
        };
        self.record_view(session, entry, action, why.into()).await?;
        if action == AuditAction::Disclosure {
            self.metrics.disclosures.inc();
        }
        self.recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key);
        Ok(())
    }

    /// The answer to an `action` on `alert` refused because its audit event could not be stored:
    /// counted, logged (without face data), and a 503 page that shows nothing of the alert.
    pub fn unaudited(&self, action: &'static str, alert: &str, error: &anyhow::Error) -> Response {
        self.metrics.audit_refused(action);
        tracing::error!(action, %alert, %error, "refused: its audit event cannot be stored");
        html::refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "This cannot be done now: the audit record is unavailable, and nothing is shown or \
             decided that is not on it. Try again shortly.",
        )
    }

    /// In place of the alerts of a list that cannot be shown because viewing them could not be
    /// recorded: counted, logged, and a notice without any alert content.
    pub fn unaudited_list(&self, alerts: usize, error: &anyhow::Error) -> String {
        self.metrics.audit_refused("view");
        tracing::error!(%error, alerts, "alerts not shown: viewing them cannot be recorded on AUDIT");
        format!(
            r#"<p class="empty unaudited">{alerts} alerts cannot be shown now: the audit record is unavailable, and no alert is shown that is not on it.</p>"#
        )
    }

    /// Deployments inside their live window now: officers see the alerts of these only. Fails
    /// closed: if the records cannot be read, none.
    pub async fn live_deployments(&self) -> HashSet<String> {
        let now = lfr_schemas::Timestamp::now();
        self.deployments_where(|d| d.phase(now) == Some(Phase::Live))
            .await
    }

    /// Deployments that are over: their alerts can no longer be acted on.
    pub async fn ended_deployments(&self) -> HashSet<String> {
        self.deployments_where(|d| d.state == DeploymentState::Ended)
            .await
    }

    /// The ids of the deployments that pass `keep`; none if the records cannot be read.
    async fn deployments_where(&self, keep: impl Fn(&Deployment) -> bool) -> HashSet<String> {
        match self.lifecycle.list().await {
            Ok(all) => all.into_iter().filter(|d| keep(d)).map(|d| d.id).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read deployments; none shown as live or ended");
                HashSet::new()
            }
        }
    }
}

/// Every console page and action, behind a session. `auth` supplies login and logout.
pub fn router(console: Console, auth: Auth) -> Router {
    let pages = Router::new()
        .route("/", get(home))
        .route("/operator", get(operator::page))
        .route("/operator/queue", get(operator::queue))
        .route("/alerts/{id}/decision", post(operator::decide))
        .route("/handheld", get(handheld::page))
        .route("/handheld/feed", get(handheld::feed))
        .route("/alerts/{id}/outcome", post(handheld::record_outcome))
        .route("/alerts/{id}/{image}", get(images::image))
        .route("/supervisor", get(oversight::supervisor))
        .route("/supervisor/blue", get(oversight::blue))
        .route("/supervisor/walks", post(walks::record))
        .route("/auditor", get(oversight::auditor))
        .route("/deployments/{id}", get(review::page))
        .route("/deployments/{id}/review", post(review::sign_off))
        .route("/deployments/{id}/entries/{sha256}", get(review::image))
        .with_state(console.clone())
        .merge(
            Router::new()
                .route("/events", get(live::events))
                .with_state(live::Live {
                    console,
                    auth: auth.clone(),
                }),
        )
        .layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            guard::require_session,
        ));
    Router::new()
        .route("/static/console.css", get(css))
        .route("/static/live.js", get(js))
        .merge(crate::auth::router(auth))
        .merge(pages)
}

async fn home(session: CurrentSession) -> Redirect {
    Redirect::to(session.role.home())
}

async fn css() -> Response {
    html::secure(([(header::CONTENT_TYPE, "text/css")], html::CSS).into_response())
}

async fn js() -> Response {
    html::secure(([(header::CONTENT_TYPE, "text/javascript")], html::LIVE_JS).into_response())
}

/// `Err` with a page saying why, when the session's role is not among `roles`.
pub fn allow(session: &crate::auth::Session, roles: &[Role]) -> Result<(), Response> {
    guard::require_role(session, roles)
        .map_err(|_| html::refusal(StatusCode::FORBIDDEN, "Your role does not allow this."))
}

/// The alert `id`, if the session may see its deployment; 404 otherwise (an alert of another
/// deployment does not exist as far as this person is concerned).
pub fn visible(
    console: &Console,
    session: &crate::auth::Session,
    id: &str,
) -> Result<Entry, Response> {
    console
        .book
        .get(id)
        .filter(|e| session.may_see(&e.alert.deployment))
        .ok_or_else(|| html::refusal(StatusCode::NOT_FOUND, "No such alert."))
}
