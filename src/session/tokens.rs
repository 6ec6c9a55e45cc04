//! Better Auth's jwt plugin: the signing keys of the `jwks` table, the public key set, and
//! JWTs for a session's user, with the plugin's rules:
//!
//! - signing key = the newest key of the configured algorithm (or of any, if none) whose
//!   `expiresAt` is unset or after now; none such ⇒ a new key is made and stored;
//! - published = every key with `expiresAt` unset or `expiresAt + grace_period > now`;
//! - claims = `{iat, …user, sub = user.id, exp = iat + ttl, iss, aud}` (+ `sid`).
//!
//! Unlike Better Auth, which reads the table and signs on every request, the keys are
//! read at most every [`KEY_REFRESH_MS`] and a token is handed out again while it keeps at
//! least four fifths of its lifetime.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::crypto::jwk::{self, SigningJwk};
use crate::crypto::secrets::SecretSet;
use crate::crypto::symmetric;
use crate::store::keys::{JwkRow, KeyStore};
use crate::store::StoreError;

/// Keys are read again from the table at most this often (ms): a key another replica or
/// the Better Auth app made is published and used within this time.
pub const KEY_REFRESH_MS: i64 = 10_000;

/// Tokens remembered at most; beyond, the memory is emptied.
pub const MAX_MINTED: usize = 20_000;

/// Why no token or key set could be made.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// The `jwks` table could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signing key cannot be opened with the configured secrets, or is not a key.
    #[error("the signing key cannot be used: {0}")]
    Key(&'static str),
}

/// What the plugin is configured with.
#[derive(Debug, Clone)]
pub struct JwtOptions {
    /// Algorithm of new keys (and the one preferred for signing).
    pub alg: &'static str,
    /// Curve of new EdDSA keys.
    pub crv: String,
    /// RSA modulus bits.
    pub modulus_bits: u32,
    /// A new key expires this long after it is made (ms); `None`: never.
    pub rotation_ms: Option<i64>,
    /// An expired key stays published this long (ms).
    pub grace_ms: i64,
    /// Private keys are sealed with the secret.
    pub encrypt: bool,
    /// `iss`.
    pub issuer: String,
    /// `aud` unless the caller names one.
    pub audience: String,
    /// Add `sid` (the revocation feed is on).
    pub sid: bool,
    /// How row ids are made.
    pub ids: crate::config::GenerateId,
}

/// The signing key and when it expires, or why it cannot be used.
type Signer = Result<Option<(Arc<SigningJwk>, Option<i64>)>, &'static str>;

/// The keys as last read: every row, the published set and the signing key.
struct Keys {
    read_at: i64,
    rows: Vec<JwkRow>,
    /// A key that does not open (the secret changed) is remembered as such until the next
    /// read: publishing needs no private key, and each request must not retry the table.
    signer: Signer,
    published: Arc<str>,
}

/// The plugin's keys and tokens.
pub struct JwtIssuer {
    store: Arc<dyn KeyStore>,
    secrets: SecretSet,
    clock: Arc<dyn Clock>,
    opts: JwtOptions,
    keys: RwLock<Option<Keys>>,
    /// One reader or maker of keys at a time.
    loading: tokio::sync::Mutex<()>,
    /// Tokens by the hash of what they were minted for (checked in full on a hit).
    minted: Mutex<HashMap<u64, Minted>>,
    hasher: std::hash::RandomState,
}

/// What a token is minted for: a session, the version of its user, an audience, a lifetime.
#[derive(Debug, Clone, Copy, Hash)]
pub struct MintKey<'a> {
    /// The session token.
    pub session: &'a str,
    /// The user's `updatedAt` (ms): a changed user gets a new token.
    pub user_version: i64,
    /// The audience asked for, if not the configured one.
    pub audience: Option<&'a str>,
    /// Lifetime (s).
    pub ttl_secs: u64,
}

/// A [`MintKey`] kept with its token.
struct OwnedKey {
    session: Box<str>,
    user_version: i64,
    audience: Option<Box<str>>,
    ttl_secs: u64,
}

impl OwnedKey {
    fn from(k: &MintKey<'_>) -> Self {
        Self {
            session: k.session.into(),
            user_version: k.user_version,
            audience: k.audience.map(Into::into),
            ttl_secs: k.ttl_secs,
        }
    }

    fn matches(&self, k: &MintKey<'_>) -> bool {
        *self.session == *k.session
            && self.user_version == k.user_version
            && self.audience.as_deref() == k.audience
            && self.ttl_secs == k.ttl_secs
    }
}

