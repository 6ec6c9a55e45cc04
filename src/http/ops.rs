//! Operational endpoints outside the API: `/healthz` (the process answers) and `/readyz`
//! (its storage answers; 503 otherwise).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::http::AppState;

/// Liveness: always 200 while the process serves.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: 200 when the database answers, else 503 with the failing check.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.sessions.ping().await {
        Ok(()) => Json(json!({ "status": "ok", "checks": { "database": "ok" } })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "checks": { "database": "unavailable" } })),
            )
                .into_response()
        }
    }
}
