//! The store contract (`src/store/mod.rs`), tested once and run over every store: memory,
//! SQLite, PostgreSQL, and Redis around SQLite with sessions in Redis only (`redis`) or
//! also kept, and ended in place, in the database (`redis_db`). Each contract test is one
//! function in [`contract`]; [`conformance!`] expands it into one test per store, as
//! tower-sessions' `route_tests!` does.
//!
//! PostgreSQL and Redis tests use a fresh database or key prefix each, so they run in
//! parallel. When the service is unreachable they fail, whether or not
//! `REQUIRE_TEST_SERVICES=1`: run `cargo test --test store_conformance -- --skip postgres
//! --skip redis` to leave them out knowingly.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};
use sessiond::clock::{Clock, SystemClock};
use sessiond::config::{DatabaseSettings, FieldType};
use sessiond::crypto::token::generate_id;
use sessiond::model::{Session, User};
use sessiond::store::memory::MemoryStore;
use sessiond::store::redis::{RedisOptions, RedisStore};
use sessiond::store::sql::{connect, ExtraColumn};
use sessiond::store::{NewCredentialAccount, PrimaryStore, Store};

/// Where the stores under test live; every store is built fresh for each test.
mod fixture {
    use super::*;
    use sqlx::Connection;

    pub fn pg_admin_url() -> String {
        std::env::var("TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    fn redis_url() -> String {
        std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    /// A store under test and what it lives in, removed when dropped.
    pub struct Fixture {
        pub store: Arc<dyn Store>,
        /// The store as a [`PrimaryStore`], for stores that are one.
        pub primary: Option<Arc<dyn PrimaryStore>>,
        /// The database URL, for SQL stores.
        pub db_url: Option<String>,
        _dir: Option<tempfile::TempDir>,
        _pg: Option<PgDatabase>,
        _redis: Option<RedisKeys>,
    }

    impl Fixture {
        pub fn primary(&self) -> &Arc<dyn PrimaryStore> {
            self.primary
                .as_ref()
                .expect("this store is no primary store")
        }
    }

    /// The additional session fields every SQL store is opened with.
    pub fn extras() -> Vec<ExtraColumn> {
        [
            ("theme", FieldType::String),
            ("visits", FieldType::Number),
            ("beta", FieldType::Boolean),
        ]
        .into_iter()
        .map(|(name, kind)| ExtraColumn {
            name: name.into(),
            kind,
        })
        .collect()
    }

    pub fn db_settings(url: &str, max_connections: u32) -> DatabaseSettings {
        DatabaseSettings {
            url: url.into(),
            max_connections,
            ..DatabaseSettings::default()
        }
    }

    /// A fresh PostgreSQL database, dropped (with its connections) when this value is.
    pub struct PgDatabase {
        pub name: String,
        pub url: String,
    }

    impl PgDatabase {
        pub async fn create() -> Self {
            let admin = pg_admin_url();
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL unreachable at {admin} ({e}); `--skip postgres` leaves it out"
                    )
                });
            let name = format!("sessiond_store_{}", generate_id().to_lowercase());
            sqlx::query(&format!("create database {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            let (base, _) = admin.rsplit_once('/').unwrap();
            Self {
                url: format!("{base}/{name}"),
                name,
            }
        }
    }

    impl Drop for PgDatabase {
        fn drop(&mut self) {
            let stmt = format!("drop database if exists {} with (force)", self.name);
            on_own_runtime(async move {
                if let Ok(mut c) = sqlx::PgConnection::connect(&pg_admin_url()).await {
                    let _ = sqlx::query(&stmt).execute(&mut c).await;
                }
            });
        }
    }

    /// The keys under a prefix, deleted when this value is dropped.
    pub struct RedisKeys(String);

    impl Drop for RedisKeys {
        fn drop(&mut self) {
            let pattern = format!("{}*", self.0);
            on_own_runtime(async move {
                let Ok(client) = ::redis::Client::open(redis_url()) else {
                    return;
                };
                let Ok(mut c) = client.get_multiplexed_async_connection().await else {
                    return;
                };
                let keys: Vec<String> = ::redis::cmd("KEYS")
                    .arg(pattern)
                    .query_async(&mut c)
                    .await
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<i64, _> =
                        ::redis::cmd("DEL").arg(&keys).query_async(&mut c).await;
                }
            });
        }
    }

