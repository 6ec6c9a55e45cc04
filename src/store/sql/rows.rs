//! Reading rows into records, and binding additional fields.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::{Database, Row};

use super::{ExtraColumn, SESSION_CORE_COLS, USER_CORE_COLS_N};
use crate::config::FieldType;
use crate::js::date::{parse_iso, Iso};
use crate::model::{Session, User};

/// Columns are read by position (names would be hashed per column per row): a user's
/// columns start at `at`, the seven core ones then `extras`, in
/// [`super::Statements`]' order.
pub(super) fn user_from<R: Row>(
    r: &R,
    at: usize,
    extras: &[ExtraColumn],
) -> Result<User, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> i64: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> bool: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> DateTime<Utc>: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    Ok(User {
        id: r.try_get(at)?,
        name: r.try_get(at + 1)?,
        email: r.try_get(at + 2)?,
        email_verified: r.try_get(at + 3)?,
        image: r.try_get(at + 4)?,
        created_at: r.try_get(at + 5)?,
        updated_at: r.try_get(at + 6)?,
        extra: extras_from(r, at + USER_CORE_COLS_N, extras)?,
    })
}

/// The additional columns of a row, from position `at`; `null` when unset.
fn extras_from<R: Row>(
    r: &R,
    at: usize,
    extras: &[ExtraColumn],
) -> Result<Map<String, Value>, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> i64: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> bool: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> DateTime<Utc>: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    let mut extra = Map::new();
    for (i, c) in extras.iter().enumerate() {
        let at = at + i;
        let v = match c.kind {
            FieldType::String => r
                .try_get::<Option<String>, _>(at)
                .or_else(|_| {
                    r.try_get::<Option<i64>, _>(at)
                        .map(|n| n.map(|n| n.to_string()))
                })
                .ok()
                .flatten()
                .map(Value::from),
            FieldType::Number => r
                .try_get::<Option<i64>, _>(at)
                .ok()
                .flatten()
                .map(Value::from),
            FieldType::Boolean => match r.try_get::<Option<bool>, _>(at) {
                Ok(b) => b.map(Value::from),
                Err(_) => Some(Value::Bool(truthy_cell(r, at))),
            },
            FieldType::Date => match r.try_get::<Option<DateTime<Utc>>, _>(at) {
                Ok(d) => d,
                Err(_) => r
                    .try_get::<Option<String>, _>(at)
                    .ok()
                    .flatten()
                    .and_then(|t| lenient_date(&t)),
            }
            .map(|d| Value::String(Iso(&d).to_string())),
        };
        extra.insert(c.name.clone(), v.unwrap_or(Value::Null));
    }
    Ok(extra)
}

// A value of another type than its column's reads as what Better Auth would make of it,
// never as a failed request: SQLite keeps whatever was written (an operator's `'yes'`
// in a boolean column, `'2099-01-01'` in a date one), and a column another app altered
// may differ too. Unreadable values are null, except booleans (below).

/// A boolean cell holding something else: JavaScript's truthiness of it, so a ban written
/// as `1`, `'true'` or `'yes'` holds (the admin plugin tests `user.banned` that way).
fn truthy_cell<R: Row>(r: &R, at: usize) -> bool
where
    usize: sqlx::ColumnIndex<R>,
    for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> i64: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    if let Ok(n) = r.try_get::<Option<i64>, _>(at) {
        return n.is_some_and(|n| n != 0);
    }
    r.try_get::<Option<String>, _>(at)
        .ok()
        .flatten()
        .is_some_and(|t| !t.is_empty())
}

/// A date written as text in another form than RFC 3339: `YYYY-MM-DD` (midnight UTC) or
/// SQLite's `YYYY-MM-DD HH:MM:SS` (UTC).
fn lenient_date(t: &str) -> Option<DateTime<Utc>> {
    use chrono::{NaiveDate, NaiveDateTime};
    let t = t.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f") {
        return Some(d.and_utc());
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// A session row in [`super::Statements`]' column order: the eight core columns, then the
/// additional ones (read by position, as [`user_from`]).
pub(super) fn session_from<R: Row>(r: &R, extras: &[ExtraColumn]) -> Result<Session, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'q> String: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> i64: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> bool: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
    for<'q> DateTime<Utc>: sqlx::Decode<'q, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Session {
        id: r.try_get(0)?,
        token: r.try_get(1)?,
        user_id: r.try_get(2)?,
        expires_at: r.try_get(3)?,
        created_at: r.try_get(4)?,
        updated_at: r.try_get(5)?,
        ip_address: r.try_get(6)?,
        user_agent: r.try_get(7)?,
        extra: extras_from(r, SESSION_CORE_COLS, extras)?,
    })
}

/// Binds one additional field's JSON value with its column's type.
pub(super) fn bind_extra<'q, DB: Database>(
    q: sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>,
    kind: FieldType,
    v: Option<&Value>,
) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<bool>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<DateTime<Utc>>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    match kind {
        FieldType::String => q.bind(v.and_then(Value::as_str).map(String::from)),
        FieldType::Number => q.bind(v.and_then(Value::as_i64)),
        FieldType::Boolean => q.bind(v.and_then(Value::as_bool)),
        FieldType::Date => q.bind(v.and_then(parse_iso)),
    }
}
