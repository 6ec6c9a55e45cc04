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

/// Readiness: 200 when every backend (database, Redis) answers, else 503 naming the
/// failing one. The revocation listeners are reported but never fail readiness: while
/// they are down, cookie-cache hits are simply revalidated against the store.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let health = state.sessions.health().await;
    let ready = health.iter().all(|(_, ok)| *ok);
    let mut checks = serde_json::Map::new();
    for (name, ok) in health {
        checks.insert(name.into(), json!(if ok { "ok" } else { "unavailable" }));
    }
    let revocations = state.sessions.revocations();
    if revocations.enabled() {
        let up = revocations.listeners_connected();
        checks.insert(
            "revocation_listener".into(),
            json!(if up { "ok" } else { "reconnecting" }),
        );
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if !ready {
        tracing::warn!(?checks, "readiness check failed");
    }
    (
        status,
        Json(json!({ "status": if ready { "ok" } else { "unavailable" }, "checks": checks })),
    )
        .into_response()
}