    /// Runs clean-up outside the test's runtime (drops happen in sync code).
    fn on_own_runtime(f: impl std::future::Future<Output = ()> + Send + 'static) {
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f)
        })
        .join();
    }

    fn plain(store: Arc<dyn PrimaryStore>) -> Fixture {
        Fixture {
            store: store.clone(),
            primary: Some(store),
            db_url: None,
            _dir: None,
            _pg: None,
            _redis: None,
        }
    }

    pub async fn memory() -> Fixture {
        plain(Arc::new(MemoryStore::new()))
    }

    pub async fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let connected = connect(&db_settings(&url, 4), dir.path(), extras(), true)
            .await
            .unwrap();
        Fixture {
            db_url: Some(url),
            _dir: Some(dir),
            ..plain(connected.store)
        }
    }

    pub async fn postgres() -> Fixture {
        let pg = PgDatabase::create().await;
        let dir = tempfile::tempdir().unwrap();
        let connected = connect(&db_settings(&pg.url, 4), dir.path(), extras(), true)
            .await
            .unwrap();
        Fixture {
            db_url: Some(pg.url.clone()),
            _dir: Some(dir),
            _pg: Some(pg),
            ..plain(connected.store)
        }
    }

    async fn redis_around_sqlite(store_in_db: bool, preserve_in_db: bool) -> Fixture {
        let mut f = sqlite().await;
        let prefix = format!("sessiond-store-{}:", generate_id());
        let opts = RedisOptions {
            prefix: prefix.clone(),
            store_in_db,
            preserve_in_db,
        };
        let url = redis_url();
        let primary = f.primary.take().unwrap();
        let store = RedisStore::connect(&url, primary, opts)
            .await
            .unwrap_or_else(|e| {
                panic!("Redis unreachable at {url} ({e}); `--skip redis` leaves it out")
            });
        f.store = Arc::new(store);
        f._redis = Some(RedisKeys(prefix));
        f
    }

    pub async fn redis() -> Fixture {
        redis_around_sqlite(false, false).await
    }

    pub async fn redis_db() -> Fixture {
        redis_around_sqlite(true, true).await
    }
}

/// Records and the time the contract tests run at.
mod records {
    use super::*;

    /// The tests' "now": a month before the wall clock, so that a store reading the time
    /// itself instead of taking it from the caller would see every session expired (Redis
    /// would not even write them) and fail.
    pub fn start() -> DateTime<Utc> {
        SystemClock.now() - Duration::days(30)
    }

    pub fn user(now: DateTime<Utc>) -> User {
        User {
            id: generate_id(),
            name: "Ada".into(),
            email: format!("{}@example.com", generate_id().to_lowercase()),
            email_verified: false,
            image: None,
            created_at: now,
            updated_at: now,
            extra: Map::new(),
        }
    }

    pub fn account(hash: &str) -> NewCredentialAccount {
        NewCredentialAccount {
            id: generate_id(),
            password_hash: hash.into(),
        }
    }

    /// A session of `user` created at `created`, expiring `ttl` later.
    pub fn session(user: &User, created: DateTime<Utc>, ttl: Duration) -> Session {
        Session {
            id: generate_id(),
            token: generate_id(),
            user_id: user.id.clone(),
            expires_at: created + ttl,
            created_at: created,
            updated_at: created,
            ip_address: Some("203.0.113.7".into()),
            user_agent: Some("conformance".into()),
            extra: [
                ("theme", Value::Null),
                ("visits", Value::Null),
                ("beta", Value::Null),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        }
    }

    pub fn hour() -> Duration {
        Duration::hours(1)
    }

    /// A user written with its credential account and no session.
    pub async fn signed_up(store: &dyn Store, now: DateTime<Utc>) -> User {
        let u = user(now);
        store
            .create_user(&u, &account("hash-1"), None, now)
            .await
            .unwrap();
        u
    }

    /// A user written with its credential account and its first session.
    pub async fn signed_up_with_session(store: &dyn Store, now: DateTime<Utc>) -> (User, Session) {
        let u = user(now);
        let s = session(&u, now, hour());
        store
            .create_user(&u, &account("hash-1"), Some(&s), now)
            .await
            .unwrap();
        (u, s)
    }

    /// `n` sessions of `u`, created a second apart from `now` on.
    pub async fn sessions(store: &dyn Store, u: &User, now: DateTime<Utc>, n: i64) -> Vec<Session> {
        let mut out = Vec::new();
        for i in 0..n {
            let s = session(u, now + Duration::seconds(i), hour());
            store.create_session(&s, now).await.unwrap();
            out.push(s);
        }
        out
    }

    /// A user with `n` sessions, next to another user with one session.
    pub struct Neighbours {
        pub u: User,
        pub mine: Vec<Session>,
        pub other: User,
        pub theirs: Vec<Session>,
    }

    pub async fn neighbours(store: &dyn Store, now: DateTime<Utc>, n: i64) -> Neighbours {
        let u = signed_up(store, now).await;
        let other = signed_up(store, now).await;
        let mine = sessions(store, &u, now, n).await;
        let theirs = sessions(store, &other, now, 1).await;
        Neighbours {
            u,
            mine,
            other,
            theirs,
        }
    }

    impl Neighbours {
        /// Asserts that the other user's session is as it was written.
        pub async fn other_untouched(&self, store: &dyn Store, now: DateTime<Utc>) {
            let listed = store.list_sessions(&self.other.id, now, 10).await.unwrap();
            assert_eq!(listed, self.theirs);
        }
    }

    pub fn tokens(sessions: &[Session]) -> Vec<String> {
        let mut t: Vec<String> = sessions.iter().map(|s| s.token.clone()).collect();
        t.sort();
        t
    }

    pub fn sorted(mut tokens: Vec<String>) -> Vec<String> {
        tokens.sort();
        tokens
    }
}

/// The contract, one function per test.
mod contract {
    use super::fixture::Fixture;
    use super::records::*;
    use super::*;
    use sessiond::store::{EndTarget, StoreError, Touched};

