//! # The deployments API: the lifecycle over HTTP, for the web console
//!
//! A JSON API over [`Lifecycle`], as an axum [`Router`] that a host service mounts (dispatch
//! serves it beside the review console). Every route is one lifecycle step; the gates, the audit
//! events and the secure erasure all happen in [`Lifecycle`], exactly as for the CLI.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /api/deployments` | | every deployment |
//! | `GET /api/deployments/{id}` | | the deployment, its verification, the matchers' load reports |
//! | `POST /api/deployments` | [`CreateRequest`] | 201, the draft deployment |
//! | `PUT /api/deployments/{id}/watchlist` | tar or tar.gz of images + `manifest.toml` | the attached list and every refused entry with its reason |
//! | `PUT /api/deployments/{id}/governance` | [`Governance`] | the deployment (voids an authorisation) |
//! | `POST /api/deployments/{id}/authorise` | | the deployment |
//! | `POST /api/deployments/{id}/review` | `{"digest": "..."}` | the deployment |
//! | `POST /api/deployments/{id}/activate` | | the deployment |
//! | `POST /api/deployments/{id}/end` | | the wipe record |
//!
//! ## Who is asking
//!
//! This router does not authenticate. The host's authentication layer puts an [`Actor`] in the
//! request's extensions; a request without one is answered 401 before anything else happens. The
//! actor is who the audit events name.
//!
//! ## Errors
//!
//! Every error is JSON, `{"error": "..."}`: 401 no actor, 403 the actor may not take the step
//! (enrolled the list it would authorise or review, lacks the rank, or is the shared token
//! authorising, reviewing or activating), 404 unknown deployment, 409 a gate
//! refused (or the id exists), 400 invalid input (unparsable JSON, a malformed time, deployment,
//! manifest or archive), 413 body too large, 415 wrong content type, 422 JSON of the wrong shape or
//! nothing in the list could be enrolled (with `"refused"`), 500 anything else. A 500 is logged with the deployment id; its answer says
//! only "internal error".
//!
//! Nothing here logs face data or subject references: logs name deployments, actors and counts.

use crate::deployment::{GateError, Governance, NewDeployment, ThresholdOverride};
use crate::lifecycle::{Actor, Error, Lifecycle, RefusedEntry};
use crate::time::parse_utc;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// Largest watch-list archive accepted.
pub const ARCHIVE_BODY_LIMIT: usize = 256 * 1024 * 1024;
/// Largest body of every other route.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// Content types a watch-list archive may be sent as (gzip is recognised by content either way).
pub const ARCHIVE_CONTENT_TYPES: &[&str] = &[
    "application/x-tar",
    "application/tar",
    "application/gzip",
    "application/x-gzip",
    "application/x-gtar",
];

/// The API's routes over `lifecycle`. Mount behind an authentication layer that inserts an
/// [`Actor`] into the request extensions.
pub fn router(lifecycle: Lifecycle) -> Router {
    Router::new()
        .route("/api/deployments", get(list).post(create))
        .route("/api/deployments/{id}", get(show))
        .route(
            "/api/deployments/{id}/watchlist",
            put(enrol).layer(DefaultBodyLimit::max(ARCHIVE_BODY_LIMIT)),
        )
        .route("/api/deployments/{id}/governance", put(govern))
        .route("/api/deployments/{id}/authorise", post(authorise))
        .route("/api/deployments/{id}/review", post(review))
        .route("/api/deployments/{id}/activate", post(activate))
        .route("/api/deployments/{id}/end", post(end))
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .with_state(lifecycle)
}

/// `POST /api/deployments`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub id: String,
    pub name: String,
    pub location: String,
    pub cameras: Vec<String>,
    /// UTC, as `2026-11-28T12:00:00Z`.
    pub start: String,
    pub end: String,
    pub purpose: String,
    /// Similarity at or above which a probe matches; the embedder's calibrated 1-in-1,000 point
    /// when absent.
    #[serde(default)]
    pub threshold: Option<f32>,
    /// Why a threshold below the calibrated point is used: required for one, recorded with the
    /// deployment and on the audit trail.
    #[serde(default)]
    pub threshold_override: Option<String>,
    /// Command structure, objectives, intelligence case, signage (or later, with `PUT
    /// .../governance`): required before authorisation.
    #[serde(default)]
    pub governance: Option<Governance>,
    /// Thresholds for some categories (`{"risk": 0.7}`), where they differ from `threshold`.
    #[serde(default)]
    pub category_thresholds: std::collections::BTreeMap<String, f32>,
    /// Minutes of set-up window before the start and after the end (blue-list walks); none when
    /// absent.
    #[serde(default)]
    pub setup_minutes: u64,
}

/// `POST /api/deployments/{id}/review`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// The digest of the list the reviewer examined.
    pub digest: String,
}

/// An error answer: a status and `{"error": ..., "refused": [...]?}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    refused: Option<Vec<RefusedEntry>>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            refused: None,
        }
    }

    /// The answer to a lifecycle error on deployment `id`; internal errors are logged here.
    fn lifecycle(id: &str, e: Error) -> ApiError {
        let status = match &e {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Gate(GateError::Forbidden(_)) => StatusCode::FORBIDDEN,
            Error::Exists(_) | Error::Gate(_) => StatusCode::CONFLICT,
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::NothingEnrolled { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Internal(internal) => {
                tracing::error!(deployment = %id, error = format!("{internal:#}"), "deployment API request failed");
                return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
            }
        };
        let message = e.to_string();
        let refused = match e {
            Error::NothingEnrolled { refused } => Some(refused),
            _ => None,
        };
        ApiError {
            status,
            message,
            refused,
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::new(r.status(), r.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        ApiError::new(r.status(), r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.message });
        if let Some(refused) = self.refused {
            body["refused"] = serde_json::json!(refused);
        }
        (self.status, Json(body)).into_response()
    }
}

/// The acting person, from the request extensions (put there by the host's authentication).
impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Actor, ApiError> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "authentication required"))
    }
}

