//! Logging setup: JSON lines in production, readable text in development. Nothing in the
//! service logs tokens, cookie values, secrets or passwords; request logs carry method,
//! path (without query) and status only.

use tracing_subscriber::EnvFilter;

use crate::config::Settings;

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(s: &Settings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&s.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = s.json_logs();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
