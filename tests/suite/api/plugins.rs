//! A Better Auth app's schema beyond the core: `user.additional_fields` and the admin
//! plugin's columns and rules (bans, impersonation sessions).

use serde_json::{json, Value};
use sessiond::config::GenerateId;

use crate::on_both_backends;
use crate::support::*;

on_both_backends!(
    user_additional_fields,
    admin_plugin_columns_and_default_role,
    banned_users_get_no_session,
    expired_bans_are_lifted_at_sign_in,
    list_sessions_hides_impersonation_sessions,
    uuid_ids,
    serial_ids,
    serial_ids_with_redis,
);

fn field(v: Value) -> sessiond::config::AdditionalField {
    serde_json::from_value(v).unwrap()
}

/// An app with a required `plan` (default "free"), a number `credits`, a hidden
/// `secretNote` and an app-only `tier`.
async fn fields_app(b: Backend) -> TestApp {
    spawn_with(b, |s| {
        let f = &mut s.user.additional_fields;
        f.insert(
            "plan".into(),
            field(json!({"type": "string", "required": true, "default_value": "free"})),
        );
        f.insert("credits".into(), field(json!({"type": "number"})));
        f.insert(
            "secretNote".into(),
            field(json!({"type": "string", "returned": false})),
        );
        f.insert(
            "tier".into(),
            field(json!({"type": "string", "input": false})),
        );
        s.session.cookie_cache.enabled = true;
    })
    .await
}

fn sign_up_body(email: &str, extra: Value) -> Value {
    let mut body = json!({"name": "Ada", "email": email, "password": PASSWORD});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn user_additional_fields(b: Backend) {
    let app = fields_app(b).await;
    let email = unique_email();
    let mut jar = Jar::default();
    let res = app
        .post(
            "/sign-up/email",
            sign_up_body(&email, json!({"credits": 7, "secretNote": "s3cret"})),
            &mut jar,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let user = &res.json()["user"];
    assert_eq!(user["plan"], "free", "default applied: {user}");
    assert_eq!(user["credits"], 7);
    assert_eq!(user["tier"], Value::Null);
    assert!(user.get("secretNote").is_none(), "returned = false: {user}");
    // Stored: the hidden field too.
    let stored = app
        .count(&format!(
            r#"select count(*) from "user" where "email" = '{email}' and "secretNote" = 's3cret' and "credits" = 7"#
        ))
        .await;
    assert_eq!(stored, 1);
    // get-session from the cache and from the database returns them.
    for path in ["/get-session", "/get-session?disableCookieCache=true"] {
        let s = app.get(path, &mut jar).await.json();
        assert_eq!(s["user"]["plan"], "free", "{path}: {s}");
        assert_eq!(s["user"]["credits"], 7, "{path}");
        assert!(s["user"].get("secretNote").is_none(), "{path}");
    }
    // Sign-in returns them too.
    let (_, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.json()["user"]["credits"], 7);
    // update-user sets an input field; an app-only one is refused; types are checked.
    let res = app
        .post(
            "/update-user",
            json!({"credits": 9, "plan": "pro"}),
            &mut jar,
        )
        .await;
    assert_eq!(res.json(), json!({"status": true}));
    let s = app.session(&mut jar).await;
    assert_eq!(
        (s["user"]["credits"].clone(), s["user"]["plan"].clone()),
        (json!(9), json!("pro"))
    );
    let res = app
        .post("/update-user", json!({"tier": "gold"}), &mut jar)
        .await;
    assert_eq!(
        res.json(),
        json!({"message": "tier is not allowed to be set", "code": "FIELD_NOT_ALLOWED"})
    );
    let res = app
        .post("/update-user", json!({"credits": "many"}), &mut jar)
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.json()["message"],
        "[body.credits] Invalid input: expected number, received string"
    );
    // Sign-up: an app-only field sent truthy is refused; a required one sent null too.
    let res = app
        .post(
            "/sign-up/email",
            sign_up_body(&unique_email(), json!({"tier": "gold"})),
            &mut Jar::default(),
        )
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.code().as_deref(), Some("FIELD_NOT_ALLOWED"));
    let res = app
        .post(
            "/sign-up/email",
            sign_up_body(&unique_email(), json!({"plan": null})),
            &mut Jar::default(),
        )
        .await;
    assert_eq!(res.status, 400, "{}", res.text);
    // A required field without a default must be sent.
    let app = spawn_with(b, |s| {
        s.user.additional_fields.insert(
            "tenant".into(),
            field(json!({"type": "string", "required": true})),
        );
    })
    .await;
    let res = app
        .post(
            "/sign-up/email",
            sign_up_body(&unique_email(), json!({})),
            &mut Jar::default(),
        )
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.json(),
        json!({"message": "tenant is required", "code": "MISSING_FIELD"})
    );
    let res = app
        .post(
            "/sign-up/email",
            sign_up_body(&unique_email(), json!({"tenant": "acme"})),
            &mut Jar::default(),
        )
        .await;
    assert_eq!(res.json()["user"]["tenant"], "acme");
}

