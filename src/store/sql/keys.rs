//! The `jwks` table over SQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Row, Sqlite};

use super::SqlStore;
use crate::store::keys::{JwkRow, KeyStore, MAX_KEYS};
use crate::store::StoreError;

macro_rules! key_store {
    ($db:ty) => {
        #[async_trait]
        impl KeyStore for SqlStore<$db> {
            async fn jwks(&self) -> Result<Vec<JwkRow>, StoreError> {
                let sql = format!(
                    r#"select * from (select {}, "publicKey", "privateKey", "createdAt", "expiresAt", "alg", "crv" from "jwks" order by "createdAt" desc limit {MAX_KEYS}) k order by 4"#,
                    self.sql.ids.col(r#""id""#),
                );
                let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    out.push(JwkRow {
                        id: r.try_get(0)?,
                        public_key: r.try_get(1)?,
                        private_key: r.try_get(2)?,
                        created_at: r.try_get::<DateTime<Utc>, _>(3)?,
                        expires_at: r.try_get::<Option<DateTime<Utc>>, _>(4)?,
                        alg: r.try_get(5)?,
                        crv: r.try_get(6)?,
                    });
                }
                Ok(out)
            }

            async fn create_jwk(&self, row: &mut JwkRow) -> Result<bool, StoreError> {
                let ids = self.sql.ids;
                let id_col = ids.col(r#""id""#);
                // Under serial ids the database numbers the row: no id column, and the other
                // parameters move down by one.
                let (cols, id_param, n) = if ids.assigned() {
                    ("", String::new(), 1)
                } else {
                    (r#""id", "#, format!("{}, ", ids.param(1)), 2)
                };
                let (pk, sk, created, expires, alg, crv) = (n, n + 1, n + 2, n + 3, n + 4, n + 5);
                // One statement: SQLite runs it alone; PostgreSQL, under the lock below.
                let sql = format!(
                    r#"insert into "jwks" ({cols}"publicKey", "privateKey", "createdAt", "expiresAt", "alg", "crv") select {id_param}${pk}, ${sk}, ${created}, ${expires}, ${alg}, ${crv} where not exists (select 1 from "jwks" where "expiresAt" is null or "expiresAt" > ${created}) returning {id_col}"#
                );
                let mut tx = self.pool.begin().await?;
                if <$db as sqlx::Database>::NAME == "PostgreSQL" {
                    // Replicas making the first (or the next) key at once take turns.
                    sqlx::query("select pg_advisory_xact_lock(7243012877342105877)")
                        .execute(&mut *tx)
                        .await?;
                }
                let mut q = sqlx::query(&sql);
                if !ids.assigned() {
                    q = q.bind(row.id.clone());
                }
                let r = q
                    .bind(row.public_key.clone())
                    .bind(row.private_key.clone())
                    .bind(row.created_at)
                    .bind(row.expires_at)
                    .bind(row.alg.clone())
                    .bind(row.crv.clone())
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.commit().await?;
                match r {
                    Some(r) => {
                        row.id = r.try_get(0)?;
                        Ok(true)
                    }
                    None => Ok(false),
                }
            }
        }
    };
}

key_store!(Postgres);
key_store!(Sqlite);
