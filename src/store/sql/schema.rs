//! The schema at start: migrations when asked, a column per additional field, and a check
//! that the `user` and `session` tables hold nothing sessiond cannot write.

use sqlx::{Executor, PgPool, SqlitePool};

use super::{ExtraColumn, Shape};
use crate::config::{FieldType, GenerateId};
use crate::model::{CORE_SESSION_FIELDS, CORE_USER_FIELDS};
use crate::store::StoreError;

/// A column as the database describes it.
#[derive(Debug, Clone)]
pub(super) struct Column {
    name: String,
    /// `not null`.
    required: bool,
    /// A default, identity or generated value fills it when an insert leaves it out.
    filled: bool,
    /// The type's name, lower-cased (`text`, `uuid`, `integer`, …).
    ty: String,
}

/// PostgreSQL: migrations (and the revocation triggers) when asked, then the additional
/// columns, then the check.
pub(super) async fn prepare_postgres(
    pool: &PgPool,
    shape: &Shape,
    migrate: bool,
) -> Result<(), StoreError> {
    if migrate {
        if let Some(ddl) = core_tables(shape.generate_id, false) {
            if pg_columns(pool, "user").await?.is_empty() {
                pool.execute(ddl.as_str()).await?;
            }
        }
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
    if shape.events {
        super::events::prepare_postgres(pool, migrate).await?;
    }
    if shape.jwks {
        if migrate {
            pool.execute(jwks_table(shape.generate_id, false).as_str())
                .await?;
        }
        if pg_columns(pool, "jwks").await?.is_empty() {
            return Err(jwks_missing());
        }
    }
    for (table, extras) in [("user", &shape.user), ("session", &shape.session)] {
        let existing = pg_columns(pool, table).await?;
        for c in missing_columns(table, extras, &existing, migrate)? {
            let ty = match c.kind {
                FieldType::String => "text",
                FieldType::Number => "integer",
                FieldType::Boolean => "boolean",
                FieldType::Date => "timestamptz",
            };
            // "if not exists": replicas starting together may race to add it.
            let stmt = format!(
                r#"alter table "{table}" add column if not exists "{}" {ty}{}"#,
                c.name,
                column_tail(c, false)
            );
            pool.execute(stmt.as_str()).await?;
        }
        check_columns(
            table,
            &pg_columns(pool, table).await?,
            extras,
            shape.generate_id,
        )?;
    }
    Ok(())
}

/// SQLite: migrations when asked, then the additional columns, then the check.
pub(super) async fn prepare_sqlite(
    pool: &SqlitePool,
    shape: &Shape,
    migrate: bool,
) -> Result<(), StoreError> {
    if migrate {
        if let Some(ddl) = core_tables(shape.generate_id, true) {
            if sqlite_columns(pool, "user").await?.is_empty() {
                pool.execute(ddl.as_str()).await?;
            }
        }
        sqlx::migrate!("migrations/sqlite")
            .run(pool)
            .await
            .map_err(|e| StoreError::Backend(e.into()))?;
    }
    if shape.events {
        super::events::prepare_sqlite(pool, migrate).await?;
    }
    if shape.jwks {
        if migrate {
            pool.execute(jwks_table(shape.generate_id, true).as_str())
                .await?;
        }
        if sqlite_columns(pool, "jwks").await?.is_empty() {
            return Err(jwks_missing());
        }
    }
    for (table, extras) in [("user", &shape.user), ("session", &shape.session)] {
        let existing = sqlite_columns(pool, table).await?;
        for c in missing_columns(table, extras, &existing, migrate)? {
            let ty = match c.kind {
                FieldType::String => "text",
                FieldType::Number | FieldType::Boolean => "integer",
                FieldType::Date => "date",
            };
            let stmt = format!(
                r#"alter table "{table}" add column "{}" {ty}{}"#,
                c.name,
                column_tail(c, true)
            );
            pool.execute(stmt.as_str()).await?;
        }
        check_columns(
            table,
            &sqlite_columns(pool, table).await?,
            extras,
            shape.generate_id,
        )?;
    }
    Ok(())
}

/// Better Auth's core tables with the id columns `generate_id` calls for, made before the
/// first migration on an empty database (whose `create table if not exists` then finds
/// them), as Better Auth's migrator makes them: on PostgreSQL, `uuid` ids defaulting to
/// `gen_random_uuid()` for `"uuid"`, and `integer` identity ids with `integer` references
/// for `"serial"`; on SQLite, `integer` ids (the rowid, which SQLite numbers) for
/// `"serial"`. `None`: the migration's own text ids (SQLite keeps uuids as text, as Better
/// Auth does).
fn core_tables(ids: GenerateId, sqlite: bool) -> Option<String> {
    let (id, user_id) = match (ids, sqlite) {
        (GenerateId::Uuid, false) => (
            r#""id" uuid default pg_catalog.gen_random_uuid() not null primary key"#,
            r#""userId" uuid not null references"#,
        ),
        (GenerateId::Serial, false) => (
            r#""id" integer generated by default as identity not null primary key"#,
            r#""userId" integer not null references"#,
        ),
        (GenerateId::Serial, true) => (
            r#""id" integer not null primary key"#,
            r#""userId" integer not null references"#,
        ),
        _ => return None,
    };
    let migration = if sqlite {
        include_str!("../../../migrations/sqlite/20260101000000_better_auth_core.sql")
    } else {
        include_str!("../../../migrations/postgres/20260101000000_better_auth_core.sql")
    };
    Some(
        migration
            .replace(r#""id" text not null primary key"#, id)
            .replace(r#""userId" text not null references"#, user_id),
    )
}

/// The jwt plugin's `jwks` table as Better Auth's migrator makes it, ids typed as the
/// other tables'.
fn jwks_table(ids: GenerateId, sqlite: bool) -> String {
    let id = match (ids, sqlite) {
        (GenerateId::Uuid, false) => {
            "uuid default pg_catalog.gen_random_uuid() not null primary key"
        }
        (GenerateId::Serial, false) => {
            "integer generated by default as identity not null primary key"
        }
        (GenerateId::Serial, true) => "integer not null primary key",
        _ => "text not null primary key",
    };
    let date = if sqlite { "date" } else { "timestamptz" };
    format!(
        r#"create table if not exists "jwks" ("id" {id}, "publicKey" text not null, "privateKey" text not null, "createdAt" {date} not null, "expiresAt" {date}, "alg" text, "crv" text)"#
    )
}

fn jwks_missing() -> StoreError {
    StoreError::Backend(
        "plugins.jwt needs the jwks table, which is missing and database.migrate_on_start is off: run `sessiond migrate` (or turn it on)"
            .into(),
    )
}

async fn pg_columns(pool: &PgPool, table: &str) -> Result<Vec<Column>, StoreError> {
    let rows: Vec<(String, bool, bool, String)> = sqlx::query_as(
        r#"select a.attname::text, a.attnotnull,
                  a.atthasdef or a.attidentity <> '' or a.attgenerated <> '',
                  format_type(a.atttypid, null)
           from pg_attribute a
           where a.attrelid = to_regclass(quote_ident($1)) and a.attnum > 0 and not a.attisdropped
           order by a.attnum"#,
    )
    .bind(table)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, required, filled, ty)| Column {
            name,
            required,
            filled,
            ty: ty.to_lowercase(),
        })
        .collect())
}

