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

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use serde_json::{json, Map, Value};

use super::feed::{token_hash, Listener};
use super::redis_feed::channel;
use super::{
    EndTarget, Health, NewCredentialAccount, PrimaryStore, SessionStore, StoreError, Touched,
    UserStore,
};
use crate::config::KeyspaceNotifications;
use crate::model::{Session, SessionJson, User};

/// Lua shared by the scripts that rewrite a user's active-session list: `rewrite_list`
/// keeps the entries that have not expired by `now` (ms), are not in `drop` and are not
/// duplicates, appends `add` (a `{token, expiresAt}`) when given, sorts by expiry and
/// writes the list back with the TTL of the furthest expiry (deleted when empty); it
/// returns how many entries are left.
macro_rules! rewrite_list_lua {
    () => {
        r#"
local function rewrite_list(key, now, drop, add)
  local raw = redis.call('GET', key)
  local list = {}
  if raw then
    local ok, v = pcall(cjson.decode, raw)
    if ok and type(v) == 'table' then list = v end
  end
  local out, seen = {}, {}
  for _, e in ipairs(list) do
    if type(e) == 'table' and type(e.token) == 'string' then
      local exp = tonumber(e.expiresAt)
      if exp and exp > now and not drop[e.token] and not seen[e.token] then
        seen[e.token] = true
        table.insert(out, {token = e.token, expiresAt = exp})
      end
    end
  end
  if add then table.insert(out, add) end
  table.sort(out, function(a, b) return a.expiresAt < b.expiresAt end)
  if #out == 0 then redis.call('DEL', key); return 0 end
  local parts = {}
  for i, e in ipairs(out) do
    parts[i] = '{"token":' .. cjson.encode(e.token) .. ',"expiresAt":' .. string.format('%.0f', e.expiresAt) .. '}'
  end
  local ttl = math.floor((out[#out].expiresAt - now) / 1000)
  if ttl > 0 then
    redis.call('SET', key, '[' .. table.concat(parts, ',') .. ']', 'EX', ttl)
  else
    redis.call('DEL', key)
  end
  return #out
end
"#
    };
}

/// Rewrites a user's active-session list atomically.
/// KEYS[1] list, KEYS[2] token key (for "add": only added while it exists).
/// ARGV[1] now (ms), ARGV[2] "add" | "remove", ARGV[3] token (add) or tokens (remove),
/// ARGV[4] expiresAt (ms, add).
const LIST_SCRIPT: &str = concat!(
    rewrite_list_lua!(),
    r#"
local now = tonumber(ARGV[1])
local drop, add = {}, nil
if ARGV[2] == 'add' then
  drop[ARGV[3]] = true
  local exp = tonumber(ARGV[4])
  if exp > now and (KEYS[2] == nil or redis.call('EXISTS', KEYS[2]) == 1) then
    add = {token = ARGV[3], expiresAt = exp}
  end
else
  for i = 3, #ARGV do drop[ARGV[i]] = true end
end
return rewrite_list(KEYS[1], now, drop, add)
"#
);

/// Replaces a user's sessions in one step: deletes the old token keys and announces each
/// token's hash, writes the new token key, and rewrites the list without the old entries
/// and with the new one.
/// KEYS[1] list, KEYS[2] new token key, KEYS[3..] old token keys; ARGV[1] now (ms),
/// ARGV[2] channel, ARGV[3] new token, ARGV[4] its expiresAt (ms), ARGV[5] its value,
/// ARGV[6] its TTL (s), then for each old key (same order) its token and its token's
/// SHA-256 hex.
const REPLACE_SCRIPT: &str = concat!(
    rewrite_list_lua!(),
    r#"
local now = tonumber(ARGV[1])
local drop = {}
for i = 3, #KEYS do
  redis.call('DEL', KEYS[i])
  drop[ARGV[2 * i + 1]] = true
  redis.call('PUBLISH', ARGV[2], ARGV[2 * i + 2])
end
drop[ARGV[3]] = true
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[6])
return rewrite_list(KEYS[1], now, drop, {token = ARGV[3], expiresAt = tonumber(ARGV[4])})
"#
);

/// Deletes token keys and their list entries in one step, and announces each token's hash.
/// KEYS[1] list, KEYS[2..] token keys; ARGV[1] now, ARGV[2] channel, then for each key (same
/// order) its token and its token's SHA-256 hex.
const REVOKE_SCRIPT: &str = r#"
local deleted = 0
for i = 2, #KEYS do
  deleted = deleted + redis.call('DEL', KEYS[i])
  redis.call('PUBLISH', ARGV[2], ARGV[2 * i])
end
local raw = redis.call('GET', KEYS[1])
if raw then
  local ok, list = pcall(cjson.decode, raw)
  if ok and type(list) == 'table' then
    local drop = {}
    for i = 3, #ARGV, 2 do drop[ARGV[i]] = true end
    local now = tonumber(ARGV[1])
    local parts, last = {}, nil
    for _, e in ipairs(list) do
      local exp = type(e) == 'table' and tonumber(e.expiresAt)
      if exp and exp > now and type(e.token) == 'string' and not drop[e.token] then
        table.insert(parts, '{"token":' .. cjson.encode(e.token) .. ',"expiresAt":' .. string.format('%.0f', exp) .. '}')
        if not last or exp > last then last = exp end
      end
    end
    if #parts == 0 then
      redis.call('DEL', KEYS[1])
    else
      local ttl = math.floor((last - now) / 1000)
      if ttl > 0 then
        redis.call('SET', KEYS[1], '[' .. table.concat(parts, ',') .. ']', 'EX', ttl)
      else
        redis.call('DEL', KEYS[1])
      end
    end
  end
end
return deleted
"#;

/// Sets a key only if it still holds the value read before (compare-and-set).
/// KEYS[1]; ARGV[1] expected, ARGV[2] new value, ARGV[3] TTL (s).
const CAS_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"#;

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
}

/// The secondary store.
pub struct RedisStore {
    primary: Arc<dyn PrimaryStore>,
    client: redis::Client,
    conn: ConnectionManager,
    opts: RedisOptions,
    list_script: Script,
    replace_script: Script,
    revoke_script: Script,
    cas_script: Script,
}

/// Seconds until `at`, floored, never negative (Better Auth's `getTTLSeconds`).
fn ttl_secs(at: DateTime<Utc>, now_ms: i64) -> i64 {
    ((at.timestamp_millis() - now_ms) / 1000).max(0)
}

fn stored_value(session: &Session, user: &User) -> String {
    json!({ "session": SessionJson { session, hidden: &[], schema_order: false, show_token: true }, "user": user })
        .to_string()
}

fn parse_value(raw: &str) -> Option<(Session, User)> {
    let v: Value = serde_json::from_str(raw).ok()?;
    // Better Auth's storage adapters may store the JSON text of the JSON text.
    let v = match v {
        Value::String(inner) => serde_json::from_str(&inner).ok()?,
        other => other,
    };
    let session = Session::from_json(v.get("session")?.as_object()?)?;
    let user = User::from_json(v.get("user")?.as_object()?)?;
    Some((session, user))
}

#[derive(serde::Deserialize)]
struct ListEntry {
    token: String,
    #[serde(rename = "expiresAt")]
    expires_at: f64,
}

/// Adds the tokens of `more` that `tokens` lacks.
fn merge(tokens: &mut Vec<String>, more: Vec<String>) {
    for t in more {
        if !tokens.contains(&t) {
            tokens.push(t);
        }
    }
}

impl RedisStore {
    /// Connects to Redis (auto-reconnecting) around `primary`.
    pub async fn connect(
        url: &str,
        primary: Arc<dyn PrimaryStore>,
        opts: RedisOptions,
    ) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
            .set_response_timeout(Some(std::time::Duration::from_secs(2)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Self {
            primary,
            client,
            conn,
            opts,
            list_script: Script::new(LIST_SCRIPT),
            replace_script: Script::new(REPLACE_SCRIPT),
            revoke_script: Script::new(REVOKE_SCRIPT),
            cas_script: Script::new(CAS_SCRIPT),
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
        let conn = ConnectionManager::new(self.client.clone()).await?;
        super::redis_feed::spawn(
            self.client.clone(),
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
        let _: i64 = self
            .list_script
            .key(self.list_key(&s.user_id))
            .key(&key)
            .arg(now_ms)
            .arg("add")
            .arg(&s.token)
            .arg(s.expires_at.timestamp_millis())
            .invoke_async(&mut c)
            .await?;
        Ok(())
    }

    /// Deletes sessions of one user from Redis atomically and announces them.
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
        for t in tokens {
            inv.key(self.key(t));
        }
        inv.arg(now_ms).arg(channel(&self.opts.prefix));
        for t in tokens {
            inv.arg(t).arg(hex::encode(token_hash(t)));
        }
        let deleted: u64 = inv.invoke_async(&mut c).await?;
        Ok(deleted)
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

    /// Applies `change` to a stored session by compare-and-set (retried once).
    async fn modify(
        &self,
        token: &str,
        now_ms: i64,
        change: impl Fn(&mut Session, &mut User),
    ) -> Result<Option<(Session, User)>, StoreError> {
        let key = self.key(token);
        for _ in 0..2 {
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
            let ok: i64 = self
                .cas_script
                .key(&key)
                .arg(&raw)
                .arg(stored_value(&session, &user))
                .arg(ttl)
                .invoke_async(&mut c)
                .await?;
            if ok == 1 {
                return Ok(Some((session, user)));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Health for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.primary.ping().await?;
        self.writable().await
    }

    async fn health(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("database", self.primary.ping().await.is_ok()),
            ("redis", self.writable().await.is_ok()),
        ]
    }
}

#[async_trait]
impl UserStore for RedisStore {
    async fn create_user(
        &self,
        user: &User,
        account: &NewCredentialAccount,
        session: Option<&Session>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let in_db = session.filter(|_| self.opts.store_in_db);
        self.primary.create_user(user, account, in_db, now).await?;
        if let Some(s) = session {
            self.write_new(s, user, now.timestamp_millis()).await?;
        }
        Ok(())
    }

    async fn user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        self.primary.user_by_email(email).await
    }

    async fn credential_password(
        &self,
        user_id: &str,
    ) -> Result<Option<Option<String>>, StoreError> {
        self.primary.credential_password(user_id).await
    }

    async fn set_password(
        &self,
        user_id: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.primary.set_password(user_id, hash, now).await
    }

    async fn update_user(
        &self,
        user_id: &str,
        name: Option<&str>,
        image: Option<Option<&str>>,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let Some(user) = self.primary.update_user(user_id, name, image, now).await? else {
            return Ok(None);
        };
        // Every cached session of the user carries the new user snapshot.
        let now_ms = now.timestamp_millis();
        for token in self.list_tokens(user_id, now_ms).await? {
            self.modify(&token, now_ms, |_, u| *u = user.clone())
                .await?;
        }
        Ok(Some(user))
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create_session(
        &self,
        session: &Session,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if self.opts.store_in_db {
            self.primary.create_session(session, now).await?;
        }
        let user = self.owner(session).await?;
        self.write_new(session, &user, now.timestamp_millis()).await
    }

    async fn find_session(&self, token: &str) -> Result<Option<(Session, User)>, StoreError> {
        match self.get(&self.key(token)).await {
            Ok(Some(raw)) => Ok(parse_value(&raw)),
            Ok(None) if self.falls_back_to_db() => self.primary.find_session(token).await,
            Ok(None) => Ok(None),
            Err(StoreError::Unavailable(_)) if self.falls_back_to_db() => {
                self.primary.find_session(token).await
            }
            Err(e) => Err(e),
        }
    }

    async fn touch_session(
        &self,
        token: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        due_by: DateTime<Utc>,
    ) -> Result<Touched, StoreError> {
        let key = self.key(token);
        let Some(raw) = self.get(&key).await? else {
            return Ok(Touched::Gone);
        };
        let Some((mut session, user)) = parse_value(&raw) else {
            return Ok(Touched::Gone);
        };
        if session.expires_at > due_by {
            return Ok(Touched::AlreadyFresh);
        }
        session.expires_at = expires_at;
        session.updated_at = now;
        let now_ms = now.timestamp_millis();
        let ttl = ttl_secs(expires_at, now_ms);
        let mut c = self.conn.clone();
        let ok: i64 = self
            .cas_script
            .key(&key)
            .arg(&raw)
            .arg(stored_value(&session, &user))
            .arg(ttl.max(1))
            .invoke_async(&mut c)
            .await?;
        if ok == 0 {
            let exists: bool = c.exists(&key).await?;
            return Ok(if exists {
                Touched::AlreadyFresh
            } else {
                Touched::Gone
            });
        }
        let _: i64 = self
            .list_script
            .key(self.list_key(&session.user_id))
            .key(&key)
            .arg(now_ms)
            .arg("add")
            .arg(token)
            .arg(expires_at.timestamp_millis())
            .invoke_async(&mut c)
            .await?;
        if self.opts.store_in_db {
            // The database row follows; its answer is authoritative, as in Better Auth.
            return match self
                .primary
                .touch_session(token, expires_at, now, due_by)
                .await?
            {
                Touched::Gone => Ok(Touched::Refreshed(Box::new(session))),
                other => Ok(other),
            };
        }
        Ok(Touched::Refreshed(Box::new(session)))
    }

    async fn update_session_fields(
        &self,
        token: &str,
        fields: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let updated = self
            .modify(token, now.timestamp_millis(), |s, _| {
                for (k, v) in fields {
                    s.extra.insert(k.clone(), v.clone());
                }
                s.updated_at = now;
            })
            .await?;
        if self.opts.store_in_db {
            let db = self
                .primary
                .update_session_fields(token, fields, now)
                .await?;
            return Ok(db.or(updated.map(|(s, _)| s)));
        }
        Ok(updated.map(|(s, _)| s))
    }

    async fn delete_session(&self, token: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        if let Some(raw) = self.get(&self.key(token)).await? {
            let user_id = parse_value(&raw).map(|(s, _)| s.user_id);
            match user_id {
                Some(u) => {
                    self.revoke_in_redis(&u, &[token.to_owned()], now.timestamp_millis())
                        .await?;
                }
                None => {
                    // An unreadable value: no owner to update, but announced all the same.
                    let mut c = self.conn.clone();
                    let _: i64 = c.del(self.key(token)).await?;
                    let _: i64 = c
                        .publish(channel(&self.opts.prefix), hex::encode(token_hash(token)))
                        .await?;
                }
            }
        }
        if self.opts.store_in_db {
            if self.opts.preserve_in_db {
                self.primary
                    .end_sessions(EndTarget::Token(token), now)
                    .await?;
            } else {
                self.primary.delete_session(token, now).await?;
            }
        }
        Ok(())
    }

    async fn delete_user_session(
        &self,
        user_id: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        match self.find_session(token).await? {
            Some((s, _)) if s.user_id == user_id => {
                self.delete_session(token, now).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_user_sessions(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        self.revoke_user(user_id, None, now).await
    }

    async fn delete_other_sessions(
        &self,
        user_id: &str,
        keep_token: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        self.revoke_user(user_id, Some(keep_token), now).await
    }

    /// The list is snapshotted first (as in [`Self::revoke_user`]); the database replaces
    /// in one transaction, then one script replaces in Redis. A failure before the script
    /// leaves Redis as it was.
    async fn replace_user_sessions(
        &self,
        user_id: &str,
        new: &Session,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let now_ms = now.timestamp_millis();
        let user = self.owner(new).await?;
        let mut tokens = self.list_tokens(user_id, now_ms).await?;
        if self.opts.store_in_db {
            let db = if self.opts.preserve_in_db {
                self.primary
                    .end_and_replace_user_sessions(user_id, new, now)
                    .await?
            } else {
                self.primary
                    .replace_user_sessions(user_id, new, now)
                    .await?
            };
            merge(&mut tokens, db);
        }
        let ttl = ttl_secs(new.expires_at, now_ms);
        if ttl <= 0 {
            self.revoke_in_redis(user_id, &tokens, now_ms).await?;
            return Ok(tokens);
        }
        let mut c = self.conn.clone();
        let mut inv = self.replace_script.key(self.list_key(user_id));
        inv.key(self.key(&new.token));
        for t in &tokens {
            inv.key(self.key(t));
        }
        inv.arg(now_ms)
            .arg(channel(&self.opts.prefix))
            .arg(&new.token)
            .arg(new.expires_at.timestamp_millis())
            .arg(stored_value(new, &user))
            .arg(ttl);
        for t in &tokens {
            inv.arg(t).arg(hex::encode(token_hash(t)));
        }
        let _: i64 = inv.invoke_async(&mut c).await?;
        Ok(tokens)
    }

    async fn list_sessions(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Session>, StoreError> {
        let mut tokens = match self.list_tokens(user_id, now.timestamp_millis()).await {
            Ok(t) => t,
            Err(StoreError::Unavailable(_)) if self.falls_back_to_db() => {
                return self.primary.list_sessions(user_id, now, limit).await;
            }
            Err(e) => return Err(e),
        };
        // The list is in expiry order: the last ones are the newest.
        tokens.drain(..tokens.len().saturating_sub(limit));
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = tokens.iter().map(|t| self.key(t)).collect();
        let mut c = self.conn.clone();
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut c).await?;
        // Missing or corrupt entries are skipped, never failing the whole list.
        Ok(values
            .into_iter()
            .flatten()
            .filter_map(|raw| parse_value(&raw).map(|(s, _)| s))
            .filter(|s| s.expires_at > now)
            .collect())
    }
}
