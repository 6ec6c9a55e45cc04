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

            async fn create_jwk(&self, row: &mut JwkRow) -> Result<(), StoreError> {
                let ids = self.sql.ids;
                let id_col = ids.col(r#""id""#);
                let sql = if ids.assigned() {
                    format!(
                        r#"insert into "jwks" ("publicKey", "privateKey", "createdAt", "expiresAt", "alg", "crv") values ($1, $2, $3, $4, $5, $6) returning {id_col}"#
                    )
                } else {
                    format!(
                        r#"insert into "jwks" ("id", "publicKey", "privateKey", "createdAt", "expiresAt", "alg", "crv") values ({}, $2, $3, $4, $5, $6, $7) returning {id_col}"#,
                        ids.param(1)
                    )
                };
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
                    .fetch_one(&self.pool)
                    .await?;
                row.id = r.try_get(0)?;
                Ok(())
            }
        }
    };
}

key_store!(Postgres);
key_store!(Sqlite);