/// A token handed out, kept for reuse.
struct Minted {
    key: OwnedKey,
    kid: Arc<str>,
    token: Arc<str>,
    iat_ms: i64,
}

/// The signing key as a caller uses it.
type SignerNow = Result<Option<Arc<SigningJwk>>, &'static str>;

fn signer_now(s: &Signer) -> SignerNow {
    s.as_ref()
        .map(|o| o.as_ref().map(|(k, _)| k.clone()))
        .map_err(|e| *e)
}

fn ms(d: &DateTime<Utc>) -> i64 {
    d.timestamp_millis()
}

impl JwtIssuer {
    /// The issuer over the `jwks` table.
    pub fn new(
        store: Arc<dyn KeyStore>,
        secrets: SecretSet,
        clock: Arc<dyn Clock>,
        opts: JwtOptions,
    ) -> Self {
        Self {
            store,
            secrets,
            clock,
            opts,
            keys: RwLock::new(None),
            loading: tokio::sync::Mutex::new(()),
            minted: Mutex::new(HashMap::new()),
            hasher: std::hash::RandomState::new(),
        }
    }

    /// The options in force.
    pub fn options(&self) -> &JwtOptions {
        &self.opts
    }

    fn read_keys(&self) -> std::sync::RwLockReadGuard<'_, Option<Keys>> {
        match self.keys.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The keys as last read, while recent and their signing key live.
    fn fresh(&self, now: i64) -> Option<(SignerNow, Arc<str>)> {
        let guard = self.read_keys();
        let k = guard.as_ref()?;
        let live = match &k.signer {
            Ok(s) => s
                .as_ref()
                .is_some_and(|(_, exp)| exp.is_none_or(|e| e > now)),
            Err(_) => true,
        };
        (live && now >= k.read_at && now - k.read_at < KEY_REFRESH_MS)
            .then(|| (signer_now(&k.signer), k.published.clone()))
    }

    /// The keys, read again when older than [`KEY_REFRESH_MS`] or when the signing key has
    /// expired (then a new one is made if none is live).
    async fn current(&self) -> Result<(SignerNow, Arc<str>), JwtError> {
        let now = self.clock.now_ms();
        if let Some(fresh) = self.fresh(now) {
            return Ok(fresh);
        }
        let _one = self.loading.lock().await;
        let now = self.clock.now_ms();
        if let Some(fresh) = self.fresh(now) {
            return Ok(fresh);
        }
        let mut rows = self.store.jwks().await?;
        if self.signing_row(&rows, now).is_none() {
            match self.make_key(now).await? {
                Some(row) => rows.push(row),
                // Another replica made one meanwhile: use it.
                None => rows = self.store.jwks().await?,
            }
        }
        // Not `?`: the key set is published even when the signing key does not open, so
        // that verifiers keep checking the tokens already handed out (Better Auth's `/jwks`
        // never opens a private key either).
        let signer: Signer = match self.signing_row(&rows, now) {
            Some(row) => self
                .open(row)
                .map(|k| Some((Arc::new(k), row.expires_at.as_ref().map(ms)))),
            None => Ok(None),
        };
        let published = self.publish(&rows, now);
        let out = (signer_now(&signer), published.clone());
        let mut slot = match self.keys.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *slot = Some(Keys {
            read_at: now,
            rows,
            signer,
            published,
        });
        Ok(out)
    }

