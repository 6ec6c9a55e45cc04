//! The database schema is Better Auth's, and a database Better Auth migrated is adopted.

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(schema_has_better_auth_tables_and_columns);

const EXPECTED: &[(&str, &[&str])] = &[
    (
        "user",
        &[
            "id",
            "name",
            "email",
            "emailVerified",
            "image",
            "createdAt",
            "updatedAt",
        ],
    ),
    (
        "session",
        &[
            "id",
            "expiresAt",
            "token",
            "createdAt",
            "updatedAt",
            "ipAddress",
            "userAgent",
            "userId",
        ],
    ),
    (
        "account",
        &[
            "id",
            "accountId",
            "providerId",
            "userId",
            "accessToken",
            "refreshToken",
            "idToken",
            "accessTokenExpiresAt",
            "refreshTokenExpiresAt",
            "scope",
            "password",
            "createdAt",
            "updatedAt",
        ],
    ),
    (
        "verification",
        &[
            "id",
            "identifier",
            "value",
            "expiresAt",
            "createdAt",
            "updatedAt",
        ],
    ),
];

async fn schema_has_better_auth_tables_and_columns(b: Backend) {
    let app = spawn(b).await;
    for (table, cols) in EXPECTED {
        for col in *cols {
            let sql = match b {
                Backend::Postgres => format!(
                    "select count(*) from information_schema.columns where table_schema = 'public' and table_name = '{table}' and column_name = '{col}'"
                ),
                Backend::Sqlite => format!("select count(*) from pragma_table_info('{table}') where name = '{col}'"),
            };
            assert_eq!(app.count(&sql).await, 1, "{table}.{col}");
        }
    }
    if b == Backend::Postgres {
        let types = [
            ("session", "expiresAt", "timestamp with time zone"),
            ("user", "emailVerified", "boolean"),
            ("session", "token", "text"),
        ];
        for (t, c, ty) in types {
            let sql = format!("select count(*) from information_schema.columns where table_name = '{t}' and column_name = '{c}' and data_type = '{ty}'");
            assert_eq!(app.count(&sql).await, 1, "{t}.{c} {ty}");
        }
        for idx in [
            "session_userId_idx",
            "account_userId_idx",
            "verification_identifier_idx",
            "session_token_key",
            "user_email_key",
        ] {
            assert_eq!(
                app.count(&format!(
                    "select count(*) from pg_indexes where indexname = '{idx}'"
                ))
                .await,
                1,
                "{idx}"
            );
        }
        let cascade = "select count(*) from information_schema.referential_constraints where delete_rule = 'CASCADE'";
        assert_eq!(app.count(cascade).await, 2);
    }
    // Deleting a user cascades to sessions and accounts.
    let (_, res) = app.sign_up(&unique_email()).await;
    let uid = res.json()["user"]["id"].as_str().unwrap().to_string();
    let (_, _) = app
        .sign_in(res.json()["user"]["email"].as_str().unwrap(), PASSWORD)
        .await;
    assert_eq!(app.count(r#"select count(*) from "session""#).await, 2);
    app.exec(&format!(r#"delete from "user" where "id" = '{uid}'"#))
        .await;
    assert_eq!(app.count(r#"select count(*) from "session""#).await, 0);
    assert_eq!(app.count(r#"select count(*) from "account""#).await, 0);
}