type Answer<T> = Result<Json<T>, ApiError>;

async fn list(
    _actor: Actor,
    State(lifecycle): State<Lifecycle>,
) -> Answer<Vec<crate::deployment::Deployment>> {
    let all = lifecycle
        .list()
        .await
        .map_err(|e| ApiError::lifecycle("*", e))?;
    Ok(Json(all))
}

async fn show(
    _actor: Actor,
    State(lifecycle): State<Lifecycle>,
    Path(id): Path<String>,
) -> Answer<crate::lifecycle::DeploymentView> {
    let view = lifecycle
        .show(&id)
        .await
        .map_err(|e| ApiError::lifecycle(&id, e))?;
    Ok(Json(view))
}

async fn create(
    actor: Actor,
    State(lifecycle): State<Lifecycle>,
    body: Result<Json<CreateRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<crate::deployment::Deployment>), ApiError> {
    let Json(req) = body?;
    let time =
        |s: &str| parse_utc(s).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()));
    let default_threshold = match req.threshold {
        Some(t) => t,
        None => lifecycle
            .calibrated_threshold()
            .map_err(|e| ApiError::lifecycle(&req.id, e))?,
    };
    let new = NewDeployment {
        starts_at: time(&req.start)?,
        ends_at: time(&req.end)?,
        id: req.id,
        name: req.name,
        location: req.location,
        cameras: req.cameras,
        purpose: req.purpose,
        default_threshold,
        threshold_override: req.threshold_override.map(|reason| ThresholdOverride {
            calibrated: 0.0,
            reason,
            by: String::new(),
        }),
        governance: req.governance,
        thresholds: crate::deployment::category_thresholds(req.category_thresholds)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?,
        setup_window_secs: req.setup_minutes.saturating_mul(60),
    };
    let id = new.id.clone();
    let deployment = lifecycle
        .create(new, &actor)
        .await
        .map_err(|e| ApiError::lifecycle(&id, e))?;
    tracing::info!(deployment = %id, actor = %actor.id, "deployment created");
    Ok((StatusCode::CREATED, Json(deployment)))
}

async fn enrol(
    actor: Actor,
    State(lifecycle): State<Lifecycle>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<bytes::Bytes, BytesRejection>,
) -> Answer<crate::lifecycle::Enrolled> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if !content_type.is_some_and(|t| ARCHIVE_CONTENT_TYPES.contains(&t.as_str())) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the watch list as a tar archive (Content-Type application/x-tar or application/gzip)",
        ));
    }
    let archive = body?;
    let enrolled = lifecycle
        .enrol_archive(&id, archive, &actor)
        .await
        .map_err(|e| ApiError::lifecycle(&id, e))?;
    tracing::info!(
        deployment = %id,
        actor = %actor.id,
        entries = enrolled.attached.entries,
        refused = enrolled.refused.len(),
        "watch list enrolled"
    );
    Ok(Json(enrolled))
}

async fn govern(
    actor: Actor,
    State(lifecycle): State<Lifecycle>,
    Path(id): Path<String>,
    body: Result<Json<Governance>, JsonRejection>,
) -> Answer<crate::deployment::Deployment> {
    let Json(governance) = body?;
    let deployment = lifecycle
        .govern(&id, governance, &actor)
        .await
        .map_err(|e| ApiError::lifecycle(&id, e))?;
    tracing::info!(deployment = %id, actor = %actor.id, "governance recorded");
    Ok(Json(deployment))
}

async fn authorise(
    actor: Actor,
    State(lifecycle): State<Lifecycle>,
    Path(id): Path<String>,
) -> Answer<crate::deployment::Deployment> {
    let deployment = lifecycle
        .authorise(&id, &actor)
        .await
        .map_err(|e| ApiError::lifecycle(&id, e))?;
    tracing::info!(deployment = %id, actor = %actor.id, "deployment authorised");
    Ok(Json(deployment))
}

async fn review(
    actor: Actor,
    State(lifecycle): State<Lifecycle>,
    Path(id): Path<String>,
    body: Result<Json<ReviewRequest>, JsonRejection>,
) -> Answer<crate::deployment::Deployment> {
    let Json(req) = body?;
    let deployment = lifecycle
        .review(&id, &actor, &req.digest)
        .await
        .map_err(|e| ApiError::lifecycle(&id, e))?;
    tracing::info!(deployment = %id, actor = %actor.id, "watch list reviewed");
    Ok(Json(deployment))
}

async fn activate(
    actor: Actor,
    State(lifecycle): State<Lifecycle>,
    Path(id): Path<String>,
) -> Answer<crate::deployment::Deployment> {
    let deployment = lifecycle
        .activate(&id, &actor)
        .await
        .map_err(|e| ApiError::lifecycle(&id, e))?;
    tracing::info!(deployment = %id, actor = %actor.id, "deployment activated");
    Ok(Json(deployment))
}

async fn end(
    actor: Actor,
    State(lifecycle): State<Lifecycle>,
    Path(id): Path<String>,
) -> Answer<crate::store::WipeRecord> {
    let wiped = lifecycle
        .end(&id, &actor)
        .await
        .map_err(|e| ApiError::lifecycle(&id, e))?;
    tracing::info!(
        deployment = %id,
        actor = %actor.id,
        messages_erased = wiped.messages_erased,
        "deployment ended, watch list erased"
    );
    Ok(Json(wiped))
}