    pub async fn create_user_writes_user_account_and_first_session(f: &Fixture) {
        let now = start();
        let (u, s) = signed_up_with_session(&*f.store, now).await;
        let found = f.store.user_by_email(&u.email).await.unwrap();
        assert_eq!(found, Some((u.clone(), Some("hash-1".into()))));
        let password = f.store.credential_password(&u.id).await.unwrap();
        assert_eq!(password, Some(Some("hash-1".into())));
        assert_eq!(f.store.find_session(&s.token).await.unwrap(), Some((s, u)));

        let without = signed_up(&*f.store, now).await;
        let listed = f.store.list_sessions(&without.id, now, 10).await.unwrap();
        assert!(listed.is_empty(), "{listed:?}");
    }

    pub async fn create_user_refuses_a_taken_email(f: &Fixture) {
        let now = start();
        let first = signed_up(&*f.store, now).await;
        let second = User {
            email: first.email.clone(),
            ..user(now)
        };
        let s = session(&second, now, hour());
        let res = f
            .store
            .create_user(&second, &account("hash-2"), Some(&s), now)
            .await;
        assert!(matches!(res, Err(StoreError::Conflict)), "{res:?}");
        // Nothing of the refused user was written.
        let found = f.store.user_by_email(&first.email).await.unwrap();
        assert_eq!(found.map(|(u, _)| u.id), Some(first.id));
        assert_eq!(f.store.credential_password(&second.id).await.unwrap(), None);
        assert_eq!(f.store.find_session(&s.token).await.unwrap(), None);
    }

    pub async fn unknown_users_read_as_none(f: &Fixture) {
        let now = start();
        let id = generate_id();
        let email = format!("{}@example.com", id.to_lowercase());
        assert_eq!(f.store.user_by_email(&email).await.unwrap(), None);
        assert_eq!(f.store.credential_password(&id).await.unwrap(), None);
        f.store.set_password(&id, "hash-x", now).await.unwrap();
        assert_eq!(f.store.credential_password(&id).await.unwrap(), None);
        let updated = f
            .store
            .update_user(&id, Some("x"), None, now)
            .await
            .unwrap();
        assert_eq!(updated, None);
    }

    pub async fn set_password_replaces_the_credential_password(f: &Fixture) {
        let now = start();
        let u = signed_up(&*f.store, now).await;
        let other = signed_up(&*f.store, now).await;
        f.store
            .set_password(&u.id, "hash-2", now + hour())
            .await
            .unwrap();
        let password = f.store.credential_password(&u.id).await.unwrap();
        assert_eq!(password, Some(Some("hash-2".into())));
        let found = f.store.user_by_email(&u.email).await.unwrap();
        assert_eq!(found.and_then(|(_, p)| p).as_deref(), Some("hash-2"));
        let untouched = f.store.credential_password(&other.id).await.unwrap();
        assert_eq!(untouched, Some(Some("hash-1".into())));
    }

