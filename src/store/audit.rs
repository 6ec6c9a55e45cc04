//! The audit trail's retention: a loop on every replica that deletes events older than
//! `session.audit.keep_days`, delivered to the webhooks or not (an event that old is past
//! its use); with no trail kept (webhooks alone), events go once the webhooks have them.
//! Replicas purging together delete the same rows; that is harmless.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;

use super::outbox::Outbox;
use crate::clock::Clock;

/// How often the purge runs (and once at start).
pub const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Purges events older than `keep_days` every [`PURGE_EVERY`], for as long as the
/// process runs (a purge cut short by shutdown is simply done again by the next start).
pub fn spawn_purge(outbox: Arc<dyn Outbox>, keep_days: u64, clock: Arc<dyn Clock>) {
    let keep =
        TimeDelta::try_days(i64::try_from(keep_days).unwrap_or(i64::MAX)).unwrap_or(TimeDelta::MAX);
    tokio::spawn(async move {
        loop {
            let before = clock.now().checked_sub_signed(keep);
            if let Some(before) = before {
                match outbox.purge(before, keep_days == 0).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "audit trail: old events purged"),
                    Err(e) => tracing::warn!(error = %e, "audit trail: purge failed"),
                }
            }
            tokio::time::sleep(PURGE_EVERY).await;
        }
    });
}
