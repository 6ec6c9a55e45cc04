//! Stores that assign ids themselves (`generate_id = "serial"`): the whole contract again
//! (the ids the records were made with give way to the database's), and records left
//! without ids, as the service leaves them, get theirs.

use super::fixture::Fixture;
use super::records::*;
use super::*;

/// Records left without ids get the store's, on each named store.
macro_rules! assigns_ids {
    ($($store:ident),* $(,)?) => {
        $(
            mod $store {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn empty_ids_are_assigned() {
                    let f = crate::store::fixture::$store().await;
                    super::empty_ids_are_assigned(&f).await;
                }
            }
        )*
    };
}

assigns_ids!(
    memory,
    sqlite_serial,
    postgres_serial,
    redis_serial,
    redis_db_serial
);

/// The whole contract over the stores that assign ids.
mod contract {
    macro_rules! serial_conformance {
        ($($store:ident),* $(,)?) => {
            $(
                mod $store {
                    whole_contract!(crate::store::fixture::$store);
                }
            )*
        };
    }
    serial_conformance!(sqlite_serial, postgres_serial, redis_serial);
}

/// Records whose ids are left empty, as the service leaves them under `serial`, get them
/// from the store, written back into the records: numbers from the database (or the
/// memory store), a random id for a session that lives in Redis only.
pub async fn empty_ids_are_assigned(f: &Fixture) {
    let now = start();
    let number = |id: &str| {
        id.parse::<i64>()
            .unwrap_or_else(|_| panic!("{id:?} is no number"))
    };
    let session_id = |s: &Session| {
        if f.numbers_sessions {
            number(&s.id);
        } else {
            assert_eq!(s.id.len(), 32, "{:?}", s.id);
        }
    };
    let blank_user = || User {
        id: String::new(),
        ..user(now)
    };
    let blank_session = |u: &User, at: DateTime<Utc>| Session {
        id: String::new(),
        ..session(u, at, hour())
    };
    let no_id = NewCredentialAccount {
        id: String::new(),
        ..account("hash-1")
    };

    let mut u = blank_user();
    let mut first = blank_session(&u, now);
    f.store
        .create_user(&mut u, &no_id, Some(&mut first), now)
        .await
        .unwrap();
    number(&u.id);
    session_id(&first);
    assert_eq!(first.user_id, u.id);
    assert_eq!(
        f.store.find_session(&first.token).await.unwrap(),
        Some((first.clone(), u.clone()))
    );
    assert_eq!(
        f.store.user_by_email(&u.email).await.unwrap(),
        Some((u.clone(), Some("hash-1".into())))
    );

    let mut other = blank_user();
    f.store
        .create_user(&mut other, &no_id, None, now)
        .await
        .unwrap();
    assert!(
        number(&other.id) > number(&u.id),
        "{} after {}",
        other.id,
        u.id
    );

    let mut second = blank_session(&u, now + Duration::seconds(1));
    f.store.create_session(&mut second, now).await.unwrap();
    session_id(&second);
    assert_ne!(second.id, first.id);
    assert_eq!(
        f.store.list_sessions(&u.id, now, 10).await.unwrap(),
        vec![first.clone(), second.clone()]
    );

    let at = now + Duration::seconds(2);
    let mut third = blank_session(&u, at);
    let gone = f
        .store
        .replace_user_sessions(&u.id, &mut third, at)
        .await
        .unwrap();
    assert_eq!(sorted(gone), tokens(&[first.clone(), second.clone()]));
    // (SQLite may give it the number of a deleted row again, as its rowids do.)
    session_id(&third);
    assert_eq!(
        f.store.find_session(&third.token).await.unwrap(),
        Some((third.clone(), u.clone()))
    );

    if let Some(p) = &f.primary {
        let mut fourth = blank_session(&u, at);
        p.end_and_replace_user_sessions(&u.id, &mut fourth, at)
            .await
            .unwrap();
        session_id(&fourth);
        assert_ne!(fourth.id, third.id);
        assert_eq!(
            f.store.list_sessions(&u.id, at, 10).await.unwrap(),
            vec![fourth]
        );
    }
}