    pub async fn update_user_changes_name_and_image_everywhere(f: &Fixture) {
        let now = start();
        let (u, first) = signed_up_with_session(&*f.store, now).await;
        let second = sessions(&*f.store, &u, now, 1).await.remove(0);
        let later = now + Duration::seconds(5);
        let updated = f
            .store
            .update_user(
                &u.id,
                Some("Grace"),
                Some(Some("https://img.example/g")),
                later,
            )
            .await
            .unwrap()
            .unwrap();
        let expected = User {
            name: "Grace".into(),
            image: Some("https://img.example/g".into()),
            updated_at: later,
            ..u.clone()
        };
        assert_eq!(updated, expected);
        // Every session's user is the new one (Redis keeps a copy next to each session).
        for s in [&first, &second] {
            let (_, user) = f.store.find_session(&s.token).await.unwrap().unwrap();
            assert_eq!(user, expected);
        }
        let cleared = f
            .store
            .update_user(&u.id, None, Some(None), later)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((cleared.name.as_str(), cleared.image), ("Grace", None));
        let found = f.store.user_by_email(&u.email).await.unwrap().unwrap().0;
        assert_eq!(found.image, None);
    }

    pub async fn find_session_returns_the_session_and_its_user(f: &Fixture) {
        let now = start();
        let u = signed_up(&*f.store, now).await;
        let s = sessions(&*f.store, &u, now, 1).await.remove(0);
        assert_eq!(
            f.store.find_session(&s.token).await.unwrap(),
            Some((s.clone(), u))
        );
        assert_eq!(f.store.find_session(&generate_id()).await.unwrap(), None);
        // A session id is not a token.
        assert_eq!(f.store.find_session(&s.id).await.unwrap(), None);
    }

    pub async fn touch_session_refreshes_only_when_due(f: &Fixture) {
        let now = start();
        let u = signed_up(&*f.store, now).await;
        let s = sessions(&*f.store, &u, now, 1).await.remove(0);
        let at = now + Duration::seconds(10);
        let new_expiry = at + Duration::hours(3);

        // Not due yet: its expiry (now + 1h) is past `due_by`.
        let t = f
            .store
            .touch_session(&s.token, new_expiry, at, now + Duration::minutes(30))
            .await
            .unwrap();
        assert!(matches!(t, Touched::AlreadyFresh), "{t:?}");
        let (kept, _) = f.store.find_session(&s.token).await.unwrap().unwrap();
        assert_eq!(kept.expires_at, s.expires_at);

        // Due: refreshed, once.
        let due_by = now + Duration::hours(2);
        let t = f
            .store
            .touch_session(&s.token, new_expiry, at, due_by)
            .await
            .unwrap();
        let Touched::Refreshed(refreshed) = t else {
            panic!("not refreshed: {t:?}")
        };
        let expected = Session {
            expires_at: new_expiry,
            updated_at: at,
            ..s.clone()
        };
        assert_eq!(*refreshed, expected);
        let (found, _) = f.store.find_session(&s.token).await.unwrap().unwrap();
        assert_eq!(found, expected);
        let again = f
            .store
            .touch_session(&s.token, new_expiry + hour(), at, due_by)
            .await
            .unwrap();
        assert!(matches!(again, Touched::AlreadyFresh), "{again:?}");

        // Gone: never existed, or deleted.
        let t = f
            .store
            .touch_session(&generate_id(), new_expiry, at, due_by)
            .await
            .unwrap();
        assert!(matches!(t, Touched::Gone), "{t:?}");
        f.store.delete_session(&s.token, at).await.unwrap();
        let t = f
            .store
            .touch_session(&s.token, new_expiry + hour(), at, new_expiry + hour())
            .await
            .unwrap();
        assert!(matches!(t, Touched::Gone), "{t:?}");
    }

    pub async fn update_session_fields_sets_and_clears_fields(f: &Fixture) {
        let now = start();
        let u = signed_up(&*f.store, now).await;
        let s = sessions(&*f.store, &u, now, 1).await.remove(0);
        let at = now + Duration::seconds(3);
        let set: Map<String, Value> = json!({"theme": "dark", "visits": 3, "beta": true})
            .as_object()
            .cloned()
            .unwrap();
        let updated = f
            .store
            .update_session_fields(&s.token, &set, at)
            .await
            .unwrap()
            .unwrap();
        let mut expected = Session {
            updated_at: at,
            extra: set.clone(),
            ..s.clone()
        };
        assert_eq!(updated, expected);
        let (found, _) = f.store.find_session(&s.token).await.unwrap().unwrap();
        assert_eq!(found, expected);

        let clear = json!({"theme": null}).as_object().cloned().unwrap();
        let updated = f
            .store
            .update_session_fields(&s.token, &clear, at)
            .await
            .unwrap()
            .unwrap();
        expected.extra.insert("theme".into(), Value::Null);
        assert_eq!(updated, expected);

        let missing = f
            .store
            .update_session_fields(&generate_id(), &set, at)
            .await
            .unwrap();
        assert_eq!(missing, None);
    }