async fn admin_app(b: Backend) -> TestApp {
    spawn_with(b, |s| {
        s.plugins.admin.enabled = true;
        s.session.cookie_cache.enabled = true;
    })
    .await
}

async fn admin_plugin_columns_and_default_role(b: Backend) {
    let app = admin_app(b).await;
    let (mut jar, res) = app.sign_up(&unique_email()).await;
    let user = &res.json()["user"];
    assert_eq!(user["role"], "user");
    assert_eq!(user["banned"], false);
    assert_eq!(user["banReason"], Value::Null);
    assert_eq!(user["banExpires"], Value::Null);
    let s = app.session(&mut jar).await;
    assert_eq!(s["session"]["impersonatedBy"], Value::Null);
    assert_eq!(s["user"]["role"], "user");
    // The plugin's fields are the app's to set, not the user's.
    for body in [json!({"role": "admin"}), json!({"banned": true})] {
        let res = app.post("/update-user", body, &mut jar).await;
        assert_eq!(
            res.code().as_deref(),
            Some("FIELD_NOT_ALLOWED"),
            "{}",
            res.text
        );
    }
    let mut fresh = Jar::default();
    let res = app
        .post(
            "/sign-up/email",
            sign_up_body(&unique_email(), json!({"role": "admin"})),
            &mut fresh,
        )
        .await;
    assert_eq!(res.code().as_deref(), Some("FIELD_NOT_ALLOWED"));
    // A date written by the app comes back in Better Auth's form.
    let id = s["user"]["id"].as_str().unwrap().to_owned();
    app.exec(&format!(
        r#"update "user" set "role" = 'admin', "banReason" = 'none', "banExpires" = '2031-02-03T04:05:06.789Z' where "id" = '{id}'"#
    ))
    .await;
    let s = app
        .get("/get-session?disableCookieCache=true", &mut jar)
        .await
        .json();
    assert_eq!(s["user"]["role"], "admin");
    assert_eq!(s["user"]["banExpires"], "2031-02-03T04:05:06.789Z");
}

const BANNED: &str = "You have been banned from this application. Please contact support if you believe this is an error.";

