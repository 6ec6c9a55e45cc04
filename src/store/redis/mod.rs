//! Better Auth's `secondaryStorage` on Redis, wrapped around the SQL store.
//!
//! Key layout and TTLs are Better Auth's, so a Better Auth app sharing the Redis reads
//! what sessiond writes and the reverse:
//! - `<prefix><token>` → `{"session": {…}, "user": {…}}` (ISO dates), TTL = whole seconds
//!   until `expiresAt`;
//! - `<prefix>active-sessions-<userId>` → `[{"token", "expiresAt": ms}, …]` ascending,
//!   expired entries pruned, TTL = seconds until the furthest expiry, deleted when empty.
//!
//! Users and accounts always live in the database. Sessions live only in Redis, unless
//! `store_session_in_database` (then also in the database; reads fall back to it on a
//! Redis miss or outage unless `preserve_session_in_database`, which ends revoked rows
//! in place instead of deleting them).
//!
//! Revocation is atomic per session: one script deletes the token key and its list entry
//! together, and refreshes and updates are compare-and-set, so a refresh racing a
//! revocation can never bring the session back. Every revocation is announced on
//! `<prefix>sessiond:revoked` for the other replicas' cookie-cache deny sets, by the same
//! script that deletes the keys: one never happens without the other.
//!
//! Here: the store and its building blocks; [`ops`]: the store traits; [`capped`]:
//! `session.max_per_user`; [`scripts`]: the Lua scripts; [`values`]: stored values and
//! list entries.

mod capped;
mod ops;
mod scripts;
mod values;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redis::{AsyncCommands, Script, ScriptInvocation};

use self::scripts::{CAPPED_SCRIPT, CAS_SCRIPT, LIST_SCRIPT, REPLACE_SCRIPT, REVOKE_SCRIPT};
use self::values::{merge, parse_value, stored_value, ttl_secs, ListEntry};
use super::feed::{token_hash, Listener};
use super::redis_conn::{RedisConn, RedisTarget, Timeouts};
use super::redis_feed::channel;
use super::{EndTarget, PrimaryStore, StoreError};
use crate::config::KeyspaceNotifications;
use crate::model::{Session, User};

/// Redis settings for the secondary store.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Prefix of every key (Better Auth core: none; `@better-auth/redis-storage`:
    /// `better-auth:`).
    pub prefix: String,
    /// Also keep sessions in the database.
    pub store_in_db: bool,
    /// End revoked database rows in place instead of deleting them.
    pub preserve_in_db: bool,
    /// How long a session ended alongside a write stays marked ended (s): longer than a
    /// request may take from its database transaction to its Redis script, so that a
    /// session a later transaction ended is not written back by a slower request.
    pub ended_mark_secs: u64,
}

/// The secondary store.
pub struct RedisStore {
    primary: Arc<dyn PrimaryStore>,
    target: RedisTarget,
    conn: RedisConn,
    opts: RedisOptions,
    list_script: Script,
    replace_script: Script,
    revoke_script: Script,
    cas_script: Script,
    capped_script: Script,
}

impl RedisStore {
    /// Connects to Redis (auto-reconnecting, following failovers) around `primary`.
    pub async fn connect(
        target: RedisTarget,
        primary: Arc<dyn PrimaryStore>,
        opts: RedisOptions,
    ) -> Result<Self, StoreError> {
        let conn = RedisConn::connect(&target, STORE_TIMEOUTS).await?;
        Ok(Self {
            primary,
            target,
            conn,
            opts,
            list_script: Script::new(LIST_SCRIPT),
            replace_script: Script::new(REPLACE_SCRIPT),
            revoke_script: Script::new(REVOKE_SCRIPT),
            cas_script: Script::new(CAS_SCRIPT),
            capped_script: Script::new(CAPPED_SCRIPT),
        })
    }

    /// Starts the revocation feed on this Redis, on connections of its own: the
    /// subscriber, and the watchdog that checks (and in `configure` mode sets) keyspace
    /// notifications (see [`super::redis_feed`]).
    pub async fn follow_revocations(
        &self,
        mode: KeyspaceNotifications,
        listener: Arc<dyn Listener>,
    ) -> Result<(), StoreError> {
        let conn = RedisConn::connect(&self.target, FEED_TIMEOUTS).await?;
        super::redis_feed::spawn(
            self.target.clone(),
            conn,
            self.opts.prefix.clone(),
            mode,
            listener,
        );
        Ok(())
    }

