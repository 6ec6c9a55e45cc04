//! `session.max_per_user` over Redis (see [`crate::store::limit`]).
//!
//! Sessions in Redis only: one script counts, deletes the surplus and writes the new
//! session, so concurrent sign-ins on any replica take turns. The ended tokens' hashes are
//! announced right after the script by the replica that ran it (Redis's Lua has no
//! SHA-256); a replica that dies in between leaves them to the keyspace-event feed.
//!
//! Sessions in the database too: the database's transaction decides (it holds every
//! session and locks per user), then one script drops the ended sessions from Redis,
//! marking them ended, and writes the new one unless it is marked ended itself.

use chrono::{DateTime, Utc};
use redis::AsyncCommands;

use super::values::{stored_value, ttl_secs};
use super::RedisStore;
use crate::model::Session;
use crate::store::feed::token_hash;
use crate::store::limit::{Capped, Overflow, SessionCap};
use crate::store::redis_feed::channel;
use crate::store::StoreError;

impl RedisStore {
    /// [`crate::store::SessionStore::create_session_capped`] for this store.
    pub(super) async fn insert_capped(
        &self,
        session: &mut Session,
        cap: SessionCap,
        now: DateTime<Utc>,
    ) -> Result<Capped, StoreError> {
        let now_ms = now.timestamp_millis();
        if self.opts.store_in_db {
            let decided = if self.opts.preserve_in_db {
                self.primary
                    .end_and_create_session_capped(session, cap, now)
                    .await?
            } else {
                self.primary
                    .create_session_capped(session, cap, now)
                    .await?
            };
            if let Capped::Created(gone) = &decided {
                // One script: a concurrent sign-in whose transaction came later may have
                // ended this session already, and its script run first.
                let user = self.owner(session).await?;
                self.replace_in_redis(&session.user_id, session, &user, gone, now_ms)
                    .await?;
            }
            return Ok(decided);
        }
        if session.id.is_empty() {
            session.id = crate::crypto::token::generate_id();
        }
        let user = self.owner(session).await?;
        let ttl = ttl_secs(session.expires_at, now_ms);
        if ttl <= 0 {
            return Ok(Capped::Created(Vec::new()));
        }
        let mut c = self.conn.clone();
        let gone: Option<Vec<String>> = self
            .capped_script
            .key(self.list_key(&session.user_id))
            .key(self.key(&session.token))
            .arg(now_ms)
            .arg(&session.token)
            .arg(session.expires_at.timestamp_millis())
            .arg(stored_value(session, &user))
            .arg(ttl)
            .arg(cap.max)
            .arg(if cap.overflow == Overflow::Refuse {
                "1"
            } else {
                "0"
            })
            .arg(&self.opts.prefix)
            .invoke_async(&mut c)
            .await?;
        let Some(gone) = gone else {
            return Ok(Capped::Refused);
        };
        for t in &gone {
            let _: i64 = c
                .publish(channel(&self.opts.prefix), hex::encode(token_hash(t)))
                .await?;
        }
        Ok(Capped::Created(gone))
    }
}