async fn banned_users_get_no_session(b: Backend) {
    let app = admin_app(b).await;
    let email = unique_email();
    let (mut jar, res) = app.sign_up(&email).await;
    let id = res.json()["user"]["id"].as_str().unwrap().to_owned();
    assert_ne!(app.session(&mut jar).await, Value::Null);
    // Banned in the database (as the app's admin API does, here without deleting the
    // sessions): the session is no longer served, from the cache or the database.
    app.exec(&format!(
        r#"update "user" set "banned" = true where "id" = '{id}'"#
    ))
    .await;
    assert_eq!(
        app.get("/get-session?disableCookieCache=true", &mut jar)
            .await
            .json(),
        Value::Null
    );
    // Sign-in: a wrong password is still just wrong; the right one is refused with 403.
    let (_, res) = app.sign_in(&email, "wrong-password-1").await;
    assert_eq!(res.status, 401);
    let (mut jar2, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 403);
    assert_eq!(
        res.json(),
        json!({"message": BANNED, "code": "BANNED_USER"})
    );
    assert!(jar2.header().is_empty(), "no cookie for a banned user");
    assert_eq!(app.session(&mut jar2).await, Value::Null);
    // A ban with a future end holds; unbanned, the user signs in again.
    app.exec(&format!(
        r#"update "user" set "banExpires" = '2999-01-01T00:00:00.000Z' where "id" = '{id}'"#
    ))
    .await;
    assert_eq!(app.sign_in(&email, PASSWORD).await.1.status, 403);
    app.exec(&format!(
        r#"update "user" set "banned" = false, "banExpires" = null where "id" = '{id}'"#
    ))
    .await;
    let (mut jar3, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(app.session(&mut jar3).await["user"]["banned"], false);
    // The message is configurable.
    let app = spawn_with(b, |s| {
        s.plugins.admin.enabled = true;
        s.plugins.admin.banned_user_message = "Go away".into();
    })
    .await;
    let (_, res) = app.sign_up(&email).await;
    let id = res.json()["user"]["id"].as_str().unwrap().to_owned();
    app.exec(&format!(
        r#"update "user" set "banned" = true where "id" = '{id}'"#
    ))
    .await;
    let (_, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(
        res.json(),
        json!({"message": "Go away", "code": "BANNED_USER"})
    );
}

async fn expired_bans_are_lifted_at_sign_in(b: Backend) {
    let app = admin_app(b).await;
    let email = unique_email();
    let (_, res) = app.sign_up(&email).await;
    let id = res.json()["user"]["id"].as_str().unwrap().to_owned();
    app.exec(&format!(
        r#"update "user" set "banned" = true, "banReason" = 'spam', "banExpires" = '2001-01-01T00:00:00.000Z' where "id" = '{id}'"#
    ))
    .await;
    let (mut jar, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let lifted = app
        .count(&format!(
            r#"select count(*) from "user" where "id" = '{id}' and "banned" = false and "banReason" is null and "banExpires" is null"#
        ))
        .await;
    assert_eq!(lifted, 1);
    assert_eq!(app.session(&mut jar).await["user"]["banned"], false);
}

async fn list_sessions_hides_impersonation_sessions(b: Backend) {
    let app = admin_app(b).await;
    let email = unique_email();
    let (mut jar, res) = app.sign_up(&email).await;
    let id = res.json()["user"]["id"].as_str().unwrap().to_owned();
    let (_, _) = app.sign_in(&email, PASSWORD).await;
    let listed = app.get("/list-sessions", &mut jar).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    // An admin's impersonation session (written by the app) is not the user's to see.
    let (_, other) = app.sign_in(&email, PASSWORD).await;
    let token = other.json()["token"].as_str().unwrap().to_owned();
    app.exec(&format!(
        r#"update "session" set "impersonatedBy" = 'admin-1' where "token" = '{token}' and "userId" = '{id}'"#
    ))
    .await;
    let listed = app.get("/list-sessions", &mut jar).await.json();
    let sessions = listed.as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{listed}");
    assert!(sessions.iter().all(|s| s["impersonatedBy"].is_null()));
}

async fn uuid_ids(b: Backend) {
    generated_ids(b, GenerateId::Uuid).await;
}

async fn serial_ids(b: Backend) {
    generated_ids(b, GenerateId::Serial).await;
}

/// Whether `v` is an id of the kind `ids` makes: a UUID, or a number the database
/// assigned, as a string (Better Auth outputs `String(id)`).
fn id_of_kind(ids: GenerateId, v: &Value) -> bool {
    let Some(s) = v.as_str() else {
        return false;
    };
    match ids {
        GenerateId::Uuid => uuid::Uuid::parse_str(s).is_ok(),
        GenerateId::Serial => s.parse::<u32>().is_ok_and(|n| n > 0),
        GenerateId::Default => s.len() == 32,
    }
}

/// `advanced.database.generate_id` = "uuid" or "serial": the id columns Better Auth's
/// migrator makes (PostgreSQL `uuid`, or `integer` identity ids and `integer` references;
/// on SQLite text uuids, or `integer` ids, the rowid), ids of that kind for every row, in
/// answers and in the cookie cache alike, and every route works on them.
async fn generated_ids(b: Backend, ids: GenerateId) {
    let app = spawn_with(b, |s| {
        s.advanced.database.generate_id = ids;
        s.session.cookie_cache.enabled = true;
    })
    .await;
    let id_columns = |ty: &str| match b {
        Backend::Postgres => format!(
            r#"select count(*) from information_schema.columns where table_schema = current_schema()
               and data_type = '{ty}' and (column_name = 'id' or column_name = 'userId')
               and table_name in ('user', 'session', 'account', 'verification')"#
        ),
        Backend::Sqlite => format!(
            r#"select count(*) from sqlite_master m join pragma_table_info(m.name) c
               where m.type = 'table' and m.name in ('user', 'session', 'account', 'verification')
               and (c.name = 'id' or c.name = 'userId') and lower(c.type) = '{ty}'"#
        ),
    };
    match (ids, b) {
        (GenerateId::Uuid, Backend::Postgres) => {
            assert_eq!(app.count(&id_columns("uuid")).await, 6, "uuid id columns");
        }
        (GenerateId::Serial, _) => {
            assert_eq!(
                app.count(&id_columns("integer")).await,
                6,
                "integer id columns"
            );
        }
        _ => {}
    }
    if (ids, b) == (GenerateId::Serial, Backend::Postgres) {
        let identities = app
            .count(
                r#"select count(*) from information_schema.columns where table_schema = current_schema()
                   and column_name = 'id' and is_identity = 'YES' and identity_generation = 'BY DEFAULT'
                   and table_name in ('user', 'session', 'account', 'verification')"#,
            )
            .await;
        assert_eq!(identities, 4, "id columns are identities, as Better Auth's");
    }
    let is_id = |v: &Value| id_of_kind(ids, v);
    let email = unique_email();
    let (mut jar, res) = app.sign_up(&email).await;
    let user_id = res.json()["user"]["id"].clone();
    assert!(is_id(&user_id), "{}", res.text);
    let s = app.session(&mut jar).await;
    assert!(is_id(&s["session"]["id"]), "{s}");
    assert_eq!(s["session"]["userId"], user_id, "{s}");
    assert_eq!(s["session"]["token"].as_str().unwrap().len(), 32);
    // The cookie cache carries the ids as stored.
    let fresh = app
        .get("/get-session?disableCookieCache=true", &mut jar)
        .await
        .json();
    assert_eq!(fresh, s);
    if ids == GenerateId::Serial {
        // The database numbered them: the first user, account and session of the database.
        assert_eq!(
            (user_id.as_str(), s["session"]["id"].as_str()),
            (Some("1"), Some("1"))
        );
        let account = app
            .count(r#"select count(*) from "account" where "id" = 1 and "userId" = 1 and "accountId" = '1'"#)
            .await;
        assert_eq!(
            account, 1,
            "the credential account, as Better Auth writes it"
        );
    }
    let (mut other, res) = app.sign_in(&email, PASSWORD).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let listed = app.get("/list-sessions", &mut jar).await.json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|l| is_id(&l["id"]) && l["userId"] == user_id),
        "{listed:?}"
    );
    let res = app
        .post("/update-user", json!({"name": "Grace"}), &mut jar)
        .await;
    assert_eq!(res.json(), json!({"status": true}));
    let other_id = app.session(&mut other).await["session"]["id"].clone();
    assert!(
        is_id(&other_id) && other_id != s["session"]["id"],
        "{other_id}"
    );
    let replaced = revoke_by_id_then_replace(&app, &mut jar, &mut other, &other_id).await;
    assert_eq!(replaced["user"]["name"], "Grace");
    assert!(is_id(&replaced["session"]["id"]), "{replaced}");
    let sessions = app.get("/list-sessions", &mut jar).await.json();
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
    assert_eq!(sessions[0]["id"], replaced["session"]["id"]);
    let res = app
        .post("/revoke-other-sessions", json!({}), &mut jar)
        .await;
    assert_eq!(res.json(), json!({"status": true}));
    let res = app.post("/revoke-sessions", json!({}), &mut jar).await;
    assert_eq!(res.json(), json!({"status": true}));
    let gone = app
        .get("/get-session?disableCookieCache=true", &mut jar)
        .await
        .json();
    assert_eq!(gone, Value::Null);
}

/// From `jar`, revokes `other`'s session by its `id`, then changes the password with
/// `revokeOtherSessions` (every session replaced by one new one); `jar`'s session then.
async fn revoke_by_id_then_replace(
    app: &TestApp,
    jar: &mut Jar,
    other: &mut Jar,
    id: &Value,
) -> Value {
    let res = app.post("/revoke-session", json!({ "id": id }), jar).await;
    assert_eq!(res.json(), json!({"status": true}));
    assert_eq!(app.session(other).await, Value::Null);
    let res = app
        .post(
            "/change-password",
            json!({"currentPassword": PASSWORD, "newPassword": "another-password-9", "revokeOtherSessions": true}),
            jar,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    app.session(jar).await
}

/// `serial` with Redis as secondary storage: users are numbered by the database; a session
/// kept in Redis only gets a random id, as Better Auth gives it, and one also kept in the
/// database the database's number.
async fn serial_ids_with_redis(b: Backend) {
    for store_in_db in [false, true] {
        let prefix = redis_prefix();
        let app = spawn_with(b, |s| {
            s.advanced.database.generate_id = GenerateId::Serial;
            use_shared_redis(&mut s.redis, prefix);
            s.session.store_session_in_database = store_in_db;
        })
        .await;
        let email = unique_email();
        let (mut jar, res) = app.sign_up(&email).await;
        assert_eq!(res.json()["user"]["id"], "1", "{}", res.text);
        let (mut second, res) = app.sign_in(&email, PASSWORD).await;
        assert_eq!(res.status, 200, "{}", res.text);
        let listed = app.get("/list-sessions", &mut jar).await.json();
        let ids: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap())
            .collect();
        if store_in_db {
            assert_eq!(ids, ["1", "2"], "{listed}");
        } else {
            assert!(ids.iter().all(|id| id.len() == 32), "{listed}");
        }
        assert!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .all(|l| l["userId"] == "1"),
            "{listed}"
        );
        let s = revoke_by_id_then_replace(&app, &mut jar, &mut second, &json!(ids[1])).await;
        let id = s["session"]["id"].as_str().unwrap();
        if store_in_db {
            // A number again (SQLite may reuse a deleted row's, as its rowids do).
            assert!(id.parse::<u32>().is_ok(), "{s}");
        } else {
            assert_eq!(id.len(), 32, "{s}");
        }
    }
}

/// `serial` in stateless mode: the process numbers its rows, as Better Auth's memory
/// adapter does.
#[tokio::test]
async fn serial_ids_in_stateless_mode() {
    let app = spawn_with(Backend::Sqlite, |s| {
        s.database.url = "memory".into();
        s.email_and_password.enabled = Some(true);
        s.advanced.database.generate_id = GenerateId::Serial;
    })
    .await;
    let (mut jar, res) = app.sign_up(&unique_email()).await;
    assert_eq!(res.json()["user"]["id"], "1", "{}", res.text);
    let s = app.session(&mut jar).await;
    assert_eq!(
        (&s["session"]["id"], &s["session"]["userId"]),
        (&json!("1"), &json!("1")),
        "{s}"
    );
    let (_, res) = app.sign_up(&unique_email()).await;
    assert_eq!(res.json()["user"]["id"], "2", "{}", res.text);
}