    /// The key that signs: the newest live one of the configured algorithm, else the
    /// newest live one.
    fn signing_row<'r>(&self, rows: &'r [JwkRow], now: i64) -> Option<&'r JwkRow> {
        let live = |r: &&JwkRow| r.expires_at.as_ref().is_none_or(|e| ms(e) > now);
        let newest = |a: &&JwkRow, b: &&JwkRow| a.created_at.cmp(&b.created_at);
        let alg = self.opts.alg;
        rows.iter()
            .filter(live)
            .filter(|r| r.alg.as_deref().unwrap_or(alg) == alg)
            .max_by(newest)
            .or_else(|| rows.iter().filter(live).max_by(newest))
    }

    /// Makes, seals and stores a key; `None` when another replica stored a live one first.
    async fn make_key(&self, now: i64) -> Result<Option<JwkRow>, JwtError> {
        let o = &self.opts;
        let pair = jwk::generate(o.alg, &o.crv, o.modulus_bits)
            .map_err(|_| JwtError::Key("cannot make a key of the configured algorithm"))?;
        let private_key = if o.encrypt {
            let sealed = symmetric::seal(&self.secrets, &pair.private)
                .ok_or(JwtError::Key("cannot seal the key"))?;
            // Better Auth stores the sealed string as JSON text.
            Value::String(sealed).to_string()
        } else {
            pair.private.clone()
        };
        let created_at = Utc
            .timestamp_millis_opt(now)
            .single()
            .ok_or(JwtError::Key("the clock is out of range"))?;
        let expires_at = o
            .rotation_ms
            .and_then(|r| Utc.timestamp_millis_opt(now.saturating_add(r)).single());
        let mut row = JwkRow {
            id: match o.ids {
                crate::config::GenerateId::Default => crate::crypto::token::generate_id(),
                crate::config::GenerateId::Uuid => uuid::Uuid::new_v4().to_string(),
                crate::config::GenerateId::Serial => String::new(),
            },
            public_key: pair.public,
            private_key,
            created_at,
            expires_at,
            alg: Some(o.alg.to_owned()),
            crv: pair.crv,
        };
        if !self.store.create_jwk(&mut row).await? {
            return Ok(None);
        }
        tracing::info!(kid = %row.id, alg = o.alg, "made a new JWT signing key");
        Ok(Some(row))
    }

    /// Opens a row's private key.
    fn open(&self, row: &JwkRow) -> Result<SigningJwk, &'static str> {
        let alg = row.alg.as_deref().unwrap_or(self.opts.alg);
        let private = if self.opts.encrypt {
            let sealed: String = serde_json::from_str(&row.private_key)
                .map_err(|_| "the stored private key is not sealed")?;
            symmetric::open(&self.secrets, &sealed).map_err(|e| {
                tracing::error!(kid = %row.id, error = %e, "the JWT signing key cannot be opened with the configured secrets");
                "the stored private key does not open with the configured secrets"
            })?
        } else {
            row.private_key.clone()
        };
        SigningJwk::new(&row.id, alg, &private).map_err(|_| "not a usable key")
    }

    /// `{"keys":[…]}` of the published keys.
    fn publish(&self, rows: &[JwkRow], now: i64) -> Arc<str> {
        let keys: Vec<Value> = rows
            .iter()
            .filter(|r| {
                r.expires_at
                    .as_ref()
                    .is_none_or(|e| ms(e).saturating_add(self.opts.grace_ms) > now)
            })
            .filter_map(|r| {
                let alg = r.alg.as_deref().unwrap_or(self.opts.alg);
                jwk::published(&r.id, alg, r.crv.as_deref(), &r.public_key)
            })
            .collect();
        Arc::from(serde_json::json!({ "keys": keys }).to_string().as_str())
    }

    /// The public key set, as `/jwks` answers it (a key is made if there is none).
    /// While the table cannot be read, the set last read is served for another
    /// [`KEY_REFRESH_MS`] rather than a 5xx: verifiers keep checking the tokens handed out,
    /// and requests do not queue on the loader retrying a store that is down.
    pub async fn key_set(&self) -> Result<Arc<str>, JwtError> {
        let e = match self.current().await {
            Ok((_, set)) => return Ok(set),
            Err(e) => e,
        };
        let mut slot = match self.keys.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match slot.as_mut() {
            Some(k) => {
                k.read_at = self.clock.now_ms();
                Ok(k.published.clone())
            }
            None => Err(e),
        }
    }

    /// A JWT for the session `key` names, for `key.audience` (else the configured one),
    /// valid `key.ttl_secs`. `user` gives the user object as get-session returns it and `sid`
    /// the session's `sid` claim; both are asked for only when a token is made: a token is
    /// handed out again, for the same session, user version (`updatedAt`), audience and
    /// lifetime, while it keeps four fifths of its lifetime.
    pub async fn mint(
        &self,
        key: &MintKey<'_>,
        user: impl FnOnce() -> Map<String, Value>,
        sid: impl FnOnce() -> String,
    ) -> Result<Arc<str>, JwtError> {
        let (signer, _) = self.current().await?;
        let signer = signer
            .map_err(JwtError::Key)?
            .ok_or(JwtError::Key("no signing key"))?;
        let now = self.clock.now_ms();
        let ttl_ms = i64::try_from(key.ttl_secs)
            .unwrap_or(i64::MAX / 2000)
            .saturating_mul(1000);
        let slot = self.hasher.hash_one(key);
        if let Some(m) = self.minted().get(&slot) {
            let reusable = m.key.matches(key)
                && *m.kid == *signer.kid()
                && now >= m.iat_ms
                && (now - m.iat_ms).saturating_mul(5) < ttl_ms;
            if reusable {
                return Ok(m.token.clone());
            }
        }
        let aud = key.audience.unwrap_or(&self.opts.audience);
        let user = user();
        let iat = now.div_euclid(1000);
        let mut claims = Map::new();
        claims.insert("iat".into(), Value::from(iat));
        for (k, v) in &user {
            claims.insert(k.clone(), v.clone());
        }
        let sub = user.get("id").cloned().unwrap_or(Value::Null);
        claims.insert("sub".into(), sub);
        claims.insert("exp".into(), Value::from(iat.saturating_add(ttl_ms / 1000)));
        claims.insert("iss".into(), Value::from(self.opts.issuer.as_str()));
        claims.insert("aud".into(), Value::from(aud));
        if self.opts.sid {
            claims.insert("sid".into(), Value::from(sid()));
        }
        let token: Arc<str> = Arc::from(
            signer
                .sign(&Value::Object(claims).to_string())
                .map_err(|_| JwtError::Key("signing failed"))?
                .as_str(),
        );
        let mut minted = self.minted();
        if minted.len() >= MAX_MINTED {
            minted.clear();
        }
        minted.insert(
            slot,
            Minted {
                key: OwnedKey::from(key),
                kid: Arc::from(signer.kid()),
                token: token.clone(),
                iat_ms: iat.saturating_mul(1000),
            },
        );
        Ok(token)
    }

    fn minted(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Minted>> {
        match self.minted.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// How many rows the table held when last read (for tests and `/readyz`).
    pub fn keys_known(&self) -> usize {
        self.read_keys().as_ref().map_or(0, |k| k.rows.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::memory::MemoryStore;

    fn issuer(clock: &ManualClock) -> JwtIssuer {
        JwtIssuer::new(
            Arc::new(MemoryStore::new()),
            SecretSet::single("s".repeat(32)),
            Arc::new(clock.clone()),
            JwtOptions {
                alg: "EdDSA",
                crv: "Ed25519".into(),
                modulus_bits: 2048,
                rotation_ms: None,
                grace_ms: 0,
                encrypt: true,
                issuer: "https://i".into(),
                audience: "https://a".into(),
                sid: false,
                ids: crate::config::GenerateId::Default,
            },
        )
    }

    #[tokio::test]
    async fn remembered_tokens_stay_under_the_cap() {
        let clock = ManualClock::starting_now();
        let jwt = issuer(&clock);
        for i in 0..MAX_MINTED + 5 {
            let session = format!("s{i}");
            let key = MintKey {
                session: &session,
                user_version: 0,
                audience: None,
                ttl_secs: 60,
            };
            jwt.mint(&key, Map::new, String::new).await.unwrap();
            assert!(jwt.minted().len() <= MAX_MINTED);
        }
        assert_eq!(jwt.minted().len(), 5, "emptied at the cap, then refilled");
        assert_eq!(jwt.keys_known(), 1, "one key made, and reused");
    }

    #[tokio::test]
    async fn a_token_is_reused_for_a_fifth_of_its_life_and_follows_the_audience() {
        let clock = ManualClock::starting_now();
        let jwt = issuer(&clock);
        let key = |audience, user_version| MintKey {
            session: "s",
            user_version,
            audience,
            ttl_secs: 100,
        };
        let a = jwt
            .mint(&key(None, 1), Map::new, String::new)
            .await
            .unwrap();
        clock.advance_secs(19);
        assert_eq!(
            jwt.mint(&key(None, 1), Map::new, String::new)
                .await
                .unwrap(),
            a
        );
        let other = jwt
            .mint(&key(Some("x"), 1), Map::new, String::new)
            .await
            .unwrap();
        assert_ne!(other, a, "another audience");
        let v2 = || {
            let mut m = Map::new();
            m.insert("name".into(), Value::from("renamed"));
            m
        };
        let changed = jwt.mint(&key(None, 2), v2, String::new).await.unwrap();
        assert_ne!(changed, a, "the user changed");
        clock.advance_secs(2);
        assert_ne!(
            jwt.mint(&key(None, 1), Map::new, String::new)
                .await
                .unwrap(),
            a,
            "past a fifth of its life"
        );
    }
}
