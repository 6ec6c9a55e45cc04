//! The contract, one function per test.

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
    let mut second = User {
        id: unknown_id(),
        email: first.email.clone(),
        ..user(now)
    };
    let mut s = session(&second, now, hour());
    let res = f
        .store
        .create_user(&mut second, &account("hash-2"), Some(&mut s), now)
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
    let id = unknown_id();
    let email = format!("{}@example.com", generate_id().to_lowercase());
    assert_eq!(f.store.user_by_email(&email).await.unwrap(), None);
    assert_eq!(f.store.credential_password(&id).await.unwrap(), None);
    f.store.set_password(&id, "hash-x", now).await.unwrap();
    assert_eq!(f.store.credential_password(&id).await.unwrap(), None);
    let updated = f
        .store
        .update_user(&id, &change(Some("x"), None), now)
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
            &UserChange {
                fields: &[
                    ("plan".to_owned(), json!("pro")),
                    ("credits".to_owned(), Value::Null),
                ]
                .into_iter()
                .collect(),
                ..change(Some("Grace"), Some(Some("https://img.example/g")))
            },
            later,
        )
        .await
        .unwrap()
        .unwrap();
    let mut expected = User {
        name: "Grace".into(),
        image: Some("https://img.example/g".into()),
        updated_at: later,
        ..u.clone()
    };
    expected.extra.insert("plan".into(), json!("pro"));
    expected.extra.insert("credits".into(), Value::Null);
    assert_eq!(updated, expected);
    // Every session's user is the new one (Redis keeps a copy next to each session).
    for s in [&first, &second] {
        let (_, user) = f.store.find_session(&s.token).await.unwrap().unwrap();
        assert_eq!(user, expected);
    }
    let cleared = f
        .store
        .update_user(&u.id, &change(None, Some(None)), later)
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
    let mut new = session(&n.u, at, hour());
    let gone = f
        .store
        .replace_user_sessions(&n.u.id, &mut new, at)
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
    let mut clash = Session {
        id: n.theirs[0].id.clone(),
        ..session(&n.u, now, hour())
    };
    let res = f
        .store
        .replace_user_sessions(&n.u.id, &mut clash, now)
        .await;
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
    let mut short = session(&u, now + Duration::seconds(5), Duration::seconds(60));
    f.store.create_session(&mut short, now).await.unwrap();
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
        .list_sessions(&unknown_id(), at, 10)
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
    let mut new = session(&u, at, hour());
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
            .replace_user_sessions(&u.id, &mut new, at)
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
    assert_eq!(p.user_by_id(&unknown_id()).await.unwrap(), None);
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
    let mut new = session(&u, at, hour());
    let ended = p
        .end_and_replace_user_sessions(&u.id, &mut new, at)
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

/// A change of name and image only.
fn change<'a>(name: Option<&'a str>, image: Option<Option<&'a str>>) -> UserChange<'a> {
    static NONE: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
    UserChange {
        name,
        image,
        fields: &NONE,
    }
}
