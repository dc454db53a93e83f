//! Subject names. One token per camera or deployment lets a stage consume everything
//! (`lfr.frames.>`) while an operator can still watch one camera (`lfr.frames.gate-3`).
//!
//! | subject                            | stream     | message          |
//! |------------------------------------|------------|------------------|
//! | `lfr.frames.<camera>`              | FRAMES     | [`Frame`]        |
//! | `lfr.faces.<camera>`               | FACES      | [`DetectedFace`] |
//! | `lfr.embeddings.<camera>`          | EMBEDDINGS | [`Embedding`]    |
//! | `lfr.alerts.<deployment>.candidate`| ALERTS     | [`CandidateAlert`] |
//! | `lfr.alerts.<deployment>.blue`     | ALERTS     | [`CandidateAlert`] (blue watch list) |
//! | `lfr.alerts.<deployment>.decision` | ALERTS     | [`AlertDecision`] |
//! | `lfr.alerts.<deployment>.outcome`  | ALERTS     | [`AlertOutcome`] |
//! | `lfr.alerts.<deployment>.release`  | ALERTS     | [`HoldReleased`] (arrest hold) |
//! | `lfr.alerts.<deployment>.hold`     | ALERTS     | [`HoldPlaced`] |
//! | `lfr.alerts.<deployment>.lift`     | ALERTS     | [`HoldLifted`] |
//! | `lfr.alerts.<deployment>.erased`   | ALERTS     | [`AlertsErased`] |
//! | `lfr.alerts.<deployment>.walk`     | ALERTS     | [`BlueWalk`] (blue-list walk test) |
//! | `lfr.audit.<deployment or system>` | AUDIT      | [`AuditEvent`]   |
//! | `lfr.watchlist.<deployment>.list`  | WATCHLISTS | the list (templates) |
//! | `lfr.watchlist.<deployment>.image.<sha256>` | WATCHLISTS | a reference image |
//! | `lfr.purge.run`                    | (request)  | run a purge pass now |
//! | `lfr.context.<replica>`            | (request)  | [`ContextRequest`] to one detect replica, [`ContextReply`] back |
//!
//! [`Frame`]: crate::Frame
//! [`DetectedFace`]: crate::DetectedFace
//! [`Embedding`]: crate::Embedding
//! [`CandidateAlert`]: crate::CandidateAlert
//! [`AlertDecision`]: crate::AlertDecision
//! [`AlertOutcome`]: crate::AlertOutcome
//! [`AuditEvent`]: crate::AuditEvent
//! [`HoldReleased`]: crate::HoldReleased
//! [`HoldPlaced`]: crate::HoldPlaced
//! [`HoldLifted`]: crate::HoldLifted
//! [`AlertsErased`]: crate::AlertsErased
//! [`BlueWalk`]: crate::BlueWalk
//! [`ContextRequest`]: crate::ContextRequest
//! [`ContextReply`]: crate::ContextReply

pub const FRAMES_ALL: &str = "lfr.frames.>";
pub const FACES_ALL: &str = "lfr.faces.>";
pub const EMBEDDINGS_ALL: &str = "lfr.embeddings.>";
pub const ALERTS_ALL: &str = "lfr.alerts.>";
pub const AUDIT_ALL: &str = "lfr.audit.>";
pub const WATCHLISTS_ALL: &str = "lfr.watchlist.>";
/// Requests for a purge pass now (answered by the purge service).
pub const PURGE_RUN: &str = "lfr.purge.run";

/// Context-crop requests, to any detect replica (each answers on its own [`context`] subject).
pub const CONTEXT_ALL: &str = "lfr.context.*";

/// Where one detect replica answers for the faces it found (`replica`: its own random token).
pub fn context(replica: &str) -> String {
    format!("lfr.context.{replica}")
}

/// Audit subject token for events that belong to no deployment (logins, configuration).
pub const SYSTEM: &str = "system";

pub fn frames(camera: &str) -> String {
    format!("lfr.frames.{camera}")
}

pub fn faces(camera: &str) -> String {
    format!("lfr.faces.{camera}")
}

pub fn embeddings(camera: &str) -> String {
    format!("lfr.embeddings.{camera}")
}

pub fn alert_candidates(deployment: &str) -> String {
    format!("lfr.alerts.{deployment}.candidate")
}

/// Alerts on staff volunteers of the blue watch list: for the technical team, never officers.
pub fn blue_alerts(deployment: &str) -> String {
    format!("lfr.alerts.{deployment}.blue")
}

pub fn alert_decisions(deployment: &str) -> String {
    format!("lfr.alerts.{deployment}.decision")
}

pub fn alert_outcomes(deployment: &str) -> String {
    format!("lfr.alerts.{deployment}.outcome")
}

pub fn hold_releases(deployment: &str) -> String {
    format!("lfr.alerts.{deployment}.release")
}

/// Holds placed on an alert or a whole deployment (complaint, access request, investigation).
pub fn holds_placed(deployment: &str) -> String {
    format!("lfr.alerts.{deployment}.hold")
}

/// Releases of the holds placed on [`holds_placed`].
pub fn holds_lifted(deployment: &str) -> String {
    format!("lfr.alerts.{deployment}.lift")
}

pub fn alerts_erased(deployment: &str) -> String {
    format!("lfr.alerts.{deployment}.erased")
}

/// Blue-list walk tests recorded by the technical team (staff volunteers walking past a camera).
pub fn blue_walks(deployment: &str) -> String {
    format!("lfr.alerts.{deployment}.walk")
}

pub fn audit(deployment: Option<&str>) -> String {
    format!("lfr.audit.{}", deployment.unwrap_or(SYSTEM))
}

/// Camera and deployment identifiers become subject tokens, so they are restricted to characters
/// that cannot change a subject's meaning (no `.`, `*`, `>` or whitespace).
pub fn validate_token(what: &str, id: &str) -> Result<(), InvalidToken> {
    let ok_len = (1..=64).contains(&id.len());
    let ok_chars = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(InvalidToken {
            what: what.to_string(),
            id: id.to_string(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid {what} id {id:?}: use 1-64 characters from A-Z, a-z, 0-9, '-' and '_'")]
pub struct InvalidToken {
    pub what: String,
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_that_would_change_a_subject_are_refused() {
        assert!(validate_token("camera", "gate-3_north").is_ok());
        for bad in ["", "a.b", "a*", ">", "a b", &"x".repeat(65)] {
            assert!(validate_token("camera", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn per_camera_subjects_fall_under_the_stream_wildcards() {
        assert!(frames("c1").starts_with(FRAMES_ALL.trim_end_matches('>')));
        assert!(alert_outcomes("d1").starts_with(ALERTS_ALL.trim_end_matches('>')));
        assert_eq!(audit(None), "lfr.audit.system");
    }
}