    pub async fn delete_session_removes_only_that_session(f: &Fixture) {
        let now = start();
        let u = signed_up(&*f.store, now).await;
        let s = sessions(&*f.store, &u, now, 2).await;
        f.store.delete_session(&s[0].token, now).await.unwrap();
        assert_eq!(f.store.find_session(&s[0].token).await.unwrap(), None);
        assert!(f.store.find_session(&s[1].token).await.unwrap().is_some());
        let listed = f.store.list_sessions(&u.id, now, 10).await.unwrap();
        assert_eq!(listed, vec![s[1].clone()]);
        // Absent is not an error.
        f.store.delete_session(&s[0].token, now).await.unwrap();
        f.store.delete_session(&generate_id(), now).await.unwrap();
    }

    pub async fn delete_user_session_only_for_the_owner(f: &Fixture) {
        let now = start();
        let owner = signed_up(&*f.store, now).await;
        let other = signed_up(&*f.store, now).await;
        let s = sessions(&*f.store, &owner, now, 1).await.remove(0);
        let by_other = f
            .store
            .delete_user_session(&other.id, &s.token, now)
            .await
            .unwrap();
        assert!(!by_other);
        assert!(f.store.find_session(&s.token).await.unwrap().is_some());
        let by_owner = f
            .store
            .delete_user_session(&owner.id, &s.token, now)
            .await
            .unwrap();
        assert!(by_owner);
        assert_eq!(f.store.find_session(&s.token).await.unwrap(), None);
        let twice = f
            .store
            .delete_user_session(&owner.id, &s.token, now)
            .await
            .unwrap();
        assert!(!twice);
    }

    pub async fn delete_user_sessions_removes_every_session_of_the_user(f: &Fixture) {
        let now = start();
        let n = neighbours(&*f.store, now, 3).await;
        let gone = f.store.delete_user_sessions(&n.u.id, now).await.unwrap();
        assert_eq!(sorted(gone), tokens(&n.mine));
        for s in &n.mine {
            assert_eq!(f.store.find_session(&s.token).await.unwrap(), None);
        }
        assert!(f
            .store
            .list_sessions(&n.u.id, now, 10)
            .await
            .unwrap()
            .is_empty());
        n.other_untouched(&*f.store, now).await;
        let again = f.store.delete_user_sessions(&n.u.id, now).await.unwrap();
        assert!(again.is_empty(), "{again:?}");
    }

    pub async fn delete_other_sessions_keeps_one(f: &Fixture) {
        let now = start();
        let n = neighbours(&*f.store, now, 3).await;
        let gone = f
            .store
            .delete_other_sessions(&n.u.id, &n.mine[1].token, now)
            .await
            .unwrap();
        assert_eq!(
            sorted(gone),
            tokens(&[n.mine[0].clone(), n.mine[2].clone()])
        );
        let left = f.store.list_sessions(&n.u.id, now, 10).await.unwrap();
        assert_eq!(left, vec![n.mine[1].clone()]);
        n.other_untouched(&*f.store, now).await;
    }

    pub async fn replace_user_sessions_swaps_old_for_new(f: &Fixture) {
        let now = start();
        let n = neighbours(&*f.store, now, 2).await;
        let at = now + Duration::seconds(30);
        let new = session(&n.u, at, hour());
        let gone = f
            .store
            .replace_user_sessions(&n.u.id, &new, at)
            .await
            .unwrap();
        assert_eq!(sorted(gone), tokens(&n.mine));
        for s in &n.mine {
            assert_eq!(f.store.find_session(&s.token).await.unwrap(), None);
        }
        assert_eq!(
            f.store.find_session(&new.token).await.unwrap(),
            Some((new.clone(), n.u.clone()))
        );
        let listed = f.store.list_sessions(&n.u.id, at, 10).await.unwrap();
        assert_eq!(listed, vec![new]);
        n.other_untouched(&*f.store, at).await;
    }

