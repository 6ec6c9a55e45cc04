//! Opening a database: how many connections it may hold, and its additional columns.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use sessiond::store::feed::{Announcement, Listener};
use sessiond::store::sql::{split_connections, Connected};
use sqlx::Connection;

use super::fixture::{db_settings, extras};
use super::records::*;
use super::*;
use crate::support::{admin_url, PgDb};

#[test]
fn the_connection_split_never_exceeds_the_setting() {
    for total in 0..=64 {
        let (pool, hot) = split_connections(total);
        assert_eq!(pool + hot, total.max(1), "{total}");
        // The pool keeps one connection beside the revocation listener's when it can.
        assert!(pool >= total.clamp(1, 2), "{total}: {pool}");
    }
    assert_eq!(split_connections(16), (8, 8));
}

struct Deaf;

impl Listener for Deaf {
    fn register(&self, _name: &'static str) -> usize {
        0
    }
    fn announce(&self, _source: usize, _a: Announcement) {}
}

/// The most connections `db` had open while `load` ran, sampled from
/// `pg_stat_activity` by an administrator connection (not itself counted).
async fn peak_connections(db: &str, load: impl std::future::Future<Output = ()>) -> i64 {
    let mut admin = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicI64::new(0));
    let sampler = {
        let (done, peak, db) = (done.clone(), peak.clone(), db.to_owned());
        tokio::spawn(async move {
            loop {
                let n: i64 =
                    sqlx::query_scalar("select count(*) from pg_stat_activity where datname = $1")
                        .bind(&db)
                        .fetch_one(&mut admin)
                        .await
                        .unwrap();
                peak.fetch_max(n, Ordering::SeqCst);
                if done.load(Ordering::SeqCst) {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
    };
    load.await;
    done.store(true, Ordering::SeqCst);
    sampler.await.unwrap();
    peak.load(Ordering::SeqCst)
}

/// Every kind of statement at once from many tasks: hot reads (find, touch, list) and
/// pool writes (sign-up, create, update, delete).
async fn load(store: Arc<dyn Store>, tasks: usize) {
    let now = start();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let u = signed_up(&*store, now).await;
            for i in 0..10 {
                let mut s = session(&u, now, hour());
                store.create_session(&mut s, now).await.unwrap();
                assert!(store.find_session(&s.token).await.unwrap().is_some());
                let due = now + Duration::hours(2);
                store.touch_session(&s.token, due, now, due).await.unwrap();
                store.list_sessions(&u.id, now, 10).await.unwrap();
                let name = format!("user {i}");
                store
                    .update_user(
                        &u.id,
                        &UserChange {
                            name: Some(&name),
                            image: None,
                            fields: &Map::new(),
                        },
                        now,
                    )
                    .await
                    .unwrap();
                store.delete_session(&s.token, now).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
}

async fn open(url: &str, max_connections: u32) -> Connected {
    let dir = tempfile::tempdir().unwrap();
    connect(
        &db_settings(url, max_connections),
        dir.path(),
        extras(),
        true,
    )
    .await
    .unwrap()
}

/// The pool, the hot connections and the revocation listener together stay within
/// `database.max_connections`, under a load that needs more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stays_within_max_connections() {
    let pg = PgDb::create().await;
    let connected = open(&pg.url, 4).await;
    sessiond::store::feed::spawn_pg(connected.pg_pool.clone().unwrap(), Arc::new(Deaf));
    let peak = peak_connections(&pg.name, load(connected.store.clone(), 16)).await;
    assert!(peak <= 4, "{peak} connections open, 4 allowed");
    // The load did reach the limit: the check above could have failed.
    assert!(peak >= 3, "only {peak} connections used");

    // One connection: the hot reads borrow it from the pool.
    let pg = PgDb::create().await;
    let connected = open(&pg.url, 1).await;
    let peak = peak_connections(&pg.name, load(connected.store.clone(), 4)).await;
    assert_eq!(peak, 1);
}

fn column_names(rows: Vec<String>) -> Vec<String> {
    let mut names: Vec<String> = rows
        .into_iter()
        .filter(|c| ["theme", "visits", "beta"].contains(&c.as_str()))
        .collect();
    names.sort();
    names
}

async fn extra_columns_of(url: &str) -> Vec<String> {
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let rows = sqlx::query_scalar(
            "select column_name::text from information_schema.columns \
             where table_name = 'session'",
        )
        .fetch_all(&mut c)
        .await
        .unwrap();
        column_names(rows)
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let rows = sqlx::query_scalar(r#"select "name" from pragma_table_info('session')"#)
            .fetch_all(&mut c)
            .await
            .unwrap();
        column_names(rows)
    }
}

/// Additional columns are added only when migrations run; without, a missing one
/// stops the start with an error that names it, and nothing is altered.
async fn extra_columns_follow_migrate_on_start(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let settings = db_settings(url, 2);
    connect(&settings, dir.path(), Shape::default(), true)
        .await
        .unwrap();
    let refused = connect(&settings, dir.path(), extras(), false).await;
    let err = refused
        .err()
        .expect("started without the columns")
        .to_string();
    assert!(
        err.contains(r#"user table has no column "plan", "credits", "vip", "banExpires""#),
        "{err}"
    );
    assert!(err.contains("sessiond migrate"), "{err}");
    assert!(extra_columns_of(url).await.is_empty());

    connect(&settings, dir.path(), extras(), true)
        .await
        .unwrap();
    assert_eq!(extra_columns_of(url).await, ["beta", "theme", "visits"]);
    connect(&settings, dir.path(), extras(), false)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_extra_columns_follow_migrate_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    extra_columns_follow_migrate_on_start(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_extra_columns_follow_migrate_on_start() {
    let pg = PgDb::create().await;
    extra_columns_follow_migrate_on_start(&pg.url).await;
}

/// A `not null` column without a default that the configuration does not declare (a
/// plugin's, the app's own) stops the start with a message naming table and column; once
/// declared, the store starts and fills it.
async fn unknown_required_columns_stop_the_start(url: &str, table: &str, exec: &str) {
    let dir = tempfile::tempdir().unwrap();
    let settings = db_settings(url, 2);
    connect(&settings, dir.path(), Shape::default(), true)
        .await
        .unwrap();
    run(url, exec).await;
    for migrate in [false, true] {
        let err = connect(&settings, dir.path(), Shape::default(), migrate)
            .await
            .err()
            .expect("started with an unknown not-null column")
            .to_string();
        assert!(
            err.contains(&format!(
                r#"the {table} table has a column "tenant" that is not null and has no default"#
            )),
            "{err}"
        );
    }
    let mut declared = Shape::default();
    let tenant = ExtraColumn {
        name: "tenant".into(),
        kind: FieldType::String,
        required: true,
        default_value: Some(json!("acme")),
    };
    if table == "user" {
        declared.user.push(tenant);
    } else {
        declared.session.push(tenant);
    }
    connect(&settings, dir.path(), declared.clone(), false)
        .await
        .unwrap();
    // A nullable unknown column is only noted.
    run(
        url,
        &format!(r#"alter table "{table}" add column "nickname" text"#),
    )
    .await;
    connect(&settings, dir.path(), declared, false)
        .await
        .unwrap();
}

async fn run(url: &str, sql: &str) {
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unknown_required_columns_stop_the_start() {
    for table in ["user", "session"] {
        let pg = PgDb::create().await;
        let add = format!(r#"alter table "{table}" add column "tenant" text not null"#);
        unknown_required_columns_stop_the_start(&pg.url, table, &add).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_unknown_required_columns_stop_the_start() {
    // SQLite adds no `not null` column without a default: the table is made anew, as a
    // migrator that creates it with the column would.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let remake = r#"create table "user_new" ("id" text not null primary key, "name" text not null,
        "email" text not null unique, "emailVerified" integer not null, "image" text,
        "createdAt" date not null, "updatedAt" date not null, "tenant" text not null);
        drop table "user"; alter table "user_new" rename to "user";"#;
    unknown_required_columns_stop_the_start(&url, "user", remake).await;
}

/// Id columns of another type than `advanced.database.generate_id` makes stop the start,
/// naming the setting that fits them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_id_types_must_match_generate_id() {
    let pg = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    run(
        &pg.url,
        &user_table(r#""id" uuid not null primary key default gen_random_uuid()"#),
    )
    .await;
    let err = id_refusal(&pg.url, dir.path(), GenerateId::Default).await;
    assert!(
        err.contains(r#"the user table's "id" column is uuid, which advanced.database.generate_id = "default" does not make: set it to "uuid""#),
        "{err}"
    );
}

/// A PostgreSQL `user` table with the core columns and the id column `id`.
fn user_table(id: &str) -> String {
    format!(
        r#"create table "user" ({id}, "name" text not null,
           "email" text not null unique, "emailVerified" boolean not null, "image" text,
           "createdAt" timestamptz not null default now(), "updatedAt" timestamptz not null default now())"#
    )
}

/// The error of opening `url` with `generate_id`, without migrations.
async fn id_refusal(url: &str, dir: &std::path::Path, generate_id: GenerateId) -> String {
    let shape = Shape {
        generate_id,
        ..Shape::default()
    };
    connect(&db_settings(url, 2), dir, shape, false)
        .await
        .err()
        .unwrap_or_else(|| panic!("started with generate_id = {generate_id:?}"))
        .to_string()
}

/// Serial ids: a database migrated for them refuses the other settings, one migrated for
/// text ids refuses serial, and an integer id column that nothing numbers is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_id_columns_must_match_generate_id() {
    let pg = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let serial = Shape {
        generate_id: GenerateId::Serial,
        ..Shape::default()
    };
    connect(&db_settings(&pg.url, 2), dir.path(), serial, true)
        .await
        .unwrap();
    for other in [GenerateId::Default, GenerateId::Uuid] {
        let err = id_refusal(&pg.url, dir.path(), other).await;
        assert!(
            err.contains(
                r#"the user table's "id" column is integer, which advanced.database.generate_id"#
            ) && err.contains(r#"set it to "serial""#),
            "{err}"
        );
    }

    let sqlite = format!("sqlite://{}", dir.path().join("text.db").display());
    connect(&db_settings(&sqlite, 2), dir.path(), Shape::default(), true)
        .await
        .unwrap();
    let err = id_refusal(&sqlite, dir.path(), GenerateId::Serial).await;
    assert!(
        err.contains(r#"the user table's "id" column is text, which advanced.database.generate_id = "serial" does not make: set it to "default""#),
        "{err}"
    );

    let bare = PgDb::create().await;
    run(
        &bare.url,
        &user_table(r#""id" integer not null primary key"#),
    )
    .await;
    let err = id_refusal(&bare.url, dir.path(), GenerateId::Serial).await;
    assert!(
        err.contains(r#"the user table's "id" column is integer with nothing to number it"#),
        "{err}"
    );
}
