//! The outbox contract (`src/store/outbox.rs`) on PostgreSQL and SQLite: claims never
//! overlap, a lapsed lease hands the event out again, a retry waits for its time and keeps
//! the endpoints done, given-up and done events are never claimed again, the oldest
//! beyond the cap are given up and counted, purge deletes settled events only.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sessiond::clock::{Clock, SystemClock};
use sessiond::store::outbox::{NewEvent, Settled};

use super::Db;

const LEASE: Duration = Duration::from_secs(30);

fn secs(s: i64) -> chrono::Duration {
    chrono::Duration::seconds(s)
}

pub fn event(kind: &'static str, user: &str, n: usize) -> NewEvent {
    NewEvent {
        kind,
        user_id: Some(user.into()),
        session_id: Some(format!("s{n}")),
        data: json!({"userId": user, "n": n, "request": null}),
    }
}

/// `n` events recorded at `at`.
pub async fn record(db: &Db, n: usize, at: DateTime<Utc>) {
    let events: Vec<NewEvent> = (0..n).map(|i| event("session.created", "u1", i)).collect();
    db.outbox().record(&events, at).await.unwrap();
}

async fn claims_never_overlap(db: Db) {
    let t = SystemClock.now();
    record(&db, 60, t).await;
    let grab = |i: usize| {
        let o = db.outboxes[i].clone();
        async move {
            let mut got = Vec::new();
            loop {
                let c = o.claim(7, LEASE, t).await.unwrap();
                if c.is_empty() {
                    return got;
                }
                got.extend(c.into_iter().map(|c| c.event_id));
            }
        }
    };
    let (a, b, c) = tokio::join!(grab(0), grab(1), grab(2));
    let all: Vec<_> = a.iter().chain(&b).chain(&c).cloned().collect();
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(
        all.len(),
        60,
        "every event claimed once: {} {} {}",
        a.len(),
        b.len(),
        c.len()
    );
    assert_eq!(distinct.len(), 60);
    assert!(all
        .iter()
        .all(|id| id.len() == 36 && id.starts_with("evt_")));
}

async fn a_lapsed_lease_hands_the_event_out_again(db: Db) {
    let o = db.outbox();
    let t = SystemClock.now();
    record(&db, 1, t).await;
    let first = o.claim(10, LEASE, t).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempts, 1);
    assert_eq!(first[0].kind, "session.created");
    assert_eq!(first[0].occurred_at, t);
    assert!(o.claim(10, LEASE, t + secs(29)).await.unwrap().is_empty());
    // The holder died: its lease lapses and another claim gets the same event.
    let again = o.claim(10, LEASE, t + secs(31)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event_id, first[0].event_id);
    assert_eq!(again[0].attempts, 2);
    assert_eq!(o.pending().await.unwrap(), 1);
}

async fn a_retry_waits_and_keeps_the_endpoints_done(db: Db) {
    let o = db.outbox();
    let t = SystemClock.now();
    record(&db, 1, t).await;
    let c = o.claim(10, LEASE, t).await.unwrap();
    let retry = Settled::Retry {
        at: t + secs(5),
        delivered: vec!["billing".into(), "0".into()],
    };
    o.settle(c[0].id, &retry).await.unwrap();
    assert!(o.claim(10, LEASE, t + secs(4)).await.unwrap().is_empty());
    let c = o.claim(10, LEASE, t + secs(5)).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].delivered, vec!["billing".to_string(), "0".to_string()]);
    assert_eq!(c[0].attempts, 2);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&c[0].data).unwrap()["n"],
        0
    );
}

async fn done_and_given_up_are_never_claimed_again(db: Db) {
    let o = db.outbox();
    let t = SystemClock.now();
    record(&db, 3, t).await;
    let c = o.claim(10, LEASE, t).await.unwrap();
    assert_eq!(c.len(), 3);
    o.settle(c[0].id, &Settled::Done).await.unwrap();
    o.settle(c[1].id, &Settled::GiveUp).await.unwrap();
    assert_eq!(o.pending().await.unwrap(), 1);
    let later = o.claim(10, LEASE, t + secs(3600)).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].id, c[2].id);
}

