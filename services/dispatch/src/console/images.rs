//! The three images of an alert, for the pages' `<img>` tags: the probe chip, the context crop and
//! the watch-list image the match was against, all carried in the alert itself, sealed under the
//! deployment's data key. They are opened here, in memory, for the one response; once the
//! deployment's key has been destroyed (crypto-shredding) they are gone for good.
//!
//! Who may fetch them follows who may see the alert: operators (not blue-list alerts), officers
//! (confirmed alerts of live deployments only), supervisors (all, blue included). Auditors see
//! records, not faces.
//!
//! **Every fetch is on the record, or refused.** An image is the moment a face is actually shown,
//! so each fetch (not each person) is recorded on AUDIT once the image has opened and before its
//! bytes are sent: a consultation naming the account, role, image and `alert/<id>`; for an
//! officer, a disclosure to them. If the event cannot be stored the image is refused (503) and
//! the opened bytes are dropped.

use super::{html, visible, Console};
use crate::auth::{CurrentSession, Role};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use lfr_schemas::AuditAction;
use lfr_vault::{AlertImage, VaultError};

pub async fn image(
    State(console): State<Console>,
    session: CurrentSession,
    Path((id, image)): Path<(String, String)>,
) -> Response {
    let not_found = || html::refusal(StatusCode::NOT_FOUND, "No such image.");
    let Ok(entry) = visible(&console, &session, &id) else {
        return not_found();
    };
    let allowed = match session.role {
        Role::Operator => !entry.is_blue(),
        Role::Officer => {
            entry.is_confirmed()
                && console
                    .live_deployments()
                    .await
                    .contains(&entry.alert.deployment)
        }
        Role::Supervisor => true,
        Role::Auditor => false,
    };
    if !allowed {
        return not_found();
    }
    let alert = &entry.alert;
    let (which, sealed) = match image.as_str() {
        "probe.jpg" => (AlertImage::Probe, &alert.probe_jpeg),
        "context.jpg" => (AlertImage::Context, &alert.context_jpeg),
        "reference.jpg" => (AlertImage::Reference, &alert.reference_jpeg),
        _ => return not_found(),
    };
    // Sealed under another deployment's key: not this alert's image, whatever it is.
    if sealed.key != alert.deployment {
        tracing::error!(alert = %id, "alert image sealed under another deployment's key");
        return not_found();
    }
    let aad = which.aad(&alert.deployment, &alert.alert_id);
    let bytes = match console.vault.unseal(sealed, &aad).await {
        // The matcher found no watch-list image to copy.
        Ok(bytes) if bytes.is_empty() => return not_found(),
        Ok(bytes) => bytes,
        Err(e) if e.is_gone() => {
            return html::refusal(StatusCode::GONE, "This image has been erased.");
        }
        Err(e @ VaultError::Store(_)) => {
            tracing::warn!(alert = %id, error = %e, "alert image cannot be opened now");
            return html::refusal(StatusCode::SERVICE_UNAVAILABLE, "Image unavailable.");
        }
        Err(e) => {
            tracing::error!(alert = %id, image = which.as_str(), error = %e, "alert image does not open");
            return html::refusal(StatusCode::INTERNAL_SERVER_ERROR, "Image unavailable.");
        }
    };
    // On the record before a byte leaves: one event per fetch, or no image.
    let (action, why) = match session.role {
        Role::Officer => (
            AuditAction::Disclosure,
            format!("{image} of a confirmed alert delivered to the officer's handheld device"),
        ),
        Role::Supervisor => (
            AuditAction::Consultation,
            format!("{image} of the alert opened for oversight"),
        ),
        _ => (
            AuditAction::Consultation,
            format!("{image} of the alert shown for review"),
        ),
    };
    if let Err(e) = console.record_view(&session, &entry, action, why).await {
        drop(bytes);
        return console.unaudited("image", &id, &e);
    }
    html::secure(([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response())
}