async fn sqlite_columns(pool: &SqlitePool, table: &str) -> Result<Vec<Column>, StoreError> {
    let rows: Vec<(String, bool, bool, String, i64)> = sqlx::query_as(
        r#"select "name", "notnull" <> 0, "dflt_value" is not null, "type", "pk"
           from pragma_table_info($1)"#,
    )
    .bind(table)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, required, filled, ty, pk)| Column {
            // An integer primary key is the rowid: SQLite fills it.
            filled: filled || (pk == 1 && ty.eq_ignore_ascii_case("integer")),
            name,
            required,
            ty: ty.to_lowercase(),
        })
        .collect())
}

/// ` not null default …` for a column sessiond adds, as Better Auth's migrator adds one
/// to an existing table: `not null` when required, the default when it is a constant.
fn column_tail(c: &ExtraColumn, sqlite: bool) -> String {
    let mut tail = String::new();
    if c.required {
        tail.push_str(" not null");
    }
    let literal = match &c.default_value {
        Some(serde_json::Value::Bool(b)) if sqlite => Some(if *b { "1" } else { "0" }.to_owned()),
        Some(serde_json::Value::Bool(b)) => Some(b.to_string()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(serde_json::Value::String(s)) => Some(format!("'{}'", s.replace('\'', "''"))),
        _ => None,
    };
    if let Some(l) = literal {
        tail.push_str(" default ");
        tail.push_str(&l);
    } else if c.required {
        // Rows that exist already need a value; an empty one of the column's type.
        tail.push_str(match c.kind {
            FieldType::String => " default ''",
            FieldType::Number => " default 0",
            FieldType::Boolean if sqlite => " default 0",
            FieldType::Boolean => " default false",
            FieldType::Date => " default CURRENT_TIMESTAMP",
        });
    }
    tail
}

/// The additional fields whose column is missing, to be added when migrations run.
/// Without migrations a missing column stops the start (every sign-in would fail on it),
/// and nothing is altered: the database user may well have no right to.
fn missing_columns<'a>(
    table: &str,
    extras: &'a [ExtraColumn],
    existing: &[Column],
    migrate: bool,
) -> Result<Vec<&'a ExtraColumn>, StoreError> {
    let missing: Vec<&ExtraColumn> = extras
        .iter()
        .filter(|c| !existing.iter().any(|e| e.name == c.name))
        .collect();
    if missing.is_empty() || migrate {
        return Ok(missing);
    }
    let names: Vec<String> = missing.iter().map(|c| format!("\"{}\"", c.name)).collect();
    Err(StoreError::Backend(
        format!(
            "the {table} table has no column {} for {table}.additional_fields (or a plugin), \
             and database.migrate_on_start is off: run `sessiond migrate` (or turn it on)",
            names.join(", ")
        )
        .into(),
    ))
}

