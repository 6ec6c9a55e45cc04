//! A fresh PostgreSQL database per test, created through the server at `TEST_POSTGRES_URL`
//! (default: 127.0.0.1:5432, user postgres, trust) and dropped with its fixture.

use sqlx::Connection;

use super::services::unavailable;

/// The maintenance database the test databases are created from.
pub fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh PostgreSQL database, dropped when this value is.
pub struct PgDb {
    pub name: String,
    pub url: String,
}

impl PgDb {
    /// Creates a database; fails the test when PostgreSQL is unreachable.
    pub async fn create() -> Self {
        let admin = admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                unavailable(
                    &format!("PostgreSQL at {admin} ({e})"),
                    "start it, or point TEST_POSTGRES_URL at one",
                )
            });
        let name = format!(
            "sessiond_t_{}",
            sessiond::crypto::token::generate_id().to_lowercase()
        );
        sqlx::query(&format!("create database {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }

    /// Runs a statement on this database; the rows it touched.
    pub async fn exec(&self, sql: &str) -> u64 {
        let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
        sqlx::query(sql)
            .execute(&mut c)
            .await
            .unwrap()
            .rows_affected()
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        url::Url::parse(&self.url).unwrap().port().unwrap_or(5432)
    }

    /// This database's URL with its host and port replaced by `127.0.0.1:port` (a relay).
    pub fn url_via(&self, port: u16) -> String {
        let mut url = url::Url::parse(&self.url).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(port)).unwrap();
        url.to_string()
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = admin_url();
        // Dropping happens outside any runtime; use a private one on a thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}