    /// Stores that can refuse the new session (a database's unique row id): the refusal
    /// leaves the old sessions as they were.
    pub async fn replace_that_fails_changes_nothing(f: &Fixture) {
        let now = start();
        let n = neighbours(&*f.store, now, 2).await;
        let clash = Session {
            id: n.theirs[0].id.clone(),
            ..session(&n.u, now, hour())
        };
        let res = f.store.replace_user_sessions(&n.u.id, &clash, now).await;
        assert!(res.is_err(), "{res:?}");
        assert_eq!(
            f.store.list_sessions(&n.u.id, now, 10).await.unwrap(),
            n.mine
        );
        for s in &n.mine {
            assert!(f.store.find_session(&s.token).await.unwrap().is_some());
        }
        assert_eq!(f.store.find_session(&clash.token).await.unwrap(), None);
    }

    pub async fn list_sessions_is_the_newest_live_ones_oldest_first(f: &Fixture) {
        let now = start();
        let u = signed_up(&*f.store, now).await;
        let other = signed_up(&*f.store, now).await;
        let live = sessions(&*f.store, &u, now, 5).await;
        sessions(&*f.store, &other, now, 2).await;
        // Created last, but expired by the time of listing.
        let short = session(&u, now + Duration::seconds(5), Duration::seconds(60));
        f.store.create_session(&short, now).await.unwrap();
        let at = now + Duration::seconds(120);

        assert_eq!(f.store.list_sessions(&u.id, at, 10).await.unwrap(), live);
        assert_eq!(
            f.store.list_sessions(&u.id, at, 3).await.unwrap(),
            live[2..].to_vec()
        );
        assert!(f
            .store
            .list_sessions(&u.id, at, 0)
            .await
            .unwrap()
            .is_empty());
        // Before it expired, the short session is listed, oldest first by expiry too.
        let before = f.store.list_sessions(&u.id, now, 10).await.unwrap();
        assert_eq!(before.len(), 6);
        assert!(before.contains(&short));
        assert!(f
            .store
            .list_sessions(&generate_id(), at, 10)
            .await
            .unwrap()
            .is_empty());
    }

    /// Every store call opens a span naming the user and session ids it knows, never a
    /// token (a session's bearer secret) or a password hash.
    pub async fn spans_carry_ids_never_secrets(f: &Fixture) {
        use tracing::instrument::WithSubscriber;
        use tracing_subscriber::layer::SubscriberExt;

        let spans = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorder = tracing_subscriber::registry().with(super::spans::Recorder(spans.clone()));
        let now = start();
        let (u, first) = signed_up_with_session(&*f.store, now).await;
        let at = now + Duration::seconds(1);
        let new = session(&u, at, hour());
        let calls = async {
            f.store.find_session(&first.token).await.unwrap();
            let due = now + Duration::hours(2);
            f.store
                .touch_session(&first.token, due, at, due)
                .await
                .unwrap();
            f.store.list_sessions(&u.id, at, 10).await.unwrap();
            f.store
                .delete_user_session(&u.id, &first.token, at)
                .await
                .unwrap();
            f.store
                .replace_user_sessions(&u.id, &new, at)
                .await
                .unwrap();
            f.store.set_password(&u.id, "hash-2", at).await.unwrap();
            f.store.delete_session(&new.token, at).await.unwrap();
        };
        calls.with_subscriber(recorder).await;

        let spans = spans.lock().unwrap().join("\n");
        for expected in [
            format!("list_sessions user_id={:?}", u.id),
            format!(
                "replace_user_sessions user_id={:?} session_id={}",
                u.id, new.id
            ),
            format!("set_password user_id={:?}", u.id),
            "find_session".to_owned(),
            "touch_session".to_owned(),
            "delete_session".to_owned(),
        ] {
            assert!(
                spans.contains(&expected),
                "no span {expected:?} in:\n{spans}"
            );
        }
        for secret in [&first.token, &new.token, "hash-1", "hash-2"] {
            assert!(!spans.contains(secret), "{secret} in a span:\n{spans}");
        }

        // At the default log level (info) the spans are not even created.
        let quiet = Arc::new(std::sync::Mutex::new(Vec::new()));
        let info = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("info"))
            .with(super::spans::Recorder(quiet.clone()));
        let calls = async {
            f.store.find_session(&new.token).await.unwrap();
            f.store.list_sessions(&u.id, at, 10).await.unwrap();
        };
        calls.with_subscriber(info).await;
        let quiet = quiet.lock().unwrap();
        assert!(quiet.is_empty(), "{quiet:?}");
    }

    // ---- PrimaryStore: what the Redis store needs from the database beneath it ----

    pub async fn user_by_id_reads_a_user(f: &Fixture) {
        let now = start();
        let u = signed_up(&*f.store, now).await;
        let p = f.primary();
        assert_eq!(p.user_by_id(&u.id).await.unwrap(), Some(u));
        assert_eq!(p.user_by_id(&generate_id()).await.unwrap(), None);
    }

