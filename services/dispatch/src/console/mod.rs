//! # The console: review by a person before any officer acts
//!
//! Server-rendered pages, one per role, kept live over Server-Sent Events:
//!
//! | page | role | shows | actions |
//! |---|---|---|---|
//! | `/operator` | operator | pending candidate alerts of their deployments, oldest waiting flagged | confirm, reject as false alert |
//! | `/handheld` | officer | confirmed alerts of their deployments (phone-sized) | record the outcome |
//! | `/supervisor` | supervisor | deployments and their verification, blue-list alerts | (deployments API) |
//! | `/auditor` | auditor | the latest audit events | none |
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
//! - the first time a person is shown an alert it is recorded on AUDIT: a **consultation** for
//!   operators and supervisors, a **disclosure** (recipient: the officer) for the handheld feed;
//! - every decision and outcome is recorded on AUDIT too, with who and why.

// Handlers answer a refusal with the refusal page itself: boxing the `Err` buys nothing.
#![allow(clippy::result_large_err)]

mod handheld;
pub mod html;
mod images;
mod live;
mod operator;
mod oversight;

use crate::auth::{guard, Auth, CurrentSession, Role};
use crate::metrics::DispatchMetrics;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use lfr_alerts::book::{Book, Entry};
use lfr_common::bus::Bus;
use lfr_schemas::AuditAction;
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

    /// Record once that `session`'s person was shown `entry` (a consultation, or a disclosure to
    /// an officer's device).
    pub async fn shown(&self, session: &crate::auth::Session, entry: &Entry, action: AuditAction) {
        let key = (
            session.account.clone(),
            entry.alert.alert_id.clone(),
            action,
        );
        if !self
            .recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone())
        {
            return;
        }
        let (why, recipients) = match action {
            AuditAction::Disclosure => (
                "confirmed alert delivered to the officer's handheld device",
                vec![session.account.clone()],
            ),
            _ => ("alert shown for review", vec![]),
        };
        let recorded = session
            .audit()
            .record(
                &self.bus.jetstream,
                action,
                Some(&entry.alert.deployment),
                format!("alert/{}", entry.alert.alert_id),
                why,
                recipients,
                None,
            )
            .await;
        match recorded {
            Ok(_) => {
                if action == AuditAction::Disclosure {
                    self.metrics.disclosures.inc();
                }
            }
            Err(e) => {
                // Not recorded: forget it, so the next showing tries again.
                self.recorded
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                tracing::error!(alert = %entry.alert.alert_id, error = %e, "audit event for a view not stored");
            }
        }
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
        .route("/auditor", get(oversight::auditor))
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