/// Refuses a table sessiond could not insert into: a `not null` column that nothing fills
/// and the configuration does not name (a Better Auth plugin's or the app's own); and id
/// columns of another type than `advanced.database.generate_id` makes. Columns it does not
/// know but may leave empty are named once in the log. A table that does not exist yet
/// (no migrations run) passes: the first query will say so.
fn check_columns(
    table: &str,
    columns: &[Column],
    extras: &[ExtraColumn],
    ids: GenerateId,
) -> Result<(), StoreError> {
    let core = if table == "user" {
        CORE_USER_FIELDS
    } else {
        CORE_SESSION_FIELDS
    };
    let known = |n: &str| core.contains(&n) || extras.iter().any(|c| c.name == n);
    let unknown: Vec<&Column> = columns.iter().filter(|c| !known(&c.name)).collect();
    if let Some(c) = unknown.iter().find(|c| c.required && !c.filled) {
        return Err(StoreError::Backend(
            format!(
                "the {table} table has a column \"{}\" that is not null and has no default, \
                 which the configuration does not declare: sessiond could not create a {table} \
                 row. Declare it in {table}.additional_fields (with a default_value), enable \
                 the plugin it belongs to, or give it a default in the database",
                c.name
            )
            .into(),
        ));
    }
    let names: Vec<&str> = unknown.iter().map(|c| c.name.as_str()).collect();
    if !names.is_empty() {
        tracing::info!(
            table,
            columns = %names.join(", "),
            "columns unknown to the configuration are left empty on insert and not returned"
        );
    }
    for col in columns
        .iter()
        .filter(|c| c.name == "id" || (table == "session" && c.name == "userId"))
    {
        let expected = match ids {
            GenerateId::Default => &["text", "character varying", "varchar"][..],
            GenerateId::Uuid => &["uuid", "text", "character varying", "varchar"][..],
            GenerateId::Serial => &["integer", "bigint", "int", "int4", "int8"][..],
        };
        let fits = expected.iter().any(|e| col.ty.starts_with(e));
        if !fits {
            let hint = match col.ty.as_str() {
                "uuid" => "\"uuid\"",
                t if t.contains("int") => "\"serial\"",
                _ => "\"default\"",
            };
            return Err(StoreError::Backend(
                format!(
                    "the {table} table's \"{}\" column is {}, which advanced.database.generate_id \
                     = \"{}\" does not make: set it to {hint}",
                    col.name,
                    col.ty,
                    match ids {
                        GenerateId::Default => "default",
                        GenerateId::Uuid => "uuid",
                        GenerateId::Serial => "serial",
                    }
                )
                .into(),
            ));
        }
        // Serial ids are the database's to assign: an id column that nothing fills would
        // fail every insert.
        if ids == GenerateId::Serial && col.name == "id" && !col.filled {
            return Err(StoreError::Backend(
                format!(
                    "the {table} table's \"id\" column is {} with nothing to number it, which \
                     advanced.database.generate_id = \"serial\" needs: make it an identity \
                     column (PostgreSQL) or an integer primary key (SQLite), as Better Auth's \
                     migrator does",
                    col.ty
                )
                .into(),
            ));
        }
    }
    Ok(())
}
