//! The three images of an alert, for the pages' `<img>` tags: the probe chip and the context crop
//! (carried in the alert itself) and the watch-list image (from the deployment's store; gone once
//! the deployment has ended and its list was wiped).
//!
//! Who may fetch them follows who may see the alert: operators (not blue-list alerts), officers
//! (confirmed alerts only), supervisors (all, blue included). Auditors see records, not faces.

use super::{html, visible, Console};
use crate::auth::{CurrentSession, Role};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

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
        Role::Officer => entry.is_confirmed(),
        Role::Supervisor => true,
        Role::Auditor => false,
    };
    if !allowed {
        return not_found();
    }
    let bytes = match image.as_str() {
        "probe.jpg" => entry.alert.probe_jpeg.0.clone(),
        "context.jpg" => entry.alert.context_jpeg.0.clone(),
        "reference.jpg" => {
            let stored = console
                .lifecycle
                .store()
                .image(&entry.alert.deployment, &entry.alert.reference_image_sha256)
                .await;
            match stored {
                Ok(Some(bytes)) => bytes,
                Ok(None) => return not_found(),
                Err(e) => {
                    tracing::warn!(alert = %id, error = %e, "watch-list image unavailable");
                    return html::refusal(StatusCode::SERVICE_UNAVAILABLE, "Image unavailable.");
                }
            }
        }
        _ => return not_found(),
    };
    html::secure(([(header::CONTENT_TYPE, "image/jpeg")], bytes).into_response())
}
