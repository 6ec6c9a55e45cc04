//! Trace export settings. Export itself is switched and pointed by the standard `OTEL_*`
//! environment variables (see docs/tracing.md); only what those do not cover is here.

use serde::{Deserialize, Serialize};

/// Tracing options beyond the `OTEL_*` variables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Put user and session ids on spans (`user.id`, `session.id`). Off: ids identify
    /// people, and OpenTelemetry marks `session.id` opt-in.
    pub record_ids: bool,
}