    pub async fn end_sessions_ends_in_place(f: &Fixture) {
        let now = start();
        let p = f.primary();
        let n = neighbours(&*f.store, now, 3).await;
        let at = now + Duration::seconds(30);

        let ended = p
            .end_sessions(EndTarget::Token(&n.mine[0].token), at)
            .await
            .unwrap();
        assert_eq!(ended, vec![n.mine[0].token.clone()]);
        // Kept, with its expiry set to the moment it ended.
        let (row, _) = f
            .store
            .find_session(&n.mine[0].token)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((row.expires_at, row.updated_at), (at, at));
        let again = p
            .end_sessions(EndTarget::Token(&n.mine[0].token), at)
            .await
            .unwrap();
        assert!(again.is_empty(), "{again:?}");

        let ended = p
            .end_sessions(EndTarget::User(&n.u.id, Some(&n.mine[1].token)), at)
            .await
            .unwrap();
        assert_eq!(ended, vec![n.mine[2].token.clone()]);
        let live = f.store.list_sessions(&n.u.id, at, 10).await.unwrap();
        assert_eq!(live, vec![n.mine[1].clone()]);
        n.other_untouched(&*f.store, at).await;

        // A refresh racing the end must not bring the session back.
        let far = at + Duration::days(2);
        let t = f
            .store
            .touch_session(&n.mine[0].token, far, at, far)
            .await
            .unwrap();
        assert!(matches!(t, Touched::Gone), "{t:?}");
    }

    pub async fn end_and_replace_keeps_the_old_rows_ended(f: &Fixture) {
        let now = start();
        let p = f.primary();
        let u = signed_up(&*f.store, now).await;
        let old = sessions(&*f.store, &u, now, 2).await;
        let at = now + Duration::seconds(30);
        let new = session(&u, at, hour());
        let ended = p
            .end_and_replace_user_sessions(&u.id, &new, at)
            .await
            .unwrap();
        assert_eq!(sorted(ended), tokens(&old));
        for s in &old {
            let (row, _) = f.store.find_session(&s.token).await.unwrap().unwrap();
            assert_eq!(row.expires_at, at);
        }
        let listed = f.store.list_sessions(&u.id, at, 10).await.unwrap();
        assert_eq!(listed, vec![new]);
    }

    // ---- SQL stores: rows only a database (or a Better Auth app) can hold ----

    pub async fn credential_password_without_password_or_account(f: &Fixture) {
        let now = start();
        let u = signed_up(&*f.store, now).await;
        let url = f.db_url.as_deref().unwrap();
        super::sql::exec(
            url,
            &format!(
                r#"update "account" set "password" = null where "userId" = '{}'"#,
                u.id
            ),
        )
        .await;
        assert_eq!(
            f.store.credential_password(&u.id).await.unwrap(),
            Some(None)
        );
        let found = f.store.user_by_email(&u.email).await.unwrap();
        assert_eq!(found, Some((u.clone(), None)));

        super::sql::exec(
            url,
            &format!(r#"delete from "account" where "userId" = '{}'"#, u.id),
        )
        .await;
        assert_eq!(f.store.credential_password(&u.id).await.unwrap(), None);
        let found = f.store.user_by_email(&u.email).await.unwrap();
        assert_eq!(found, Some((u, None)));
    }
}

/// Spans as a subscriber sees them.
mod spans {
    use std::fmt::Write;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id};
    use tracing::Subscriber;
    use tracing_subscriber::layer::{Context, Layer};

    /// Records each new span as `name field=value …`.
    pub struct Recorder(pub Arc<Mutex<Vec<String>>>);

    struct Fields(String);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    impl<S: Subscriber> Layer<S> for Recorder {
        fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
            let mut fields = Fields(attrs.metadata().name().to_owned());
            attrs.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
    }
}

/// Raw SQL, for rows the store interface cannot write.
mod sql {
    use sqlx::Connection;

    pub async fn exec(url: &str, stmt: &str) {
        if url.starts_with("postgres") {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(stmt).execute(&mut c).await.unwrap();
        } else {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query(stmt).execute(&mut c).await.unwrap();
        }
    }
}

/// One test per contract function, on the store `$fixture` builds.
macro_rules! contract_tests {
    ($fixture:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let f = $fixture().await;
                crate::store_conformance::contract::$name(&f).await;
            }
        )*
    };
}

