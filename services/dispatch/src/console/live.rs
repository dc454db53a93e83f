//! `/events`: Server-Sent Events telling a page that something it shows has changed.
//!
//! An event carries only its kind (`raised`, `decided`, `outcome`, `escalated`), never an alert's
//! content: the page fetches its fragment again through the normal, access-checked route. Each
//! person is told only of changes in deployments they may see, and officers only of decisions and
//! outcomes.
//!
//! A stream lives no longer than the right to it. Every [`RECHECK`] it loads its session again,
//! as the next request would, and ends when that is refused (logged out, expired, account
//! disabled, password changed) or when the role or assigned deployments have changed: the page's
//! browser reconnects and is then told only what the session may see now, or is sent to log in.

use super::Console;
use crate::auth::{Auth, CurrentSession, Role, Session, Sessions};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream};
use lfr_alerts::book::Change;
use lfr_schemas::{Decision, Timestamp};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Interval, MissedTickBehavior};

/// How often an open stream checks that its session still stands.
pub const RECHECK: Duration = Duration::from_secs(2);

/// What `/events` needs: the alerts' changes, and the sessions to re-check.
#[derive(Clone)]
pub struct Live {
    pub console: Console,
    pub auth: Auth,
}

/// One open stream's state between events.
struct Open {
    changes: broadcast::Receiver<Change>,
    session: Session,
    token: Option<String>,
    sessions: Sessions,
    recheck: Interval,
}

impl Open {
    /// Whether the session still stands as it was when the stream opened.
    async fn still_stands(&self) -> bool {
        if self.session.is_expired_at(Timestamp::now()) {
            return false;
        }
        let Some(token) = &self.token else {
            return false;
        };
        match self.sessions.get(token).await {
            Ok(Some(now)) => {
                now.role == self.session.role && now.deployments == self.session.deployments
            }
            Ok(None) => false,
            // The store is unreachable for a moment: keep the stream, check again next time.
            Err(e) => {
                tracing::debug!(error = %e, "cannot re-check a live stream's session");
                true
            }
        }
    }
}

pub async fn events(
    State(live): State<Live>,
    CurrentSession(session): CurrentSession,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // An interval's first tick is at once: skip it, the guard has just checked the session.
    recheck.reset();
    let state = Open {
        changes: live.console.book.subscribe(),
        session,
        token: live.auth.session_token(&headers),
        sessions: live.auth.sessions.clone(),
        recheck,
    };
    let stream = stream::unfold(state, |mut s| async move {
        loop {
            let kind = tokio::select! {
                changed = s.changes.recv() => match changed {
                    Ok(change) if concerns(&s.session, &change) => change.kind(),
                    Ok(_) => continue,
                    // Missed some: tell the page to catch up.
                    Err(RecvError::Lagged(_)) => "lagged",
                    Err(RecvError::Closed) => return None,
                },
                _ = s.recheck.tick() => {
                    if s.still_stands().await {
                        continue;
                    }
                    return None;
                }
            };
            if s.session.is_expired_at(Timestamp::now()) {
                return None;
            }
            let event = Event::default().event("change").data(kind);
            return Some((Ok(event), s));
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Whether `session`'s pages show something `change` affects.
fn concerns(session: &Session, change: &Change) -> bool {
    if !session.may_see(change.deployment()) {
        return false;
    }
    match session.role {
        Role::Operator | Role::Supervisor => true,
        Role::Officer => matches!(
            change,
            Change::Decided {
                decision: Decision::Confirmed,
                ..
            } | Change::Outcome { .. }
                | Change::Erased { .. }
        ),
        Role::Auditor => false,
    }
}
