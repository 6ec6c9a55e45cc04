//! The schema at start: migrations when asked, and a column per additional session field.

use sqlx::{Executor, PgPool, SqlitePool};

use super::ExtraColumn;
use crate::config::FieldType;
use crate::store::StoreError;

/// PostgreSQL: migrations (and the revocation triggers) when asked, then the additional
/// columns.
pub(super) async fn prepare_postgres(
    pool: &PgPool,
    extras: &[ExtraColumn],
    migrate: bool,
) -> Result<(), StoreError> {
    if migrate {
        sqlx::migrate!("migrations/postgres")
            .run(pool)
            .await
            .map_err(|e| StoreError::Backend(e.into()))?;
        // Migrations run once; the revocation triggers must also survive someone
        // dropping or rewriting them later: restored (in one transaction) when unsound.
        if !crate::store::feed::trigger_state(pool).await?.0 {
            tracing::warn!("the session revocation triggers were missing or altered: restored");
            pool.execute(crate::store::feed::REVOCATION_TRIGGERS)
                .await?;
        }
    }
    if !extras.is_empty() {
        let existing: Vec<String> = sqlx::query_scalar(
            r#"select attname::text from pg_attribute
               where attrelid = '"session"'::regclass and attnum > 0 and not attisdropped"#,
        )
        .fetch_all(pool)
        .await?;
        for c in missing_columns(extras, &existing, migrate)? {
            let ty = match c.kind {
                FieldType::String => "text",
                FieldType::Number => "bigint",
                FieldType::Boolean => "boolean",
            };
            // "if not exists": replicas starting together may race to add it.
            let stmt = format!(
                r#"alter table "session" add column if not exists "{}" {ty}"#,
                c.name
            );
            pool.execute(stmt.as_str()).await?;
        }
    }
    Ok(())
}

/// SQLite: migrations when asked, then the additional columns.
pub(super) async fn prepare_sqlite(
    pool: &SqlitePool,
    extras: &[ExtraColumn],
    migrate: bool,
) -> Result<(), StoreError> {
    if migrate {
        sqlx::migrate!("migrations/sqlite")
            .run(pool)
            .await
            .map_err(|e| StoreError::Backend(e.into()))?;
    }
    if !extras.is_empty() {
        let existing: Vec<String> =
            sqlx::query_scalar(r#"select "name" from pragma_table_info('session')"#)
                .fetch_all(pool)
                .await?;
        for c in missing_columns(extras, &existing, migrate)? {
            let ty = match c.kind {
                FieldType::String => "text",
                FieldType::Number | FieldType::Boolean => "integer",
            };
            let stmt = format!(r#"alter table "session" add column "{}" {ty}"#, c.name);
            pool.execute(stmt.as_str()).await?;
        }
    }
    Ok(())
}

/// The additional fields whose session column is missing, to be added when migrations
/// run. Without migrations a missing column stops the start (every sign-in would fail on
/// it), and nothing is altered: the database user may well have no right to.
fn missing_columns<'a>(
    extras: &'a [ExtraColumn],
    existing: &[String],
    migrate: bool,
) -> Result<Vec<&'a ExtraColumn>, StoreError> {
    let missing: Vec<&ExtraColumn> = extras
        .iter()
        .filter(|c| !existing.contains(&c.name))
        .collect();
    if missing.is_empty() || migrate {
        return Ok(missing);
    }
    let names: Vec<String> = missing.iter().map(|c| format!("\"{}\"", c.name)).collect();
    Err(StoreError::Backend(
        format!(
            "the session table has no column {} for session.additional_fields, and \
             database.migrate_on_start is off: run `sessiond migrate` (or turn it on)",
            names.join(", ")
        )
        .into(),
    ))
}