/// The whole contract over each named store (a function of [`fixture`]).
macro_rules! conformance {
    ($($store:ident),* $(,)?) => {
        $(
            mod $store {
                contract_tests!(crate::store_conformance::fixture::$store;
                    create_user_writes_user_account_and_first_session,
                    create_user_refuses_a_taken_email,
                    unknown_users_read_as_none,
                    set_password_replaces_the_credential_password,
                    update_user_changes_name_and_image_everywhere,
                    find_session_returns_the_session_and_its_user,
                    touch_session_refreshes_only_when_due,
                    update_session_fields_sets_and_clears_fields,
                    delete_session_removes_only_that_session,
                    delete_user_session_only_for_the_owner,
                    delete_user_sessions_removes_every_session_of_the_user,
                    delete_other_sessions_keeps_one,
                    replace_user_sessions_swaps_old_for_new,
                    list_sessions_is_the_newest_live_ones_oldest_first,
                    spans_carry_ids_never_secrets,
                );
            }
        )*
    };
}

conformance!(memory, sqlite, postgres, redis, redis_db);

/// The PrimaryStore contract, over the stores that can sit beneath Redis.
mod primary {
    macro_rules! primary_conformance {
        ($($store:ident),* $(,)?) => {
            $(
                mod $store {
                    contract_tests!(crate::store_conformance::fixture::$store;
                        user_by_id_reads_a_user,
                        end_sessions_ends_in_place,
                        end_and_replace_keeps_the_old_rows_ended,
                    );
                }
            )*
        };
    }
    primary_conformance!(memory, sqlite, postgres);
}

/// What only stores over a database hold (Redis: around SQLite).
mod database {
    macro_rules! database_conformance {
        ($($store:ident),* $(,)?) => {
            $(
                mod $store {
                    contract_tests!(crate::store_conformance::fixture::$store;
                        replace_that_fails_changes_nothing,
                        credential_password_without_password_or_account,
                    );
                }
            )*
        };
    }
    database_conformance!(sqlite, postgres);

    mod redis {
        contract_tests!(crate::store_conformance::fixture::redis; credential_password_without_password_or_account);
    }

    mod redis_db {
        contract_tests!(crate::store_conformance::fixture::redis_db;
            replace_that_fails_changes_nothing,
            credential_password_without_password_or_account,
        );
    }
}

/// Opening a database: how many connections it may hold, and its additional columns.
mod startup {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

    use sessiond::store::feed::{Announcement, Listener};
    use sessiond::store::sql::{split_connections, Connected};
    use sqlx::Connection;

    use super::fixture::{db_settings, extras, pg_admin_url, PgDatabase};
    use super::records::*;
    use super::*;

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
        let mut admin = sqlx::PgConnection::connect(&pg_admin_url()).await.unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicI64::new(0));
        let sampler = {
            let (done, peak, db) = (done.clone(), peak.clone(), db.to_owned());
            tokio::spawn(async move {
                loop {
                    let n: i64 = sqlx::query_scalar(
                        "select count(*) from pg_stat_activity where datname = $1",
                    )
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
                    let s = session(&u, now, hour());
                    store.create_session(&s, now).await.unwrap();
                    assert!(store.find_session(&s.token).await.unwrap().is_some());
                    let due = now + Duration::hours(2);
                    store.touch_session(&s.token, due, now, due).await.unwrap();
                    store.list_sessions(&u.id, now, 10).await.unwrap();
                    let name = format!("user {i}");
                    store
                        .update_user(&u.id, Some(&name), None, now)
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
        let pg = PgDatabase::create().await;
        let connected = open(&pg.url, 4).await;
        sessiond::store::feed::spawn_pg(connected.pg_pool.clone().unwrap(), Arc::new(Deaf));
        let peak = peak_connections(&pg.name, load(connected.store.clone(), 16)).await;
        assert!(peak <= 4, "{peak} connections open, 4 allowed");
        // The load did reach the limit: the check above could have failed.
        assert!(peak >= 3, "only {peak} connections used");

        // One connection: the hot reads borrow it from the pool.
        let pg = PgDatabase::create().await;
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
        connect(&settings, dir.path(), Vec::new(), true)
            .await
            .unwrap();
        let refused = connect(&settings, dir.path(), extras(), false).await;
        let err = refused
            .err()
            .expect("started without the columns")
            .to_string();
        assert!(err.contains(r#""theme", "visits", "beta""#), "{err}");
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
        let pg = PgDatabase::create().await;
        extra_columns_follow_migrate_on_start(&pg.url).await;
    }
}
