//! `/events`: Server-Sent Events telling a page that something it shows has changed.
//!
//! An event carries only its kind (`raised`, `decided`, `outcome`, `escalated`), never an alert's
//! content: the page fetches its fragment again through the normal, access-checked route. Each
//! person is told only of changes in deployments they may see, and officers only of decisions and
//! outcomes. The stream ends when the session expires.

use super::Console;
use crate::auth::{CurrentSession, Role, Session};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream};
use lfr_alerts::book::Change;
use lfr_schemas::{Decision, Timestamp};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

pub async fn events(
    State(console): State<Console>,
    CurrentSession(session): CurrentSession,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let changes = console.book.subscribe();
    let stream = stream::unfold((changes, session), |(mut changes, session)| async move {
        loop {
            if session.is_expired_at(Timestamp::now()) {
                return None;
            }
            let kind = match changes.recv().await {
                Ok(change) if concerns(&session, &change) => change.kind(),
                Ok(_) => continue,
                // Missed some: tell the page to catch up.
                Err(RecvError::Lagged(_)) => "lagged",
                Err(RecvError::Closed) => return None,
            };
            let event = Event::default().event("change").data(kind);
            return Some((Ok(event), (changes, session)));
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
