//! The event outbox (`sessiond_event`) over SQL; the table and its triggers are in
//! `events/`. PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so replicas claiming at once
//! take disjoint rows; SQLite has one writer at a time, so its single `update … returning`
//! is the claim. Every statement is short: no transaction is held while delivering.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Row, Sqlite};

use super::SqlStore;
use crate::store::outbox::{AuditEntry, Claimed, NewEvent, Outbox, Settled};
use crate::store::StoreError;

/// The channel the triggers (and [`Outbox::record`]) notify on PostgreSQL.
pub const PG_EVENT_CHANNEL: &str = "sessiond_event";

/// A fresh event id: `evt_` and 32 hex digits.
fn event_id() -> String {
    format!("evt_{}", uuid::Uuid::new_v4().simple())
}

/// `delivered` as stored: endpoint ids (which hold no comma) joined by commas.
fn join_delivered(ids: &[String]) -> String {
    ids.join(",")
}

fn split_delivered(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A time as the SQLite triggers write them (`strftime('%Y-%m-%dT%H:%M:%f+00:00')`): fixed
/// width, so text order is time order.
fn sqlite_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string()
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Backend(Box::new(e)))
}

fn attempts(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Times as PostgreSQL binds and reads them.
fn pg_time(t: DateTime<Utc>) -> DateTime<Utc> {
    t
}

fn pg_read_time(r: &sqlx::postgres::PgRow, i: usize) -> Result<DateTime<Utc>, StoreError> {
    Ok(r.try_get(i)?)
}

fn sqlite_read_time(r: &sqlx::sqlite::SqliteRow, i: usize) -> Result<DateTime<Utc>, StoreError> {
    let text: String = r.try_get(i)?;
    parse_time(&text)
}

/// The outbox over one backend: `$time` binds a time, `$read_time` reads one, `$data` is
/// how `data` is selected (as text), `$json` how an inserted one is written, `$lock` what a
/// claim's subquery adds so that concurrent claimers skip each other's rows, `$all` the
/// "no limit" an `offset` needs.
macro_rules! outbox {
    ($db:ty, $time:path, $read_time:path, $data:literal, $json:literal, $lock:literal, $all:literal) => {
        #[async_trait]
        impl Outbox for SqlStore<$db> {
            async fn record(&self, events: &[NewEvent], now: DateTime<Utc>) -> Result<(), StoreError> {
                if events.is_empty() {
                    return Ok(());
                }
                let sql = format!(
                    r#"insert into "sessiond_event" ("eventId", "type", "occurredAt", "userId", "sessionId", "data", "nextAt")
                       values ($1, $2, $3, $4, $5, {}, $3)"#,
                    $json
                );
                let mut tx = self.pool.begin().await?;
                for e in events {
                    sqlx::query(&sql)
                        .bind(event_id())
                        .bind(e.kind)
                        .bind($time(now))
                        .bind(&e.user_id)
                        .bind(&e.session_id)
                        .bind(e.data.to_string())
                        .execute(&mut *tx)
                        .await?;
                }
                if <$db as sqlx::Database>::NAME == "PostgreSQL" {
                    sqlx::query("select pg_catalog.pg_notify($1, '')")
                        .bind(PG_EVENT_CHANNEL)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn claim(
                &self,
                n: usize,
                lease: std::time::Duration,
                now: DateTime<Utc>,
            ) -> Result<Vec<Claimed>, StoreError> {
                let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
                // One statement: PostgreSQL's row locks (skipped by other claimers) or
                // SQLite's single writer make it atomic against other replicas.
                let sql = format!(
                    r#"update "sessiond_event" set "leaseUntil" = $1, "attempts" = "attempts" + 1
                       where "id" in (select "id" from "sessiond_event"
                                      where "pending" and "nextAt" <= $2 and ("leaseUntil" is null or "leaseUntil" < $2)
                                      order by "id" limit $3 {})
                       returning "id", "eventId", "type", "occurredAt", {}, "attempts", "delivered""#,
                    $lock, $data
                );
                let rows = sqlx::query(&sql)
                    .bind($time(until))
                    .bind($time(now))
                    .bind(limit(n))
                    .fetch_all(&self.pool)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    out.push(Claimed {
                        id: r.try_get(0)?,
                        event_id: r.try_get(1)?,
                        kind: r.try_get(2)?,
                        occurred_at: $read_time(&r, 3)?,
                        data: r.try_get(4)?,
                        attempts: attempts(r.try_get(5)?),
                        delivered: split_delivered(r.try_get(6)?),
                    });
                }
                out.sort_by_key(|c| c.id);
                Ok(out)
            }

            async fn settle(&self, id: i64, outcome: &Settled) -> Result<(), StoreError> {
                let q = match outcome {
                    Settled::Done | Settled::GiveUp => sqlx::query(
                        r#"update "sessiond_event" set "pending" = false, "leaseUntil" = null where "id" = $1"#,
                    )
                    .bind(id),
                    Settled::Retry { at, delivered } => sqlx::query(
                        r#"update "sessiond_event" set "nextAt" = $2, "leaseUntil" = null, "delivered" = $3 where "id" = $1"#,
                    )
                    .bind(id)
                    .bind($time(*at))
                    .bind(join_delivered(delivered)),
                };
                q.execute(&self.pool).await?;
                Ok(())
            }

            async fn pending(&self) -> Result<u64, StoreError> {
                let n: i64 = sqlx::query_scalar(r#"select count(*) from "sessiond_event" where "pending""#)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(count(n))
            }

            async fn drop_beyond(&self, cap: u64) -> Result<u64, StoreError> {
                let sql = format!(
                    r#"update "sessiond_event" set "pending" = false, "leaseUntil" = null
                       where "id" in (select "id" from "sessiond_event" where "pending"
                                      order by "id" desc {} offset $1 {})"#,
                    $all, $lock
                );
                let r = sqlx::query(&sql)
                    .bind(i64::try_from(cap).unwrap_or(i64::MAX))
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected())
            }

            async fn purge(&self, before: DateTime<Utc>, settled_only: bool) -> Result<u64, StoreError> {
                let r = sqlx::query(
                    r#"delete from "sessiond_event" where ("pending" = false or not $2) and "occurredAt" < $1"#,
                )
                .bind($time(before))
                .bind(settled_only)
                .execute(&self.pool)
                .await?;
                Ok(r.rows_affected())
            }

            async fn history(
                &self,
                user_id: &str,
                before: Option<i64>,
                n: usize,
            ) -> Result<Vec<(i64, AuditEntry)>, StoreError> {
                let sql = format!(
                    r#"select "id", "eventId", "type", "occurredAt", "sessionId", {}
                       from "sessiond_event"
                       where "userId" = $1 and "type" in ('session.created', 'session.revoked') and "id" < $2
                       order by "id" desc limit $3"#,
                    $data
                );
                let rows = sqlx::query(&sql)
                    .bind(user_id)
                    .bind(before.unwrap_or(i64::MAX))
                    .bind(limit(n))
                    .fetch_all(&self.pool)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let data: String = r.try_get(5)?;
                    out.push((
                        r.try_get(0)?,
                        AuditEntry {
                            id: r.try_get(1)?,
                            kind: r.try_get(2)?,
                            occurred_at: $read_time(&r, 3)?,
                            session_id: r.try_get(4)?,
                            data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
                        },
                    ));
                }
                Ok(out)
            }
        }
    };
}

outbox!(
    Postgres,
    pg_time,
    pg_read_time,
    r#"cast("data" as text)"#,
    "pg_catalog.jsonb_strip_nulls(cast($6 as jsonb))",
    "for update skip locked",
    ""
);
outbox!(
    Sqlite,
    sqlite_time,
    sqlite_read_time,
    r#""data""#,
    "$6",
    "",
    "limit -1"
);
