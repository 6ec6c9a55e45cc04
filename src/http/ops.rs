//! Operational endpoints outside the API: `/healthz` (the process answers) and `/readyz`
//! (its storage answers; 503 otherwise). The detailed `/readyz` (each check by name) is
//! served where operators look — the operations listener, or the main one in development;
//! the public one says only `ok` or `unavailable`.

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

fn status(ready: bool) -> (StatusCode, &'static str) {
    if ready {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    }
}

/// Readiness with each check: 200 when every backend (database, Redis) answers, else 503
/// naming the failing one. Revocation is reported but never fails readiness: while it
/// cannot be guaranteed, cookie-cache hits are revalidated against the store instead
/// (slower, never stale).
pub async fn readyz(State(state): State<AppState>) -> Response {
    let health = state.sessions.health().await;
    let ready = health.iter().all(|(_, ok)| *ok);
    let mut checks = serde_json::Map::new();
    for (name, ok) in health {
        checks.insert(name.into(), json!(if ok { "ok" } else { "unavailable" }));
    }
    // A degraded read replica is reported, never unready: the primary serves its reads.
    for (name, word) in state.sessions.health_notes() {
        checks.insert(name.into(), json!(word));
    }
    let revocations = state.sessions.revocations();
    if revocations.listening() {
        match revocations.guarantee() {
            Ok(()) => {
                checks.insert("revocation".into(), json!("ok"));
            }
            Err(why) => {
                checks.insert("revocation".into(), json!("unverified"));
                checks.insert("revocation_detail".into(), json!(why));
            }
        }
    }
    let (code, word) = status(ready);
    if !ready {
        tracing::warn!(?checks, "readiness check failed");
    }
    (code, Json(json!({ "status": word, "checks": checks }))).into_response()
}

/// Readiness for the public listener: the status alone.
pub async fn readyz_status(State(state): State<AppState>) -> Response {
    let ready = state.sessions.health().await.iter().all(|(_, ok)| *ok);
    let (code, word) = status(ready);
    (code, Json(json!({ "status": word }))).into_response()
}
