//! Records and the time the contract tests run at.

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
        extra: [
            ("banExpires", json!("2030-01-02T03:04:05.678Z")),
            ("credits", json!(3)),
            ("plan", json!("free")),
            ("vip", Value::Null),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
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

/// An id no store has given a row: digits, which integer id columns can compare too.
pub fn unknown_id() -> String {
    "987654321".into()
}

/// A user written with its credential account and no session (as stored: with the ids a
/// store assigns).
pub async fn signed_up(store: &dyn Store, now: DateTime<Utc>) -> User {
    let mut u = user(now);
    store
        .create_user(&mut u, &account("hash-1"), None, now)
        .await
        .unwrap();
    u
}

/// A user written with its credential account and its first session.
pub async fn signed_up_with_session(store: &dyn Store, now: DateTime<Utc>) -> (User, Session) {
    let mut u = user(now);
    let mut s = session(&u, now, hour());
    store
        .create_user(&mut u, &account("hash-1"), Some(&mut s), now)
        .await
        .unwrap();
    (u, s)
}

/// `n` sessions of `u`, created a second apart from `now` on.
pub async fn sessions(store: &dyn Store, u: &User, now: DateTime<Utc>, n: i64) -> Vec<Session> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut s = session(u, now + Duration::seconds(i), hour());
        store.create_session(&mut s, now).await.unwrap();
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