async fn the_oldest_beyond_the_cap_are_given_up(db: Db) {
    let o = db.outbox();
    let t = SystemClock.now();
    record(&db, 10, t).await;
    assert_eq!(o.drop_beyond(10).await.unwrap(), 0);
    assert_eq!(o.drop_beyond(3).await.unwrap(), 7);
    assert_eq!(o.pending().await.unwrap(), 3);
    let left = o.claim(10, LEASE, t).await.unwrap();
    let ns: Vec<i64> = left
        .iter()
        .map(|c| {
            serde_json::from_str::<serde_json::Value>(&c.data).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(ns, vec![7, 8, 9], "the newest are kept");
}

async fn purge_deletes_settled_events_only(db: Db) {
    let o = db.outbox();
    let t = SystemClock.now();
    record(&db, 2, t - secs(100)).await;
    record(&db, 1, t).await;
    let c = o.claim(10, LEASE, t).await.unwrap();
    o.settle(c[0].id, &Settled::Done).await.unwrap();
    o.settle(c[2].id, &Settled::Done).await.unwrap();
    // c[1] is old but pending: kept; c[2] is settled but recent: kept.
    assert_eq!(o.purge(t - secs(50), true).await.unwrap(), 1);
    assert_eq!(
        db.count(r#"select count(*) from "sessiond_event""#).await,
        2
    );
    // Past the audit trail's retention, delivered or not, events go.
    assert_eq!(o.purge(t - secs(50), false).await.unwrap(), 1);
    assert_eq!(
        db.count(r#"select count(*) from "sessiond_event""#).await,
        1
    );
}

async fn history_lists_session_events_newest_first(db: Db) {
    let o = db.outbox();
    let t = SystemClock.now();
    let events = [
        event("session.created", "u1", 1),
        event("user.signed_in", "u1", 1),
        event("session.created", "u2", 2),
        event("session.revoked", "u1", 1),
        event("session.created", "u1", 3),
    ];
    for (i, e) in events.into_iter().enumerate() {
        o.record(&[e], t + secs(i as i64)).await.unwrap();
    }
    let h = o.history("u1", None, 2).await.unwrap();
    let kinds: Vec<_> = h
        .iter()
        .map(|(_, e)| (e.kind.as_str(), e.session_id.clone().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("session.created", "s3".into()),
            ("session.revoked", "s1".to_string())
        ]
    );
    assert_eq!(h[0].1.occurred_at, t + secs(4));
    assert!(h[0].1.data.get("request").is_none() || db.url.starts_with("sqlite"));
    let rest = o.history("u1", Some(h[1].0), 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].1.session_id.as_deref(), Some("s1"));
}

/// Rows the triggers write (a change made by another application) are claimed like any.
async fn trigger_rows_are_claimed(db: Db) {
    let t = "2026-01-02T03:04:05.678+00:00";
    let far = "2099-01-02T03:04:05.678+00:00";
    db.exec(&format!(
        r#"insert into "user" ("id","name","email","emailVerified","createdAt","updatedAt") values ('u9','n','u9@x.test',false,'{t}','{t}')"#
    ))
    .await;
    db.exec(&format!(
        r#"insert into "session" ("id","expiresAt","token","createdAt","updatedAt","userId") values ('s9','{far}','tok-secret-9','{t}','{t}','u9')"#
    ))
    .await;
    db.exec(r#"delete from "session" where "id" = 's9'"#).await;
    let now = SystemClock.now() + secs(5);
    let c = db.outbox().claim(10, LEASE, now).await.unwrap();
    let kinds: Vec<_> = c.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec!["user.created", "session.created", "session.revoked"]
    );
    let revoked: serde_json::Value = serde_json::from_str(&c[2].data).unwrap();
    assert_eq!(revoked["origin"], "external");
    assert_eq!(revoked["reason"], "external");
    assert!(!c.iter().any(|c| c.data.contains("tok-secret")));
}

crate::webhooks::on_both!(
    claims_never_overlap(3),
    a_lapsed_lease_hands_the_event_out_again(1),
    a_retry_waits_and_keeps_the_endpoints_done(1),
    done_and_given_up_are_never_claimed_again(1),
    the_oldest_beyond_the_cap_are_given_up(1),
    purge_deletes_settled_events_only(1),
    history_lists_session_events_newest_first(1),
    trigger_rows_are_claimed(1),
);