    fn key(&self, token: &str) -> String {
        format!("{}{token}", self.opts.prefix)
    }

    fn ended_key(&self, token: &str) -> String {
        format!("{}ended:{token}", self.opts.prefix)
    }

    fn list_key(&self, user_id: &str) -> String {
        format!("{}active-sessions-{user_id}", self.opts.prefix)
    }

    /// Whether Redis takes writes and deletes, as sign-in and sign-out need: a `PING`
    /// answers on a replica left behind by a failover (`READONLY`), a full one (`OOM`) and
    /// under an access rule that forbids deletes (`NOPERM`).
    async fn writable(&self) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let key = format!("{}sessiond:ready", self.opts.prefix);
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("PX")
            .arg(60_000)
            .query_async(&mut c)
            .await?;
        let _: i64 = redis::cmd("DEL").arg(&key).query_async(&mut c).await?;
        Ok(())
    }

    fn falls_back_to_db(&self) -> bool {
        self.opts.store_in_db && !self.opts.preserve_in_db
    }

    /// Reads a key; once more on a fresh connection when the pooled one was closed
    /// under it (Redis's `timeout`, a NAT dropping idle flows), so that an idle
    /// replica's first request is not a 503.
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut c = self.conn.clone();
        match c.get(key).await {
            Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                let mut c = self.conn.clone();
                Ok(c.get(key).await?)
            }
            other => Ok(other?),
        }
    }

    async fn list_tokens(&self, user_id: &str, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let raw = self.get(&self.list_key(user_id)).await?;
        let entries: Vec<ListEntry> = raw
            .and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or_default();
        let mut seen = std::collections::HashSet::with_capacity(entries.len());
        Ok(entries
            .into_iter()
            .filter(|e| e.expires_at > now_ms as f64 && seen.insert(e.token.clone()))
            .map(|e| e.token)
            .collect())
    }

    /// The user a session belongs to, for the snapshot stored next to it.
    async fn owner(&self, s: &Session) -> Result<User, StoreError> {
        self.primary
            .user_by_id(&s.user_id)
            .await?
            .ok_or_else(|| StoreError::Backend("session for an unknown user".into()))
    }

    /// Writes a new session: list entry, then the token key (Better Auth's order).
    async fn write_new(&self, s: &Session, user: &User, now_ms: i64) -> Result<(), StoreError> {
        let ttl = ttl_secs(s.expires_at, now_ms);
        if ttl <= 0 {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let key = self.key(&s.token);
        let _: () = c.set_ex(&key, stored_value(s, user), ttl as u64).await?;
        self.list_add(&mut c, s, now_ms).await
    }

    /// Puts a session's entry in its user's list (while its key exists), with its expiry.
    async fn list_add(
        &self,
        c: &mut RedisConn,
        s: &Session,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let _: i64 = self
            .list_script
            .key(self.list_key(&s.user_id))
            .key(self.key(&s.token))
            .arg(now_ms)
            .arg("add")
            .arg(&s.token)
            .arg(s.expires_at.timestamp_millis())
            .invoke_async(c)
            .await?;
        Ok(())
    }

    /// Deletes sessions of one user from Redis atomically and announces them.
    #[tracing::instrument(level = "debug", name = "notify", skip_all)]
    async fn revoke_in_redis(
        &self,
        user_id: &str,
        tokens: &[String],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        if tokens.is_empty() {
            return Ok(0);
        }
        let mut c = self.conn.clone();
        let mut inv = self.revoke_script.key(self.list_key(user_id));
        inv.arg(now_ms).arg(channel(&self.opts.prefix));
        self.revoking(&mut inv, tokens);
        let deleted: u64 = inv.invoke_async(&mut c).await?;
        Ok(deleted)
    }

    /// Ends `old` and writes `new` in one script ([`scripts::REPLACE_SCRIPT`]): `new` is
    /// not written when it was itself ended meanwhile.
    async fn replace_in_redis(
        &self,
        user_id: &str,
        new: &Session,
        user: &User,
        old: &[String],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let mut inv = self.replace_script.key(self.list_key(user_id));
        inv.key(self.key(&new.token))
            .key(self.ended_key(&new.token))
            .arg(now_ms)
            .arg(channel(&self.opts.prefix))
            .arg(&new.token)
            .arg(new.expires_at.timestamp_millis())
            .arg(stored_value(new, user))
            .arg(ttl_secs(new.expires_at, now_ms))
            .arg(self.opts.ended_mark_secs);
        for t in old {
            inv.key(self.key(t)).key(self.ended_key(t));
            inv.arg(t).arg(hex::encode(token_hash(t)));
        }
        let _written: i64 = inv.invoke_async(&mut c).await?;
        Ok(())
    }

    /// Adds the sessions a script revokes to its call: each token's key after the keys
    /// given so far, each token and its hash (what is announced) after the arguments.
    fn revoking(&self, inv: &mut ScriptInvocation<'_>, tokens: &[String]) {
        for t in tokens {
            inv.key(self.key(t));
            inv.arg(t).arg(hex::encode(token_hash(t)));
        }
    }

    /// Revokes every session of a user (but `keep`): the list is snapshotted first, so a
    /// session created after it (a replacement session) survives; the database rows are
    /// deleted or ended as configured; then the Redis keys go, atomically.
    async fn revoke_user(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let now_ms = now.timestamp_millis();
        let mut tokens: Vec<String> = self
            .list_tokens(user_id, now_ms)
            .await?
            .into_iter()
            .filter(|t| Some(t.as_str()) != keep)
            .collect();
        if self.opts.store_in_db {
            let db = match (self.opts.preserve_in_db, keep) {
                (true, _) => {
                    self.primary
                        .end_sessions(EndTarget::User(user_id, keep), now)
                        .await?
                }
                (false, None) => self.primary.delete_user_sessions(user_id, now).await?,
                (false, Some(k)) => self.primary.delete_other_sessions(user_id, k, now).await?,
            };
            merge(&mut tokens, db);
        }
        self.revoke_in_redis(user_id, &tokens, now_ms).await?;
        Ok(tokens)
    }

    /// Writes a session and its user to `key` for `ttl` seconds, only if the key still
    /// holds `raw` (compare-and-set); whether it did.
    async fn swap(
        &self,
        c: &mut RedisConn,
        key: &str,
        raw: &str,
        (session, user): (&Session, &User),
        ttl: i64,
    ) -> Result<bool, StoreError> {
        let swapped: i64 = self
            .cas_script
            .key(key)
            .arg(raw)
            .arg(stored_value(session, user))
            .arg(ttl)
            .invoke_async(c)
            .await?;
        Ok(swapped == 1)
    }

    /// Applies `change` to a stored session by compare-and-set, retried while other writers
    /// win (up to [`MAX_SWAP_ATTEMPTS`]); `None` when the session is gone.
    async fn modify(
        &self,
        token: &str,
        now_ms: i64,
        change: impl Fn(&mut Session, &mut User),
    ) -> Result<Option<(Session, User)>, StoreError> {
        let key = self.key(token);
        // Each lost swap means another writer got there first; with n writers at once every
        // one wins within n rounds. Past the bound the store is "busy" (503), never "gone",
        // which would sign the client out.
        for _ in 0..MAX_SWAP_ATTEMPTS {
            let Some(raw) = self.get(&key).await? else {
                return Ok(None);
            };
            let Some((mut session, mut user)) = parse_value(&raw) else {
                return Ok(None);
            };
            change(&mut session, &mut user);
            let ttl = ttl_secs(session.expires_at, now_ms);
            if ttl <= 0 {
                return Ok(Some((session, user)));
            }
            let mut c = self.conn.clone();
            if self
                .swap(&mut c, &key, &raw, (&session, &user), ttl)
                .await?
            {
                return Ok(Some((session, user)));
            }
        }
        Err(StoreError::Unavailable(
            "too many concurrent changes to one session".into(),
        ))
    }
}

/// Requests wait for Redis at most this long before answering 503.
const STORE_TIMEOUTS: Timeouts = Timeouts {
    connect: std::time::Duration::from_secs(2),
    response: std::time::Duration::from_secs(2),
    retries: 2,
};

/// The revocation watchdog's connection (it bounds each look itself): as the store's.
const FEED_TIMEOUTS: Timeouts = STORE_TIMEOUTS;

/// How many times a read-modify-write of one session value is tried before it gives up.
const MAX_SWAP_ATTEMPTS: usize = 32;

/// Every Redis failure means "the store cannot serve now" (503), never "no session":
/// sessiond's commands and scripts are fixed, so what fails is Redis or its set-up — down,
/// a replica after a failover (`READONLY`), full (`OOM`), loading, busy, a rotated password
/// (`NOAUTH`, `WRONGPASS`), an access rule (`NOPERM`, or inside a script "can't run this
/// command"), a cluster moving — and each passes once Redis or its operator is back.
impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError::Unavailable(Box::new(e))
    }
}
