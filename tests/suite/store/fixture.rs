//! Where the stores under test live; every store is built fresh for each test.

use super::*;
use crate::support::{redis_prefix, redis_url, unavailable, PgDb};
use sessiond::store::redis_conn::RedisTarget;

/// A store under test and what it lives in, removed when dropped.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    /// The store as a [`PrimaryStore`], for stores that are one.
    pub primary: Option<Arc<dyn PrimaryStore>>,
    /// The database URL, for SQL stores.
    pub db_url: Option<String>,
    /// The store numbers the sessions whose ids it is left to assign (all but Redis with
    /// sessions in Redis only, which gives them random ids).
    pub numbers_sessions: bool,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgDb>,
    _redis: Option<RedisKeys>,
}

impl Fixture {
    pub fn primary(&self) -> &Arc<dyn PrimaryStore> {
        self.primary
            .as_ref()
            .expect("this store is no primary store")
    }
}

/// The additional columns every SQL store is opened with: one of each type on each table.
pub fn extras() -> Shape {
    let columns = |fields: &[(&str, FieldType)]| {
        fields
            .iter()
            .map(|(name, kind)| ExtraColumn {
                name: (*name).into(),
                kind: *kind,
                required: false,
                default_value: None,
            })
            .collect()
    };
    Shape {
        user: columns(&[
            ("plan", FieldType::String),
            ("credits", FieldType::Number),
            ("vip", FieldType::Boolean),
            ("banExpires", FieldType::Date),
        ]),
        session: columns(&[
            ("theme", FieldType::String),
            ("visits", FieldType::Number),
            ("beta", FieldType::Boolean),
        ]),
        generate_id: GenerateId::Default,
        jwks: false,
        events: false,
        events_refreshed: false,
    }
}

/// [`extras`] with ids the database assigns (`generate_id = "serial"`).
pub fn serial_extras() -> Shape {
    Shape {
        generate_id: GenerateId::Serial,
        ..extras()
    }
}

pub fn db_settings(url: &str, max_connections: u32) -> DatabaseSettings {
    DatabaseSettings {
        url: url.into(),
        max_connections,
        ..DatabaseSettings::default()
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
                let _: Result<i64, _> = ::redis::cmd("DEL").arg(&keys).query_async(&mut c).await;
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
        numbers_sessions: true,
        _dir: None,
        _pg: None,
        _redis: None,
    }
}

pub async fn memory() -> Fixture {
    plain(Arc::new(MemoryStore::new()))
}

pub async fn sqlite() -> Fixture {
    sqlite_shaped(extras()).await
}

pub async fn sqlite_serial() -> Fixture {
    sqlite_shaped(serial_extras()).await
}

async fn sqlite_shaped(shape: Shape) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let connected = connect(&db_settings(&url, 4), dir.path(), shape, true)
        .await
        .unwrap();
    Fixture {
        db_url: Some(url),
        _dir: Some(dir),
        ..plain(connected.store)
    }
}

pub async fn postgres() -> Fixture {
    postgres_shaped(extras()).await
}

pub async fn postgres_serial() -> Fixture {
    postgres_shaped(serial_extras()).await
}

async fn postgres_shaped(shape: Shape) -> Fixture {
    let pg = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let connected = connect(&db_settings(&pg.url, 4), dir.path(), shape, true)
        .await
        .unwrap();
    Fixture {
        db_url: Some(pg.url.clone()),
        _dir: Some(dir),
        _pg: Some(pg),
        ..plain(connected.store)
    }
}

async fn redis_around(mut f: Fixture, store_in_db: bool, preserve_in_db: bool) -> Fixture {
    let prefix = redis_prefix();
    let opts = RedisOptions {
        prefix: prefix.clone(),
        store_in_db,
        preserve_in_db,
        ended_mark_secs: 90,
    };
    let url = redis_url();
    let primary = f.primary.take().unwrap();
    let target = RedisTarget::Single(::redis::Client::open(url.as_str()).unwrap());
    let store = RedisStore::connect(target, primary, opts)
        .await
        .unwrap_or_else(|e| {
            unavailable(
                &format!("Redis at {url} ({e})"),
                "start it, or point TEST_REDIS_URL at one",
            )
        });
    f.store = Arc::new(store);
    f.numbers_sessions = store_in_db;
    f._redis = Some(RedisKeys(prefix));
    f
}

/// Redis Cluster around SQLite, sessions in Redis only, under a hash-tagged prefix of its own.
pub async fn redis_cluster(cluster: &crate::support::cluster::PrivateCluster) -> Fixture {
    let mut f = sqlite().await;
    let prefix = format!("{{{}}}:", generate_id());
    let opts = RedisOptions {
        prefix: prefix.clone(),
        store_in_db: false,
        preserve_in_db: false,
        ended_mark_secs: 90,
    };
    let target = RedisTarget::Cluster(sessiond::store::redis_cluster::ClusterTarget {
        nodes: cluster
            .nodes
            .iter()
            .map(|n| ("127.0.0.1".to_string(), n.port))
            .collect(),
        username: String::new(),
        password: Default::default(),
        slot_key: format!("{prefix}sessiond:slot"),
    });
    let primary = f.primary.take().unwrap();
    f.store = Arc::new(RedisStore::connect(target, primary, opts).await.unwrap());
    f.numbers_sessions = false;
    f
}

pub async fn redis() -> Fixture {
    redis_around(sqlite().await, false, false).await
}

pub async fn redis_db() -> Fixture {
    redis_around(sqlite().await, true, true).await
}

pub async fn redis_serial() -> Fixture {
    redis_around(sqlite_serial().await, false, false).await
}

pub async fn redis_db_serial() -> Fixture {
    redis_around(sqlite_serial().await, true, true).await
}
